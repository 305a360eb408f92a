"""Hostile and malformed inputs: every one is refused with a message, before anything starts or is written.

For each case (a space file or a command line): a non-zero exit, a message naming the file and the key
(and the allowed values where a list exists), no traceback, no Ray session, no sweep directory. Dry
runs and validation only, so the whole module runs in seconds.
"""

from __future__ import annotations

import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "search_spaces" / "smoke.yaml"


def _smoke() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def _with(**changes) -> str:
    raw = _smoke()
    raw.pop("report")  # it names method.beta, which some cases stop varying
    for key, value in changes.items():
        node = raw
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is _DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return yaml.safe_dump(raw, sort_keys=False)


_DELETE = object()

# (id, file text or bytes, fragments the message must contain)
SPACE_CASES: list[tuple[str, str | bytes, list[str]]] = [
    ("alias-bomb", "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n", ["aliases", "not allowed"]),
    ("alias-simple", "name: x\nbase: &b {epochs: 2}\nparameters: *b\n", ["aliases (*b)"]),
    ("duplicate-top-key", "name: a\nname: b\n", ["duplicate key 'name' on lines 1 and 2"]),
    (
        "duplicate-nested-key",
        "name: a\nbase:\n  epochs: 1\n  epochs: 2\n",
        ["duplicate key 'epochs' on lines 3 and 4"],
    ),
    ("deep-nesting", "a: " + "[" * 200 + "]" * 200 + "\n", ["nested deeper than 32"]),
    ("latin1", "name: caf\xe9\n".encode("latin-1"), ["not UTF-8", "byte 0xe9"]),
    ("utf16", "name: x\n".encode("utf-16"), ["UTF-16"]),
    ("not-yaml", "name: [unclosed\n", ["not valid YAML"]),
    ("a-list", "- 1\n- 2\n", ["must be a mapping"]),
    ("seeds-huge-count", _with(seeds=1_000_000_000), ["seeds", "at most 10000"]),
    ("seeds-negative", _with(seeds=[-1]), ["seeds[0]", "integer ≥ 0"]),
    ("seeds-duplicate", _with(seeds=[1, 1]), ["seeds", "twice"]),
    ("seeds-zero", _with(seeds=0), ["seeds", "count ≥ 1"]),
    ("seeds-string", _with(seeds="many"), ["seeds", "non-empty list"]),
    (
        "grid-int-huge",
        _with(parameters={"T": {"type": "int", "low": 1, "high": 1_000_000_000}}),
        ["grid has", "at most 100000"],
    ),
    (
        "grid-product-huge",
        _with(parameters={f"optim.{k}": list(range(60)) for k in ("lr", "weight_decay", "eps")}),
        ["grid has 216000 points"],
    ),
    ("gpu-tiny", _with(resources={"cpu": 1, "gpu": 1e-12}), ["resources.gpu", "1/n"]),
    ("gpu-third-of-65", _with(resources={"cpu": 1, "gpu": 1 / 65}), ["resources.gpu", "64"]),
    ("gpu-negative", _with(resources={"cpu": 1, "gpu": -1}), ["resources.gpu", "≥ 0"]),
    ("gpu-fractional-many", _with(resources={"cpu": 1, "gpu": 1.5}), ["resources.gpu", "whole number"]),
    ("cpu-zero", _with(resources={"cpu": 0, "gpu": 0}), ["resources.cpu", "> 0"]),
    ("cpu-string", _with(resources={"cpu": "two", "gpu": 0}), ["resources.cpu", "number"]),
    ("cpu-nan", _with(resources={"cpu": float("nan"), "gpu": 0}), ["resources.cpu"]),
    ("resources-unknown-key", _with(resources={"cpu": 1, "tpu": 1}), ["resources.tpu", "allowed: cpu, gpu"]),
    ("unknown-top-key", _with(paramters={"method.beta": [0]}), ["paramters", "did you mean parameters"]),
    ("unknown-config-key", _with(parameters={"method.bta": [0.0]}), ["method.bta", "method.beta"]),
    ("unknown-base-key", _with(base={"epoch": 2}), ["base.epoch", "epochs"]),
    ("name-traversal", _with(name="../../etc"), ["name", "letters, digits"]),
    ("name-shell", _with(name="x$(touch pwned)"), ["name", "letters, digits"]),
    ("name-newline", _with(name="x\nrm -rf /"), ["name"]),
    ("search-mode", _with(search={"mode": "bayes"}), ["search.mode", "allowed: grid, random, optuna"]),
    ("pruner-unknown", _with(pruner={"name": "ashaa"}), ["pruner", "median"]),
    (
        "objective-metric",
        _with(objective={"metric": "accuracy", "mode": "max"}),
        ["objective.metric", "best_test_top1"],
    ),
    (
        "objective-mode",
        _with(objective={"metric": "best_test_top1", "mode": "up"}),
        ["objective.mode", "max, min"],
    ),
    ("beta-negative", _with(parameters={"method.beta": [-1.0]}), ["method.beta", "≥ 0"]),
    ("lr-zero", _with(parameters={"optim.lr": [0.0]}), ["optim.lr", "> 0"]),
    (
        "ratio-above-one",
        _with(parameters={"data.traindata_ratio": [1.5]}),
        ["data.traindata_ratio", "(0, 1]"],
    ),
    ("ratio-zero", _with(parameters={"data.traindata_ratio": [0.0]}), ["data.traindata_ratio", "(0, 1]"]),
    ("model-unknown", _with(parameters={"model.name": ["resnet9000"]}), ["model", "transfer_vgg_snn"]),
    ("schedule-unknown", _with(parameters={"sliding.schedule": ["sigmoid"]}), ["sliding", "poly"]),
    (
        "event-size-too-small-for-model",
        _with(base={"data": {"event_size": 8}}),
        ["event_size", "at least 16 px"],
    ),
    ("cka-batch-one", _with(base={"batch_size": 1}), ["batch_size", "CKA"]),
    ("preset-unknown", _with(preset="quik"), ["preset", "quick"]),
    ("max-concurrent-zero", _with(max_concurrent_trials=0), ["max_concurrent_trials", "≥ 1"]),
    ("report-kind", _with(report={"kind": "pretty"}), ["report.kind", "standard, data_ratio, ablation"]),
    (
        "report-baseline-key",
        _with(report={"baseline": {"method.gamma": 1}}),
        ["report.baseline.method.gamma"],
    ),
    ("arms-not-list", _with(arms={"a": 1}), ["arms", "non-empty list"]),
    ("arm-sets-seed", _with(arms=[{"name": "a", "set": {"seed": 3}}]), ["seed", "seeds"]),
    ("mlflow-enabled-string", _with(mlflow={"enabled": "yes"}), ["mlflow.enabled", "true or false"]),
    (
        "mlflow-checkpoint-unknown",
        _with(mlflow={"log_checkpoint": "bset"}),
        ["mlflow.log_checkpoint", "'bset'", "did you mean best", "allowed: none, best"],
    ),
    ("progress-negative", _with(progress={"interval_s": -1}), ["progress.interval_s", "> 0"]),
]


