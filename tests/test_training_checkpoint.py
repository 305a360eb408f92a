"""Checkpoint directories, epoch records and per-epoch random streams (no training needed)."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from engine.config import RunConfig
from engine.errors import TrainingError
from engine.training import checkpoint as ckpt
from engine.training.records import epoch_schema, metric_keys, read_records, write_records
from engine.training.rng import capture_rng_state, derive_seed, epoch_generators, restore_rng_state


def _row(T: int, epoch: int) -> dict[str, float]:
    row = {key: float(epoch) + 0.5 for key in metric_keys(T)}
    row["epoch"] = epoch
    row["best_epoch"] = epoch
    row["test_samples"] = 100
    return row


def _save(target, config, model, epoch, records):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    iterations = 10 * (epoch + 1)
    state = ckpt.TrainerState(epoch=epoch, global_iteration=iterations, best_test_top1=50.0, best_epoch=0)
    return ckpt.save_checkpoint(
        target,
        config=config,
        model=model,
        optimizer=optimizer,
        state=state,
        rng_state=capture_rng_state(),
        records=records,
    )


def test_metric_keys_follow_the_contract():
    keys = metric_keys(3)
    assert keys[:26] == [
        "epoch",
        "train_loss",
        "train_loss_static",
        "train_loss_event",
        "train_loss_domain",
        "train_cka_distance",
        "train_top1",
        "test_loss",
        "test_top1",
        "test_top5",
        "test_samples",
        "test_firing_rate",
        "test_spikes",
        "test_acs",
        "test_macs",
        "energy_uj",
        "best_test_top1",
        "best_epoch",
        "best_epoch_energy_uj",
        "sliding_p",
        "mixup_ratio",
        "mixup_p",
        "mixup_event_fraction",
        "train_loss_mixup_source",
        "train_loss_mixup_ratio",
        "lr",
    ]
    assert keys[26:] == ["alpha_0", "alpha_1", "alpha_2", "epoch_time_s", "samples_per_s", "peak_mem_mb"]


def test_records_roundtrip_with_explicit_types(tmp_path):
    rows = [_row(2, 0), _row(2, 1)]
    rows[1]["alpha_0"] = float("nan")  # event-only models record NaN coefficients
    write_records(tmp_path / "e.parquet", rows, T=2)
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.schema.equals(epoch_schema(2))
    assert str(table.schema.field("epoch").type) == "int64"
    assert str(table.schema.field("train_loss").type) == "double"
    back = read_records(tmp_path / "e.parquet")
    assert back[0] == rows[0] and math.isnan(back[1]["alpha_0"])
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_checkpoint_roundtrip_restores_everything(tmp_path):
    config = RunConfig().with_overrides({"T": 2, "seed": 7})
    model = nn.Linear(3, 2)
    _save(tmp_path / "last", config, model, epoch=1, records=[_row(2, 0), _row(2, 1)])
    loaded = ckpt.load_checkpoint(tmp_path / "last")
    assert loaded.config == config
    assert loaded.state == ckpt.TrainerState(epoch=1, global_iteration=20, best_test_top1=50.0, best_epoch=0)
    assert torch.equal(loaded.model_state["weight"], model.weight.detach())
    assert loaded.optimizer_state["state"][0]["step"] == 1
    assert [r["epoch"] for r in loaded.records] == [0, 1]
    # a run directory means its last checkpoint
    run = tmp_path / "run"
    _save(run / "checkpoints" / "last", config, model, epoch=0, records=[_row(2, 0)])
    assert ckpt.resolve_checkpoint(run) == run / "checkpoints" / "last"


def test_rng_state_roundtrip():
    state = capture_rng_state()
    a = (torch.rand(3), np.random.rand(), random.random())
    restore_rng_state(state)
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    config = RunConfig().with_overrides({"T": 1})
    model = nn.Linear(3, 2)
    target = _save(tmp_path / "last", config, model, epoch=0, records=[_row(1, 0)])
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt, "write_records", disk_full)
    with pytest.raises(OSError, match="No space"):
        _save(tmp_path / "last", config, model, epoch=1, records=[_row(1, 0), _row(1, 1)])
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temporary directory left behind
    assert ckpt.load_checkpoint(target).state.epoch == 0


def test_crash_between_renames_recovers_the_previous_checkpoint(tmp_path):
    config = RunConfig().with_overrides({"T": 1})
    target = _save(tmp_path / "last", config, nn.Linear(3, 2), epoch=3, records=[_row(1, 0)])
    target.rename(tmp_path / ".last.old")  # the state right after "target → .old", before "tmp → target"
    assert ckpt.resolve_checkpoint(tmp_path / "last") == tmp_path / ".last.old"
    assert ckpt.load_checkpoint(tmp_path / "last").state.epoch == 3


def test_copy_is_a_complete_checkpoint(tmp_path):
    config = RunConfig().with_overrides({"T": 1})
    source = _save(tmp_path / "last", config, nn.Linear(3, 2), epoch=0, records=[_row(1, 0)])
    copy = ckpt.copy_checkpoint(source, tmp_path / "best")
    _save(source, config, nn.Linear(3, 2), epoch=1, records=[_row(1, 0), _row(1, 1)])  # last moves on
    assert ckpt.load_checkpoint(copy).state.epoch == 0
    assert ckpt.load_checkpoint(source).state.epoch == 1


def test_missing_or_incomplete_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.pt").write_bytes(b"")
    with pytest.raises(TrainingError, match="meta.json"):
        ckpt.load_checkpoint(tmp_path / "half")


def test_epoch_streams_are_reproducible_and_distinct():
    cpu = torch.device("cpu")
    a = epoch_generators(42, 3, cpu)
    b = epoch_generators(42, 3, cpu)
    assert torch.equal(torch.rand(5, generator=a.replacement), torch.rand(5, generator=b.replacement))
    seeds = {derive_seed(s, e, k) for s in (0, 1) for e in (0, 1) for k in ("replacement", "augmentation")}
    assert len(seeds) == 8  # seed 1 / epoch 0 is not seed 0 / epoch 1, and streams differ


def test_records_written_before_a_key_existed_still_write(tmp_path):
    """A run resumed after an upgrade holds records without the later keys (activity, test set size):
    they are stored as missing (NaN, or null for an integer), never invented; epoch and best epoch stay
    required."""
    rows = [_row(2, 0), _row(2, 1)]
    for key in ("test_samples", "energy_uj", "test_acs"):
        del rows[0][key]
    write_records(tmp_path / "e.parquet", rows, T=2)
    back = read_records(tmp_path / "e.parquet")
    assert back[0]["test_samples"] is None and math.isnan(back[0]["energy_uj"])
    assert back[1]["test_samples"] == 100 and back[1]["energy_uj"] == rows[1]["energy_uj"]
    del rows[1]["best_epoch"]
    with pytest.raises(KeyError, match="best_epoch"):
        write_records(tmp_path / "f.parquet", rows, T=2)
