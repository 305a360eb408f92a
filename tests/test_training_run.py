"""End-to-end training runs on the built-in nshapes pair (CPU, tiny network).

One uninterrupted reference run is shared by the tests of this module; the others are compared to
it: an interrupted-and-resumed run (in place, and from a copied checkpoint into a fresh directory, as
Ray Tune does), a second run with the same seed, a run with another seed.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from engine.config import RunConfig
from engine.data.pipeline import load_catalog
from engine.errors import ConfigError, TrainingError
from engine.training import train
from engine.training.checkpoint import load_checkpoint
from engine.training.evaluation import evaluate_checkpoint
from engine.training.loading import load_weights
from engine.training.optim import lr_at_epoch
from engine.training.records import TIMING_KEYS, metric_keys, read_layer_records, read_records

TINY = {
    "data.pair": "nshapes",
    "data.nshapes_classes": 4,
    "data.nshapes_per_class": 10,
    "data.event_size": 16,
    "T": 2,
    "batch_size": 8,
    "epochs": 4,
    "seed": 3,
    "progress": False,
    "model.width": 0.0625,
    "optim.lr": 0.5,
    "schedule.warmup_epochs": 1,
    "schedule.warmup_lr": 1e-4,
    "sliding.pow": 1.0,
}


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "spikesweep-cache"


@pytest.fixture(scope="module")
def tiny(cache_root) -> RunConfig:
    return RunConfig().with_overrides({**TINY, "data.cache_root": str(cache_root)})


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """An uninterrupted 4-epoch run: (result, records, final model state)."""
    run_dir = tmp_path_factory.mktemp("reference")
    result = train(tiny, run_dir)
    return result, read_records(run_dir / "epochs.parquet"), load_checkpoint(run_dir).model_state


class _StopAfter:
    """A callback that stops the run after ``epoch`` and keeps a copy of that epoch's checkpoint."""

    class Stop(Exception):
        pass

    def __init__(self, epoch: int, copy_to: Path | None = None) -> None:
        self.epoch, self.copy_to = epoch, copy_to
        self.seen: list[tuple[int, dict, Path]] = []

    def on_epoch_end(self, epoch, metrics, checkpoint_dir):
        self.seen.append((epoch, metrics, checkpoint_dir))
        if epoch == self.epoch:
            if self.copy_to is not None:
                shutil.copytree(checkpoint_dir, self.copy_to)
            raise self.Stop


def _deterministic(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_reference_run_writes_the_contract_layout(reference, tiny):
    result, rows, _ = reference
    run_dir = result.run_dir
    for name in ("config.yaml", "epochs.parquet", "result.json", "checkpoints/last", "checkpoints/best"):
        assert (run_dir / name).exists(), name
    assert RunConfig.from_yaml(run_dir / "config.yaml") == tiny
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert list(rows[0]) == metric_keys(tiny.T)
    for row in rows:
        for key, value in row.items():
            assert math.isfinite(value), key
        assert 0 <= row["test_top1"] <= row["test_top5"] <= 100
        assert row["test_samples"] == len(load_catalog(tiny).test)  # every test recording, every epoch
        # activity per inference (engine.activity): the energy is the two counts at the default pJ
        assert 0 < row["test_firing_rate"] < 1 and row["test_spikes"] > 0 and row["test_acs"] > 0
        energy = (row["test_acs"] * 0.9 + row["test_macs"] * 4.6) * 1e-6
        assert row["energy_uj"] == pytest.approx(energy, rel=1e-12)
        assert 0 < row["alpha_0"] < 1 and row["peak_mem_mb"] > 0 and row["samples_per_s"] > 0
    assert len({r["test_macs"] for r in rows}) == 1  # the dense first layer's MACs depend on shapes only
    assert [r["sliding_p"] for r in rows] == sorted(r["sliding_p"] for r in rows)  # P grows
    best = max(rows, key=lambda r: (r["test_top1"], -r["epoch"]))
    assert (result.best_test_top1, result.best_epoch) == (best["test_top1"], best["epoch"])
    assert rows[-1]["best_test_top1"] == result.best_test_top1
    # per layer, per epoch: the terms of the record's spike count and firing rate
    layers = read_layer_records(run_dir / "layers.parquet")
    names = [r["layer"] for r in layers if r["epoch"] == 0]
    assert len(names) == len(set(names)) > 1 and [r["epoch"] for r in layers] == sorted(
        r["epoch"] for r in layers
    )
    for row in rows:
        mine = [r for r in layers if r["epoch"] == row["epoch"]]
        assert [r["layer"] for r in mine] == names
        assert sum(r["spikes"] for r in mine) == pytest.approx(row["test_spikes"], rel=1e-12)
        steps = sum(r["neurons"] * tiny.T for r in mine)
        assert sum(r["firing_rate"] * r["neurons"] * tiny.T for r in mine) / steps == pytest.approx(
            row["test_firing_rate"], rel=1e-12
        )
    # the energy of the model best_test_top1 describes, epoch by epoch (an accuracy–energy objective pair)
    by_epoch = {r["epoch"]: r for r in rows}
    assert [r["best_epoch_energy_uj"] for r in rows] == [by_epoch[r["best_epoch"]]["energy_uj"] for r in rows]
    assert result.last_test_top1 == rows[-1]["test_top1"] and result.epochs_run == 4
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["status"] == "completed" and saved["best_test_top1"] == result.best_test_top1
    assert load_checkpoint(run_dir / "checkpoints" / "best").state.epoch == result.best_epoch


def test_lr_records_follow_the_schedule(reference, tiny):
    result, rows, _ = reference
    assert rows[0]["lr"] == 1e-4  # epoch 0 trains at warmup_lr
    peak = 0.5 * 8 / 1024
    for row in rows[1:]:
        e = row["epoch"]
        assert row["lr"] == pytest.approx(1e-5 + 0.5 * (peak - 1e-5) * (1 + math.cos(math.pi * e / 4)))
        assert row["lr"] == lr_at_epoch(e, tiny)
    # the optimiser really trained at the recorded rate, in both parameter groups
    groups = load_checkpoint(result.run_dir).optimizer_state["param_groups"]
    assert [g["lr"] for g in groups] == [rows[-1]["lr"]] * len(groups)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, tiny.optim.weight_decay]