def _no_ray() -> bool:
    ray = sys.modules.get("ray")
    return ray is None or not ray.is_initialized()


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in SPACE_CASES], ids=[c[0] for c in SPACE_CASES])
def test_malformed_space_is_refused_with_a_message(tmp_path, capsys, text, fragments):
    space = tmp_path / "space.yaml"
    space.write_bytes(text if isinstance(text, bytes) else text.encode())
    storage = tmp_path / "sweeps"
    code = cli_main(["sweep", str(space), "--storage", str(storage), "--dry-run"])
    err = capsys.readouterr().err
    assert code != 0
    assert str(space) in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err
    assert _no_ray()
    assert not storage.exists()


def test_at_least_forty_distinct_hostile_space_files():
    assert len({c[0] for c in SPACE_CASES}) == len(SPACE_CASES) >= 40


COMMAND_CASES: list[tuple[str, list[str], list[str]]] = [
    ("name-traversal", ["--name", "../../x"], ["--name", "'../../x'", "letters, digits"]),
    ("name-absolute", ["--name", "/tmp/x"], ["--name"]),
    ("name-shell", ["--name", "x$(id)"], ["--name"]),
    ("storage-is-a-file", ["--storage", "{file}"], ["--storage", "is a file, not a directory"]),
    ("storage-under-a-file", ["--storage", "{file}/sub"], ["its parent", "is a file"]),
    ("space-missing", ["{missing}"], ["does not exist"]),
    ("space-is-a-directory", ["{dir}"], ["is a directory, not a file"]),
]


