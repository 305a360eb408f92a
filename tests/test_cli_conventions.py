"""Conventions people expect of a command: --version, shell completion, outputs inside the sweep."""

from __future__ import annotations

import subprocess

import pytest

from orchestrator.cli import main as cli_main
from orchestrator.commands.completion import script


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert exit_.value.code == 0
    from importlib.metadata import version

    assert capsys.readouterr().out.strip() == f"spikesweep {version('spikesweep')}"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_completes_commands_and_options(shell):
    text = script(shell)
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    probe = text + (
        '\nCOMP_WORDS=(spikesweep sweep --dr); COMP_CWORD=2; _spikesweep; printf "%s\\n" "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(spikesweep la); COMP_CWORD=1; _spikesweep; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    if shell == "zsh":
        probe = probe.split("\n", 1)[1]  # bash runs the same function body (zsh loads it via bashcompinit)
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.split()
    assert "--dry-run" in out and "landscape" in out


def test_sweep_set_changes_the_base_and_names_another_sweep(tmp_path, capsys):
    from pathlib import Path

    import yaml

    from orchestrator.space import load_space
    from orchestrator.sweepdir import SweepDir

    smoke = Path(__file__).resolve().parent.parent / "search_spaces" / "smoke.yaml"
    plain = load_space(smoke)
    changed = load_space(smoke, ["epochs=2", "optim.lr=1e-2"])
    assert changed.base_config().epochs == 2 and changed.base_config().optim.lr == 1e-2
    assert changed.space_hash() != plain.space_hash()
    sweep_dir = SweepDir.for_space(changed, tmp_path, None)
    sweep_dir.create(changed)
    kept = sweep_dir.space_path.read_text()
    assert kept.startswith(f"# {smoke} with --set epochs=2 optim.lr=1e-2\n")
    assert load_space(sweep_dir.space_path).space_hash() == changed.space_hash()  # the copy is that space
    assert yaml.safe_load(kept)["base"]["epochs"] == 2
    # the same command resumes it; the file without --set is another space
    sweep_dir.check_resumable(load_space(smoke, ["epochs=2", "optim.lr=1e-2"]))
    with pytest.raises(Exception, match="changed search space"):
        sweep_dir.check_resumable(plain)
    # an unknown key: the same did-you-mean as train, nothing written
    code = cli_main(["sweep", str(smoke), "--storage", str(tmp_path / "s"), "--dry-run", "--set", "epoch=2"])
    assert code == 2 and "unknown config key 'epoch'; did you mean epochs?" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_progress_summary_counts_runs_and_estimates_the_rest():
    from pathlib import Path
    from types import SimpleNamespace

    from orchestrator.records.journal import RunRecord
    from orchestrator.space import load_space
    from orchestrator.tune.progress import progress_summary

    space = load_space(
        Path(__file__).resolve().parent.parent / "search_spaces" / "smoke.yaml"
    )  # 2 × 2 runs, 8 epochs
    done = RunRecord(
        "g0000s42", 42, 0, "t1", "grid", "h", {e: {"epoch_time_s": 10.0} for e in range(8)}, seed_done=True
    )
    running = RunRecord(
        "g0000s1024", 1024, 0, "t2", "grid", "h", {e: {"epoch_time_s": 10.0} for e in range(3)}
    )
    recorder = SimpleNamespace(runs={"a": done, "b": running})
    study = SimpleNamespace(space=space, sweep_dir=SimpleNamespace(name="smoke-2"))
    # 21 epochs left (8 for the run not started, 5 for the running one) × 10 s, one run at a time
    assert progress_summary(study, recorder, 125.0) == "1 of 4 runs done, 2m05s elapsed, ETA 3m30s"


def test_a_journal_from_before_the_activity_keys_still_makes_epochs_parquet(tmp_path):
    """Resuming a sweep after an upgrade replays journal lines without the later keys: the table is
    written with those cells missing (null / NaN), never with invented numbers."""
    import math  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415

    import pyarrow as pa  # noqa: PLC0415

    from orchestrator.records.journal import RunRecord  # noqa: PLC0415
    from orchestrator.records.tables import epoch_rows, epochs_schema  # noqa: PLC0415

    old = {"epoch": 0, "best_epoch": 0, "test_top1": 40.0, "alpha_0": 0.5}
    record = RunRecord("g0000s0", 0, 0, "t", "grid", "h", epochs={0: old})
    rows = epoch_rows(SimpleNamespace(runs={"g0000s0:0": record}), max_T=1)
    table = pa.Table.from_pylist(rows, schema=epochs_schema(1))
    row = table.to_pylist()[0]
    assert row["test_top1"] == 40.0 and row["test_samples"] is None and math.isnan(row["energy_uj"])