def test_same_seed_twice_gives_identical_records_and_weights(reference, tiny, tmp_path):
    _, ref_rows, ref_weights = reference
    train(tiny, tmp_path / "again")
    assert _deterministic(read_records(tmp_path / "again" / "epochs.parquet")) == _deterministic(ref_rows)
    _assert_same_weights(load_checkpoint(tmp_path / "again").model_state, ref_weights)


def test_interrupt_and_resume_equals_uninterrupted(reference, tiny, tmp_path):
    _, ref_rows, ref_weights = reference
    run_dir, copy = tmp_path / "run", tmp_path / "copied-checkpoint"
    stop = _StopAfter(epoch=1, copy_to=copy)
    with pytest.raises(_StopAfter.Stop):
        train(tiny, run_dir, callbacks=[stop])
    assert [e for e, _, _ in stop.seen] == [0, 1]
    assert list(stop.seen[0][1]) == metric_keys(tiny.T)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "failed"
    # the first two epochs of a second run with the same seed are the reference's
    assert _deterministic(read_records(run_dir / "epochs.parquet")) == _deterministic(ref_rows[:2])

    # in place, as `spikesweep train --resume RUN_DIR` does
    resumed = train(tiny, run_dir, resume_from=run_dir)
    assert resumed.epochs_run == 4
    assert _deterministic(read_records(run_dir / "epochs.parquet")) == _deterministic(ref_rows)
    ref_layers = read_layer_records(reference[0].run_dir / "layers.parquet")
    assert read_layer_records(run_dir / "layers.parquet") == ref_layers
    _assert_same_weights(load_checkpoint(run_dir).model_state, ref_weights)

    # from a copied checkpoint into a fresh directory, as Ray Tune restores a trial
    fresh = tmp_path / "elsewhere"
    moved = train(tiny.with_overrides({"progress": True}), fresh, resume_from=copy)
    assert _deterministic(read_records(fresh / "epochs.parquet")) == _deterministic(ref_rows)
    assert read_layer_records(fresh / "layers.parquet") == ref_layers  # travelled with the checkpoint
    _assert_same_weights(load_checkpoint(fresh).model_state, ref_weights)
    assert moved.best_test_top1 == reference[0].best_test_top1
    # the best weights travelled with the checkpoint, even when the best epoch came before the move
    reference_best = load_checkpoint(reference[0].run_dir / "checkpoints" / "best").model_state
    _assert_same_weights(load_weights(fresh).state_dict, reference_best)
    assert evaluate_checkpoint(fresh)["test_top1"] == reference[0].best_test_top1


def test_another_seed_differs(reference, tiny, tmp_path):
    _, ref_rows, _ = reference
    stop = _StopAfter(epoch=0)
    with pytest.raises(_StopAfter.Stop):
        train(tiny.with_overrides({"seed": 4}), tmp_path / "seed4", callbacks=[stop])
    other = stop.seen[0][1]
    assert other["train_loss"] != ref_rows[0]["train_loss"]