@pytest.mark.parametrize(
    ("argv", "fragments"), [c[1:] for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES]
)
def test_hostile_command_lines_are_refused(tmp_path, capsys, argv, fragments):
    afile = tmp_path / "afile"
    afile.write_text("x")
    fill = {"file": str(afile), "missing": str(tmp_path / "nope.yaml"), "dir": str(tmp_path)}
    argv = [a.format(**fill) for a in argv]
    space = argv.pop(0) if argv and not argv[0].startswith("--") else str(SMOKE)
    storage = [] if "--storage" in argv else ["--storage", str(tmp_path / "sweeps")]
    code = cli_main(["sweep", space, *storage, *argv, "--dry-run"])
    err = capsys.readouterr().err
    assert code != 0
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err and _no_ray()
    assert not (tmp_path / "sweeps").exists()


def test_set_parses_yaml_12_numbers():
    from engine.config import RunConfig

    config = RunConfig.from_preset("quick").with_overrides(["optim.lr=1e-3", "optim.eps=1.0e+6", "epochs=3"])
    assert config.optim.lr == 1e-3 and config.optim.eps == 1e6
    assert RunConfig().with_overrides(["optim.lr=1E6"]).optim.lr == 1e6


def test_yaml_files_read_exponent_numbers_and_refuse_unreadable_ones(tmp_path, monkeypatch):
    from engine.errors import ConfigError
    from engine.yamlio import read_yaml_file

    path = tmp_path / "c.yaml"
    path.write_text("lr: 5e-3\nn: 3\n")
    assert read_yaml_file(path, "config file") == {"lr": 5e-3, "n": 3}
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="at most 1048576 bytes"):
        read_yaml_file(big, "config file")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ConfigError, match=r"c.yaml' cannot be read: permission denied"):
        read_yaml_file(path, "config file")


def test_resume_refuses_state_another_user_could_have_written(tmp_path):
    """A planted tuner.pkl whose unpickling would create a file never runs."""
    import os

    from orchestrator.space import load_space
    from orchestrator.sweepdir import SweepDir
    from orchestrator.trust import UntrustedStateError
    from orchestrator.tune.driver import run_sweep

    space_file = tmp_path / "smoke.yaml"
    space_file.write_text(SMOKE.read_text())
    space = load_space(space_file)
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    planted = sweep_dir.root / "tuner.pkl"
    planted.write_bytes(pickle.dumps(Payload()))
    # the attacker's way in: a directory others can write
    sweep_dir.root.chmod(0o777)
    with pytest.raises(UntrustedStateError) as err:
        run_sweep(space_file, storage=tmp_path / "sweeps")
    assert f"{sweep_dir.root}: writable by group and others" in str(err.value)
    assert "chmod -R go-w" in str(err.value)
    assert not marker.exists() and _no_ray()

    sweep_dir.root.chmod(0o755)
    planted.chmod(0o666)
    with pytest.raises(UntrustedStateError, match=r"tuner.pkl: writable by group and others"):
        run_sweep(space_file, storage=tmp_path / "sweeps")
    planted.chmod(0o644)
    if os.geteuid() == 0:  # a file another user owns (only root can make one here)
        os.chown(planted, 65534, 65534)
        with pytest.raises(UntrustedStateError, match=r"tuner.pkl: owned by uid 65534"):
            run_sweep(space_file, storage=tmp_path / "sweeps")
    assert not marker.exists() and _no_ray()


def test_a_sweep_that_never_started_can_be_rerun_with_an_edited_space(tmp_path, capsys):
    from orchestrator.space import load_space
    from orchestrator.sweepdir import SweepDir
    from orchestrator.tune.driver import run_sweep

    raw = _smoke()
    raw["resources"] = {"cpu": 1, "gpu": 1}  # this machine has no GPU
    space_file = tmp_path / "smoke.yaml"
    space_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match="cluster has .* 0 GPU"):
        run_sweep(space_file, storage=tmp_path / "sweeps")
    assert not (tmp_path / "sweeps").exists()  # the resource check runs before anything is written

    # A directory left by such a failed start (only sweep.json and space.yaml), then an edited space:
    SweepDir.for_space(load_space(space_file), tmp_path / "sweeps", None).create(load_space(space_file))
    raw["base"]["epochs"] = 2
    space_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match="cluster has .* 0 GPU"):  # the edit is accepted; the GPU still lacks
        run_sweep(space_file, storage=tmp_path / "sweeps")
    assert "never started a trial" in capsys.readouterr().out


