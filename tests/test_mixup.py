"""Time-step mixup (engine.mixup): the switch probability, the prefix/suffix structure, the realised ratio,
the auxiliary heads, the per-epoch records and the validation of its keys."""

from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest
import torch

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.mixup import expected_fraction, mix_ratio, switch_probability, timestep_mix
from engine.sliding import ScheduleContext


def test_switch_probability_of_the_published_settings():
    assert switch_probability(10, 0.5) == pytest.approx(0.131, abs=5e-4)
    assert switch_probability(6, 0.5) == pytest.approx(0.195, abs=5e-4)
    for T in (1, 4, 10):
        for r in (0.1, 0.5, 0.9):
            assert expected_fraction(T, switch_probability(T, r)) == pytest.approx(r, abs=1e-9)
    assert switch_probability(10, 0.0) == 0.0 and switch_probability(10, 1.0) == 1.0
    # the closed form against the sum it comes from
    T, p = 7, 0.3
    direct = sum(p * (1 - p) ** (t - 1) * (T - t + 1) for t in range(1, T + 1)) / T
    assert expected_fraction(T, p) == pytest.approx(direct, rel=1e-12)


def _streams(B, T):
    static = torch.zeros(B, T, 2, 3, 3)
    events = (
        torch.arange(1, T + 1, dtype=torch.float32).view(1, T, 1, 1, 1).expand(B, T, 2, 3, 3).contiguous()
    )
    return static, events


@pytest.mark.parametrize(("T", "r"), [(4, 0.25), (6, 0.5), (10, 0.5), (10, 0.8)])
def test_realised_fraction_equals_the_target_within_sampling_error(T, r):
    B = 20_000
    static, events = _streams(B, T)
    gen = torch.Generator().manual_seed(T * 100 + int(r * 10))
    _, mask = timestep_mix(static, events, switch_probability(T, r), gen)
    per_sample = mask.float().mean(dim=1)
    standard_error = per_sample.std().item() / math.sqrt(B)
    assert abs(per_sample.mean().item() - r) < 4 * standard_error


def test_each_sequence_is_a_static_prefix_then_the_event_frames_of_the_same_steps():
    B, T = 500, 8
    static, events = _streams(B, T)
    mixed, mask = timestep_mix(static, events, 0.2, torch.Generator().manual_seed(0))
    for b in range(B):
        m = mask[b].tolist()
        switch = m.index(True) if True in m else T
        assert m == [False] * switch + [True] * (T - switch)
        assert torch.equal(mixed[b, :switch], static[b, :switch])
        assert torch.equal(mixed[b, switch:], events[b, switch:])  # frame t of the event sample at step t
    assert 0 < mask.any(dim=1).float().mean() < 1
    none, mask0 = timestep_mix(static, events, switch_probability(T, 0.0), torch.Generator().manual_seed(0))
    assert torch.equal(none, static) and not mask0.any()
    almost, mask1 = timestep_mix(
        static, events, switch_probability(T, 0.999), torch.Generator().manual_seed(0)
    )
    assert mask1.float().mean() > 0.99


