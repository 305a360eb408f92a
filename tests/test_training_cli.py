"""``spikesweep train`` and ``spikesweep eval`` through the real command-line entry point."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from engine.config import RunConfig
from engine.models import create_model
from engine.training.loading import load_weights, restore_model
from engine.training.records import ACTIVITY_KEYS, read_records
from orchestrator.cli import main

# The quick preset, shrunk further so the command-line tests take seconds.
TINY_SETS = [
    "data.nshapes_classes=4",
    "data.nshapes_per_class=10",
    "data.event_size=16",
    "T=2",
    "batch_size=8",
    "epochs=2",
    "model.width=0.0625",
    "progress=false",
]
VGG_PLAN = (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P")


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "spikesweep-cache"


@pytest.fixture(scope="module")
def trained(cache_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "--set", *TINY_SETS, f"data.cache_root={cache_root}", "--out", str(run_dir)])
    assert code == 0
    return run_dir


def test_train_without_config_runs_the_quick_preset(trained, capsys):
    config = RunConfig.from_yaml(trained / "config.yaml")
    quick = RunConfig.from_preset("quick")
    assert config.data.pair == "nshapes" and config.model.name == quick.model.name
    assert config.method == quick.method and config.sliding == quick.sliding
    assert len(read_records(trained / "epochs.parquet")) == 2
    assert json.loads((trained / "result.json").read_text())["status"] == "completed"


def test_resume_of_a_finished_run_changes_nothing(trained, capsys):
    before = read_records(trained / "epochs.parquet")
    assert main(["train", "--resume", str(trained)]) == 0
    assert "best test top-1" in capsys.readouterr().out
    assert read_records(trained / "epochs.parquet") == before


def test_eval_of_a_run_reproduces_its_best_epoch(trained, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["eval", str(trained), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    rows = read_records(trained / "epochs.parquet")
    best = max(rows, key=lambda r: (r["test_top1"], -r["epoch"]))
    assert metrics["source"] == "spikesweep"
    assert metrics["test_top1"] == best["test_top1"] and metrics["test_loss"] == pytest.approx(
        best["test_loss"]
    )
    assert "test top-1" in capsys.readouterr().out


def test_eval_at_fewer_time_steps_writes_accuracy_and_energy_vs_T(trained, tmp_path, capsys):
    config = RunConfig.from_yaml(trained / "config.yaml")
    out, json_file = tmp_path / "steps", tmp_path / "steps.json"
    argv = [
        "eval",
        str(trained),
        "--time-steps",
        f"{config.T},1",
        "--out",
        str(out),
        "--json",
        str(json_file),
    ]
    assert main(argv) == 0
    rows = json.loads(json_file.read_text())
    assert [r["time_steps"] for r in rows] == [1, config.T]
    # at T' = T: exactly the recorded best epoch, accuracy and activity alike
    records = read_records(trained / "epochs.parquet")
    best = max(records, key=lambda r: (r["test_top1"], -r["epoch"]))
    at_T = rows[-1]
    for key in ("test_top1", "test_top5", "test_samples", *ACTIVITY_KEYS):
        assert at_T[key] == best[key], key
    # the first layer's dense MACs grow with the steps run; the energy with them
    assert rows[0]["test_macs"] * config.T == at_T["test_macs"]
    assert rows[0]["energy_uj"] < at_T["energy_uj"]
    assert {p.name for p in out.iterdir()} == {"time_steps.md", "time_steps.parquet", "time_steps.png"}
    assert "| 1 |" in (out / "time_steps.md").read_text()
    assert "inference stopped after T' time steps" in capsys.readouterr().out


def test_an_ann_twin_trains_end_to_end(cache_root, tmp_path):
    run_dir = tmp_path / "ann"
    sets = [*TINY_SETS, "model.neuron=relu", f"data.cache_root={cache_root}"]
    assert main(["train", "--set", *sets, "--out", str(run_dir)]) == 0
    records = read_records(run_dir / "epochs.parquet")
    assert len(records) == 2 and all(math.isfinite(r["train_loss"]) for r in records)
    # an ANN does no spike-driven work: every layer multiply-accumulates
    assert {r["test_acs"] for r in records} == {0.0} and records[0]["test_macs"] > 0
    assert records[0]["energy_uj"] == pytest.approx(records[0]["test_macs"] * 4.6e-6, rel=1e-12)


@pytest.mark.parametrize("steps", ["0", "1,99"])
def test_eval_time_steps_outside_1_to_T_are_refused(trained, tmp_path, steps, capsys):
    assert main(["eval", str(trained), "--time-steps", steps, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--time-steps" in err and "from 1 to T = " in err
    assert not (tmp_path / "x").exists()


def test_print_config_applies_overrides(capsys):
    assert (
        main(["train", "--preset", "ncaltech101", "--set", "seed=1024", "method.beta=0", "--print-config"])
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 1024 and printed["method"]["beta"] == 0.0 and printed["T"] == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--set", "method.betta=1"], "did you mean method.beta"),
        (["train", "--set", "epochs=-3"], "epochs = -3 must be ≥ 1"),
        (["train", "--set", "optim.lr=.nan"], "optim.lr = nan must be a finite number"),
        (["train", "--preset", "ncaltec101"], "did you mean 'ncaltech101'"),
        (["train", "--resume", "/nonexistent/run"], "not a run directory"),
        (["eval", "/nonexistent/model.pth"], "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the authors' checkpoint format


def original_transfer_vgg_state_dict(width: float, num_classes: int, T: int, input_size: int) -> dict:
    """A state dict with the key names and shapes BrainCog's ``Transfer_VGG_SNN`` produces (spec §2.1).

    Written from the original module structure (``feature`` = Sequential of BaseConvModule(conv, bn,
    node) and AvgPool2d, heads ``Sequential(Flatten, Linear)``, LIF nodes holding ``threshold`` and
    ``act_fun.alpha`` as frozen parameters, ``coefficient`` a ParameterList), not from our model.
    """
    g = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {f"coefficient.{t}": torch.randn(1, generator=g) for t in range(T)}
    c_in, side = 2, input_size
    for i, entry in enumerate(VGG_PLAN):
        if entry == "P":
            side //= 2
            continue
        c = max(1, round(entry * width))
        sd[f"feature.{i}.conv.weight"] = torch.randn(c, c_in, 3, 3, generator=g) * 0.1
        sd[f"feature.{i}.bn.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"feature.{i}.bn.bias"] = torch.randn(c, generator=g) * 0.1
        sd[f"feature.{i}.bn.running_mean"] = torch.randn(c, generator=g) * 0.1
        sd[f"feature.{i}.bn.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"feature.{i}.bn.num_batches_tracked"] = torch.tensor(1000)
        sd[f"feature.{i}.node.threshold"] = torch.tensor(0.5)
        sd[f"feature.{i}.node.act_fun.alpha"] = torch.tensor(2.0)
        c_in = c
    for head in ("rgb_fc", "dvs_fc"):
        sd[f"{head}.1.weight"] = torch.randn(num_classes, c_in * side * side, generator=g) * 0.1
        sd[f"{head}.1.bias"] = torch.randn(num_classes, generator=g) * 0.1
    return sd


def _timm_checkpoint(path: Path, state_dict: dict, T: int) -> Path:
    """What timm's CheckpointSaver wrote for the authors (``model_best.pth.tar``)."""
    args = argparse.Namespace(
        model="Transfer_VGG_SNN",
        step=T,
        target_dataset="NCALTECH101",
        source_dataset="CALTECH101",
        node_type="LIFNode",
        act_fun="QGateGrad",
        threshold=0.5,
        tau=2.0,
        event_size=48,
        seed=42,
        batch_size=120,
        num_classes=101,
    )
    blob = {"epoch": 287, "arch": "Transfer_VGG_SNN", "state_dict": state_dict, "version": 2, "args": args}
    blob["metric"] = 92.64
    torch.save(blob, path)
    return path