def test_dry_run_exits_non_zero_when_the_run_could_not_start(tmp_path, capsys):
    raw = _smoke()
    raw["resources"] = {"cpu": 1, "gpu": 1}
    space_file = tmp_path / "gpu.yaml"
    space_file.write_text(yaml.safe_dump(raw))
    assert cli_main(["sweep", str(space_file), "--storage", str(tmp_path / "s"), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "the real run could not start:" in out and "0 GPU" in out
    raw["resources"] = {"cpu": 64, "gpu": 0}
    space_file.write_text(yaml.safe_dump(raw))
    assert cli_main(["sweep", str(space_file), "--storage", str(tmp_path / "s"), "--dry-run"]) == 1
    assert "needs 64 CPU" in capsys.readouterr().out
    assert not (tmp_path / "s").exists()


HOSTILE = [
    "$(touch {m})",
    "`touch {m}`",
    "a;touch {m}",
    "a&&touch {m}",
    "a|touch {m}",
    "a'b",
    'a"b',
    "a b",
    "a\ntouch {m}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_sbatch_renderer_never_lets_a_value_run(tmp_path, template):
    from engine.errors import ConfigError
    from orchestrator.slurm.render import SweepJob, render_sweep_script
    from orchestrator.slurm.request import SlurmRequest

    marker = tmp_path / "pwned"
    value = template.format(m=marker)
    request = SlurmRequest(nodes=1, cpus_per_node=2, time="1:00:00")
    python = Path(sys.executable)
    # 1. as the sweep name: refused (the space's name rule)
    with pytest.raises(ConfigError, match="--name"):
        render_sweep_script(request, SweepJob("x" + value, tmp_path, tmp_path / "s.yaml", python, tmp_path))
    # 2. in the storage path: refused where #SBATCH lines cannot hold it, otherwise only ever quoted
    storage = tmp_path / ("st" + value)
    job = SweepJob("ok", storage, storage / "ok" / "slurm" / "s.yaml", python, tmp_path)
    try:
        script = render_sweep_script(request, job)
    except ConfigError as exc:
        assert any(c in value for c in " \n'\"") and "#SBATCH" in str(exc)
        return
    for line in script.splitlines():
        if value in line and not line.startswith("#"):
            name, _, rhs = line.partition("=")
            assert name.isidentifier() and shlex.split(rhs)[0].startswith(str(storage)), line
    # the assignment block, run by bash, gives the values back and runs nothing
    block = script.split("# --- what to run", 1)[1].split("# --- derived", 1)[0]
    shown = subprocess.run(
        ["bash", "-c", block + '\nprintf "%s\\n%s" "$STORAGE" "$SCRIPT_PATH"'], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [str(storage), str(job.script_path)]
    assert not marker.exists()


def test_random_bytes_are_not_an_event_recording(tmp_path, capsys):
    import numpy as np

    from engine.data.binfile import read_bin_events
    from engine.data.nshapes import generate_nshapes
    from engine.errors import DatasetError

    root = tmp_path / "ds"
    generate_nshapes(root, classes=2, per_class=4, seed=0)
    victim = sorted((root / "Caltech101").glob("*/image_0002.bin"))[0]
    victim.write_bytes(np.random.default_rng(0).integers(0, 256, 5 * 4000, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError) as err:
        read_bin_events(victim)
    assert str(victim) in str(err.value) and "timestamps go backwards" in str(err.value)
    argv = ["data", "check", "--pair", "ncaltech101", "--root", str(root), "--contents"]
    assert cli_main([*argv, "--set", "data.train_portion=0.5"]) == 1
    out = capsys.readouterr().out
    assert "1 of 8 event files are unreadable or implausible" in out and str(victim) in out


def test_an_unwritable_cache_gets_a_message_naming_it(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("SPIKESWEEP_CACHE", str(afile / "cache"))
    code = cli_main(["data", "check", "--pair", "nshapes"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert str(afile / "cache") in err and "SPIKESWEEP_CACHE" in err