def test_resume_refuses_a_changed_configuration(reference, tiny, tmp_path):
    with pytest.raises(ConfigError, match="method.beta"):
        train(tiny.with_overrides({"method.beta": 0.25}), tmp_path / "x", resume_from=reference[0].run_dir)


def test_fresh_run_refuses_a_directory_holding_a_run(reference, tiny):
    with pytest.raises(TrainingError, match="already holds a run"):
        train(tiny, reference[0].run_dir)


def test_bad_config_is_rejected_before_any_data_is_read(tiny, tmp_path):
    cache = tmp_path / "never-created"
    bad = [
        {"epochs": -1},
        {"T": 0},
        {"method.beta": -0.5},
        {"data.traindata_ratio": 1.5},
        {"optim.lr": float("nan")},
        {"model.name": "transfer_vgg"},
        {"data.event_size": 12},  # below what the VGG needs
        {"batch_size": 1},  # CKA needs two samples
    ]
    for overrides in bad:
        config = tiny.with_overrides({**overrides, "data.cache_root": str(cache)})
        with pytest.raises(ConfigError):
            train(config, tmp_path / "run")
    assert not cache.exists() and not (tmp_path / "run").exists()


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tiny, tmp_path):
    # epoch 0 trains at a sane warmup rate; from epoch 1 the rate is absurd and the weights explode
    config = tiny.with_overrides({"optim.lr": 1e36, "optim.lr_scaling": "none", "epochs": 3})
    with pytest.raises(TrainingError, match="non-finite.*epoch 1.*epoch 0\\) is intact"):
        train(config, tmp_path / "run")
    last = load_checkpoint(tmp_path / "run")
    assert last.state.epoch == 0 and len(last.records) == 1
    assert all(torch.isfinite(v).all() for v in last.model_state.values() if v.is_floating_point())
    assert len(read_records(tmp_path / "run" / "epochs.parquet")) == 1
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "failed" and "non-finite" in result["error"]


def test_event_only_baseline_trains_on_events(tiny, tmp_path):
    config = tiny.with_overrides({"model.name": "vgg_snn", "epochs": 1})
    result = train(config, tmp_path / "baseline")
    (row,) = read_records(tmp_path / "baseline" / "epochs.parquet")
    assert result.epochs_run == 1 and math.isfinite(row["train_loss"])
    assert row["train_loss_static"] == 0.0
    for key in ("sliding_p", "alpha_0", "train_cka_distance"):
        assert math.isnan(row[key]), key  # no static stream, no coefficients


def test_bf16_autocast_trains(tiny, tmp_path):
    result = train(tiny.with_overrides({"precision": "bf16", "epochs": 1}), tmp_path / "bf16")
    (row,) = read_records(tmp_path / "bf16" / "epochs.parquet")
    assert result.epochs_run == 1 and math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_epoch_never_synchronises_the_gpu(tiny, monkeypatch):
    """On CUDA, any host synchronisation inside the epoch (``.item()``, ``nonzero``, …) raises."""
    from engine.data import build_data
    from engine.training.loading import build_model
    from engine.training.loop import TrainLoop
    from engine.training.optim import create_optimizer
    from engine.training.rng import epoch_generators

    config = tiny.with_overrides({"device": "cuda"})
    device = torch.device("cuda")
    bundle = build_data(config)
    model = build_model(config, bundle.num_classes).to(device)
    loop = TrainLoop(model, create_optimizer(model, config), bundle, config, device)
    loop.train_epoch(0, 0, epoch_generators(config.seed, 0, device))  # warm-up: lazy initialisation
    torch.cuda.synchronize()

    real_tolist = torch.Tensor.tolist

    def tolist_after_the_loop(self):  # the epoch's one allowed read-back of its sums
        torch.cuda.set_sync_debug_mode("default")
        return real_tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", tolist_after_the_loop)
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = loop.train_epoch(1, loop.iters_per_epoch, epoch_generators(config.seed, 1, device))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats.finite


@pytest.mark.slow
def test_quick_preset_learns_well_above_chance(cache_root, tmp_path):
    """The full method (CKA transfer, learnable coefficients, TET, sliding) on nshapes: 10 classes."""
    config = RunConfig.from_preset("quick").with_overrides(
        {"data.cache_root": str(cache_root), "progress": False}
    )
    result = train(config, tmp_path / "quick")
    rows = read_records(tmp_path / "quick" / "epochs.parquet")
    assert result.best_test_top1 >= 35.0  # chance is 10 %; the preset reaches ~60–70 %
    assert rows[-1]["test_top1"] >= 25.0
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["sliding_p"] == 1.0  # the static stream has become an event stream