def test_original_layout_loads_into_the_published_vgg_without_missing_or_unexpected_keys(tmp_path):
    original = original_transfer_vgg_state_dict(1.0, 101, 10, 48)
    path = _timm_checkpoint(tmp_path / "model_best.pth.tar", original, T=10)
    loaded = load_weights(path)
    assert loaded.source == "braincog"
    assert loaded.config.model.name == "transfer_vgg_snn" and loaded.config.T == 10
    assert loaded.config.data.pair == "ncaltech101" and loaded.config.model.surrogate == "qgate"
    model = restore_model(loaded, num_classes=101)  # strict: raises on any missing/unexpected key
    assert sum(p.numel() for p in model.parameters()) == 10_153_684  # spec §2.1
    state = model.state_dict()
    assert torch.equal(state["dvs_fc.weight"], original["dvs_fc.1.weight"])
    assert torch.equal(state["feature.10.bn.running_var"], original["feature.10.bn.running_var"])
    assert torch.equal(state["coefficient.3"], original["coefficient.3"])


def test_eval_command_reads_the_authors_checkpoint_format(cache_root, tmp_path, capsys):
    original = original_transfer_vgg_state_dict(0.0625, 4, 2, 16)
    path = _timm_checkpoint(tmp_path / "model_best.pth.tar", original, T=2)
    sets = [
        "data.pair=nshapes",
        "data.nshapes_classes=4",
        "data.nshapes_per_class=10",
        "data.event_size=16",
        "model.width=0.0625",
        "batch_size=8",
        f"data.cache_root={cache_root}",
    ]
    out = tmp_path / "m.json"
    assert main(["eval", str(path), "--set", *sets, "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["source"] == "braincog" and metrics["model"] == "transfer_vgg_snn"
    assert metrics["checkpoint_metric"] == 92.64 and metrics["test_samples"] == 4
    assert math.isfinite(metrics["test_loss"]) and 0 <= metrics["test_top1"] <= 100


def test_a_checkpoint_for_another_shape_is_refused_with_the_reason(cache_root, tmp_path, capsys):
    original = original_transfer_vgg_state_dict(0.0625, 4, 2, 16)
    path = _timm_checkpoint(tmp_path / "model_best.pth.tar", original, T=2)
    sets = ["data.pair=nshapes", "data.nshapes_classes=4", "data.nshapes_per_class=10", "data.event_size=16"]
    sets += ["batch_size=8", f"data.cache_root={cache_root}"]
    assert main(["eval", str(path), "--set", *sets]) == 2  # the model is built at width 1.0
    assert "shape mismatch" in capsys.readouterr().err


def test_our_model_state_is_not_mistaken_for_the_original(tmp_path):
    ours = create_model("transfer_vgg_snn", num_classes=4, T=2, width=0.0625, input_size=16).state_dict()
    assert not any(k.endswith(".threshold") for k in ours)  # thresholds are constructor numbers here


@pytest.mark.parametrize("name", ["quick", "ncaltech101", "cepdvs", "nomniglot"])
def test_presets_are_valid_published_recipes(name):
    from engine.config import list_presets
    from engine.training import check_config

    assert name in list_presets()
    config = check_config(RunConfig.from_preset(name))
    published = {  # spec §9.1: model, T, batch, epochs, schedule, effective lr
        "ncaltech101": ("transfer_vgg_snn", 10, 120, 300, "cosine", 5e-3 * 120 / 1024),
        "cepdvs": ("transfer_resnet18", 6, 120, 200, "cosine", 5e-3 * 120 / 1024),
        "nomniglot": ("transfer_scnn", 12, 16, 50, "step", 0.01875),
    }
    if name in published:
        from engine.training.optim import effective_lr

        model, T, batch, epochs, schedule, lr = published[name]
        assert (config.model.name, config.T, config.batch_size, config.epochs) == (model, T, batch, epochs)
        assert config.schedule.name == schedule and effective_lr(config) == pytest.approx(lr)