def test_the_ratio_follows_its_base_schedule():
    c = ScheduleContext(iteration=50, iters_per_epoch=10, epochs=10, pow=3.0, end_frac=1.0)
    assert mix_ratio("constant", 0.4, c) == 0.4
    assert mix_ratio("linear", 0.4, c) == pytest.approx(0.2)
    assert mix_ratio("poly", 0.4, c) == pytest.approx(0.4 * 0.125)
    assert mix_ratio("cosine", 0.4, c) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"sliding.mixup": "timestep", "sliding.mixup_ratio": 1.5},
            "sliding.mixup_ratio = 1.5 must be in [0, 1]",
        ),
        ({"sliding.mixup": "timestep", "sliding.mixup_ratio": -0.1}, "must be in [0, 1]"),
        ({"sliding.mixup": "frames"}, "sliding.mixup = 'frames'; allowed: none, timestep"),
        ({"sliding.mixup_base": "exp"}, "allowed: constant, poly, linear, cosine"),
        (
            {"sliding.mixup": "timestep", "method.mixup_source_weight": -1.0},
            "mixup_source_weight = -1.0 must be ≥ 0",
        ),
        ({"method.mixup_ratio_weight": 0.5}, "need sliding.mixup = timestep"),
    ],
)
def test_bad_mixup_settings_are_refused_with_the_allowed_values(overrides, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_preset("quick").with_overrides(overrides).validate()
    assert message in str(err.value)


def test_mixup_needs_a_static_stream():
    from engine.validation import check_config

    config = RunConfig.from_preset("quick").with_overrides(
        {"sliding.mixup": "timestep", "model.name": "vgg_snn"}
    )
    with pytest.raises(ConfigError, match="event-only model vgg_snn does not have"):
        check_config(config)


def test_heads_do_not_change_the_model_outputs_and_add_nothing_at_weight_zero():
    from engine.training.loading import build_model

    base = RunConfig.from_preset("quick").with_overrides({"sliding.mixup": "timestep", "T": 2})
    torch.manual_seed(0)
    plain = build_model(base, 4)
    with_heads = build_model(
        base.with_overrides({"method.mixup_source_weight": 1.0, "method.mixup_ratio_weight": 1.0}), 4
    )
    assert not hasattr(plain, "mixup_source_head")
    assert with_heads.mixup_source_head.in_features == with_heads.mixup_ratio_head.in_features > 0
    missing = with_heads.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing.missing_keys) == sorted(
        [
            "mixup_source_head.weight",
            "mixup_source_head.bias",
            "mixup_ratio_head.weight",
            "mixup_ratio_head.bias",
        ]
    )
    x = torch.rand(3, 2, 2, 32, 32)
    a, b = plain.eval()(x, x), with_heads.eval()(x, x)
    assert torch.equal(a.logits_event, b.logits_event) and torch.equal(a.feat_static, b.feat_static)


def test_heads_train_and_epochs_record_the_mixup(tmp_path):
    from engine.training import train

    config = RunConfig.from_preset("quick").with_overrides(
        {
            "epochs": 4,
            "T": 3,
            "batch_size": 8,
            "model.width": 0.0625,
            "data.nshapes_classes": 3,
            "data.nshapes_per_class": 16,
            "data.cache_root": str(tmp_path / "cache"),
            "sliding.schedule": "none",
            "sliding.mixup": "timestep",
            "sliding.mixup_ratio": 0.5,
            "method.mixup_source_weight": 1.0,
            "method.mixup_ratio_weight": 1.0,
            "optim.lr": 0.3,
            "progress": False,
        }
    )
    train(config, tmp_path / "run")
    rows = pq.read_table(tmp_path / "run" / "epochs.parquet").to_pylist()
    assert all(r["mixup_ratio"] == 0.5 for r in rows)
    assert all(r["mixup_p"] == pytest.approx(switch_probability(3, 0.5)) for r in rows)
    assert all(0.2 < r["mixup_event_fraction"] < 0.8 for r in rows)
    source = [r["train_loss_mixup_source"] for r in rows]
    ratio = [r["train_loss_mixup_ratio"] for r in rows]
    assert source[-1] < source[0] and ratio[-1] < ratio[0], (source, ratio)


def test_records_without_mixup_hold_zero(tmp_path):
    from engine.training import train
    from engine.training.records import metric_keys

    keys = metric_keys(2)
    for key in (
        "mixup_ratio",
        "mixup_p",
        "mixup_event_fraction",
        "train_loss_mixup_source",
        "train_loss_mixup_ratio",
    ):
        assert key in keys
    config = RunConfig.from_preset("quick").with_overrides(
        {
            "epochs": 1,
            "T": 2,
            "batch_size": 8,
            "model.width": 0.0625,
            "data.nshapes_classes": 2,
            "data.nshapes_per_class": 8,
            "data.cache_root": str(tmp_path / "c"),
            "progress": False,
        }
    )
    train(config, tmp_path / "run")
    (row,) = pq.read_table(tmp_path / "run" / "epochs.parquet").to_pylist()
    assert [row[k] for k in ("mixup_ratio", "mixup_p", "mixup_event_fraction")] == [0.0, 0.0, 0.0]
    assert row["train_loss_mixup_source"] == row["train_loss_mixup_ratio"] == 0.0
