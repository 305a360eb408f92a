"""The Optuna study behind the Tune searcher, across driver restarts (real Optuna on SQLite, no Ray).

The end-to-end tests cannot choose the instant a driver dies; these drive the planner's Tune-facing
methods directly to pin the cases that instant decides: an Optuna trial created after the last Tune
snapshot is handed out again (never duplicated), a Tune trial restarted after it errored opens a new
attempt, and NaN never reaches the study."""

from __future__ import annotations

import math
from types import SimpleNamespace

import optuna
import pytest
import yaml
from ray.tune.search import Searcher

from orchestrator.plan import PlanKey
from orchestrator.records import COMPLETE_KEY, SEED_KEY
from orchestrator.space import load_space
from orchestrator.sweepdir import SweepDir
from orchestrator.tune.searcher import OptunaSearcher, TrialPlanner
from orchestrator.tune.study import SweepStudy

BASE = {"T": 2, "epochs": 2, "batch_size": 8, "model": {"width": 0.125}}


@pytest.fixture
def planner_factory(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "study",
                "preset": "quick",
                "base": BASE,
                "parameters": {"method.beta": [0.0, 0.5]},
                "seeds": [7],
                "objective": {"metric": "test_loss", "mode": "min"},
            }
        )
    )
    space = load_space(path)
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    return lambda: TrialPlanner(SweepStudy(space, sweep_dir))


def epoch(value: float, index: int, last: bool = False) -> dict:
    return {"epoch": index, "test_loss": value, SEED_KEY: 7, COMPLETE_KEY: last}


def states(planner: TrialPlanner) -> list[str]:
    return [t.state.name for t in planner.study.optuna.trials]


def test_orphaned_trial_is_handed_out_again_after_a_driver_restart(planner_factory) -> None:
    first = planner_factory()
    config = first.next_trial("tuneA")
    assert config["plan_key"] == "g0000s7" and states(first) == ["RUNNING"]
    first.study.report("tuneA", epoch(1.5, 0), config, may_prune=True)

    # The driver dies before Tune snapshotted tuneA: the restored searcher knows no Tune trial.
    second = planner_factory()
    again = second.next_trial("tuneB")
    assert again == config  # same plan key, params and seeds …
    assert len(second.study.optuna.trials) == 1  # … and the same Optuna trial, not a duplicate
    assert second.study.optuna.trials[0].user_attrs["tune_trial_id"] == "tuneB"
    assert second.study.optuna.trials[0].user_attrs["seed"] == 7  # visible in Optuna's own views
    assert second.next_trial("tuneC")["plan_key"] == "g0001s7"
    assert second.next_trial("tuneD") == Searcher.FINISHED  # everything planned exists

    # The replayed epoch is not reported twice; the trial finishes once.
    second.study.report("tuneB", epoch(1.5, 0), again, may_prune=True)
    second.study.report("tuneB", epoch(1.2, 1, last=True), again, may_prune=True)
    assert second.study.complete("tuneB", epoch(1.2, 1, last=True), error=False) == "COMPLETE"
    assert second.study.complete("tuneB", epoch(1.2, 1, last=True), error=False) is None
    assert second.study.optuna.trials[0].intermediate_values == {0: 1.5, 1: 1.2}
    assert not second.is_complete()
    second.study.complete("tuneC", epoch(1.4, 1, last=True), error=False)
    assert second.is_complete()
    assert states(second) == ["COMPLETE", "COMPLETE"]


def test_errored_trial_resumed_by_tune_opens_a_new_attempt(planner_factory, tmp_path) -> None:
    planner = planner_factory()
    config = planner.next_trial("tuneA")
    assert planner.study.complete("tuneA", None, error=True) == "FAILED"
    OptunaSearcher(planner).save(str(tmp_path / "searcher.json"))  # Tune's experiment snapshot

    # `Tuner.restore(..., resume_errored=True)` runs the same Tune trial again.
    restored = planner_factory()
    OptunaSearcher(restored).restore(str(tmp_path / "searcher.json"))
    restored.study.report("tuneA", epoch(1.3, 0), config, may_prune=True)
    assert states(restored) == ["FAIL", "RUNNING"]
    attempt = restored.study.optuna.trials[1]
    assert attempt.user_attrs["plan_key"] == "g0000s7" and attempt.user_attrs["attempt"] == 2
    assert attempt.params == restored.study.optuna.trials[0].params
    restored.study.complete("tuneA", epoch(1.3, 1, last=True), error=False)
    assert states(restored) == ["FAIL", "COMPLETE"]
    assert [e.number for e in restored.study.latest_entries()] == [1]  # the plan key's newest attempt counts


def test_nan_never_reaches_optuna(planner_factory) -> None:
    planner = planner_factory()
    config = planner.next_trial("tuneA")
    assert not planner.study.report("tuneA", epoch(math.nan, 0), config, may_prune=True)
    assert planner.study.complete("tuneA", epoch(math.inf, 1, last=True), error=False) == "FAILED"
    trial = planner.study.optuna.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL and trial.intermediate_values == {}
    assert "non-finite test_loss" in trial.user_attrs["fail_reason"]


def test_mlflow_outage_is_a_warning_not_a_crash(planner_factory, tmp_path, caplog) -> None:
    from engine.training.records import metric_keys
    from orchestrator.records.journal import SweepRecorder
    from orchestrator.tune.mlflow_logger import MlflowSweepLogger

    planner = planner_factory()
    recorder = SweepRecorder(tmp_path / "journal.jsonl", metric_keys(2))
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    logger = MlflowSweepLogger(
        planner,
        recorder,
        planner.study.sweep_dir.read_meta(),
        tracking_uri=f"sqlite:///{blocked}/mlflow.db",
        experiment="study",
        artifact_location=None,
        space_file=planner.study.sweep_dir.space_path,
    )
    with caplog.at_level("WARNING"):
        logger.setup()
        logger.on_experiment_end([])
    assert "the sweep goes on" in caplog.text and "mlflow.db" in caplog.text


class _DriverKilled(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way up catches it."""


def test_epochs_committed_without_their_tag_are_not_logged_again(planner_factory, tmp_path, monkeypatch):
    """MLflow's SQL store commits a log_batch as separate transactions (params, metrics, tags): a driver
    killed between the metrics and the tags left an epoch that the resumed driver logged a second time
    (seen in test_killed_driver_resumes_without_duplicates). The resumed logger reads the last epoch
    back from the run's own ``epoch`` metric."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from engine.training.records import metric_keys
    from orchestrator.plan import PlannedTrial
    from orchestrator.records.journal import SweepRecorder
    from orchestrator.tune.mlflow_logger import MlflowSweepLogger

    planner = planner_factory()
    config = planner.next_trial("tuneA")
    trial = SimpleNamespace(trial_id="tuneA", config=config)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recorder = SweepRecorder(tmp_path / "journal.jsonl", metric_keys(2))

    def driver() -> MlflowSweepLogger:
        recorder.reload()
        return MlflowSweepLogger(
            planner,
            recorder,
            planner.study.sweep_dir.read_meta(),
            tracking_uri=uri,
            experiment="study",
            artifact_location=(tmp_path / "artifacts").as_uri(),
            space_file=planner.study.sweep_dir.space_path,
            flush_interval_s=0.0,
        )

    def result(e: int) -> dict:
        reported = {**epoch(1.0 - 0.1 * e, e), "train_loss": 1.0}
        recorder.add("tuneA", PlannedTrial.from_config(config), reported)  # the callback journals first
        return reported

    first = driver()
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, result(0))  # epoch 0: metrics and tag
    original = SqlAlchemyStore._set_tags

    def killed(store, run_id, tags):
        if any(t.key == "spikesweep.last_epoch" for t in tags):
            raise _DriverKilled
        return original(store, run_id, tags)

    monkeypatch.setattr(SqlAlchemyStore, "_set_tags", killed)
    with pytest.raises(_DriverKilled):
        first.log_trial_result(2, trial, result(1))  # epoch 1's metrics committed, its tag not
    monkeypatch.setattr(SqlAlchemyStore, "_set_tags", original)

    resumed = driver()
    resumed.log_trial_result(3, trial, result(2))
    resumed.log_trial_end(trial)
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("study").experiment_id], "tags.`spikesweep.role` = 'trial'"
    )
    assert run.data.tags["spikesweep.last_epoch"] == "2"
    for name in ("test_loss", "epoch", "train_loss"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == [0, 1, 2], name


def test_trial_asked_but_never_recorded_is_closed(planner_factory) -> None:
    planner = planner_factory()
    planner.study.optuna.ask()  # a driver that died between asking the sampler and recording the trial
    restarted = planner_factory()
    assert restarted.next_trial("tuneA")["plan_key"] == "g0000s7"
    assert states(restarted) == ["FAIL", "RUNNING"]


def test_random_configurations_run_on_every_search_seed_across_a_restart(tmp_path) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "random",
                "preset": "quick",
                "base": BASE,
                "search": {"mode": "random", "samples": 2, "sampler_seed": 5},
                "parameters": {"optim.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}},
                "seeds": [1, 2],
            }
        )
    )
    space = load_space(path)
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    first = TrialPlanner(SweepStudy(space, sweep_dir))
    a = first.next_trial("t1")
    assert a["plan_key"] == "o0000s1" and a["seeds"] == [1]
    # The driver dies here; the second seed of the sampled configuration was only queued in memory.
    second = TrialPlanner(SweepStudy(space, sweep_dir))
    handed = [second.next_trial(f"u{i}") for i in range(5)]
    keys = [h["plan_key"] if isinstance(h, dict) else h for h in handed]
    assert keys == ["o0000s1", "o0000s2", "o0001s1", "o0001s2", Searcher.FINISHED]
    assert handed[0]["params"] == handed[1]["params"] != handed[2]["params"] == handed[3]["params"]
    assert handed[0]["config_hash"] == handed[1]["config_hash"]
    assert len(second.study.optuna.trials) == 4


@pytest.mark.parametrize(
    ("pruner", "expected"),
    [
        ({"name": "median", "n_startup_trials": 1}, optuna.pruners.MedianPruner),
        (
            {"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
            optuna.pruners.SuccessiveHalvingPruner,
        ),
        ({"name": "hyperband", "min_resource": 1, "reduction_factor": 2}, optuna.pruners.HyperbandPruner),
        ({"name": "wilcoxon", "p_threshold": 0.2}, optuna.pruners.WilcoxonPruner),
        ({"name": "none"}, optuna.pruners.NopPruner),
    ],
)
def test_every_optuna_pruner_prunes_a_clearly_worse_trial(tmp_path, pruner, expected) -> None:
    """The configured pruner is the study's, and it stops a trial far behind a finished one."""
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "p",
                "preset": "quick",
                "base": {**BASE, "epochs": 8},
                "parameters": {"method.beta": [0.0, 0.5]},
                "seeds": 4 if pruner["name"] == "wilcoxon" else [0],
                "pruner": pruner,
                "objective": {"metric": "test_loss", "mode": "min"},
                "max_concurrent_trials": 1,
            }
        )
    )
    space = load_space(path)
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    planner = TrialPlanner(SweepStudy(space, sweep_dir))
    assert type(planner.study.optuna.pruner) is expected
    seed_aware = pruner["name"] == "wilcoxon"
    steps = 4 if seed_aware else 8

    def result(value: float, step: int) -> dict:
        last = step == steps - 1
        if seed_aware:
            return {
                "test_loss": value,
                SEED_KEY: step,
                "seed_index": step,
                "spikesweep_seed_done": True,
                COMPLETE_KEY: last,
            }
        return epoch(value, step, last)

    good = planner.next_trial("good")
    for step in range(steps):
        assert not planner.study.report("good", result(1.0 + 0.01 * step, step), good, may_prune=True)
    assert planner.study.complete("good", result(1.07, steps - 1), error=False) == "COMPLETE"
    worse = planner.next_trial("worse")
    stopped_at = next(
        (
            step
            for step in range(steps)
            if planner.study.report("worse", result(100.0 + step, step), worse, may_prune=True)
        ),
        None,
    )
    if expected is optuna.pruners.NopPruner:
        assert stopped_at is None
    else:
        assert stopped_at is not None and stopped_at < steps - 1
        assert planner.study.complete("worse", result(100.0, stopped_at), error=False) == "PRUNED"


@pytest.mark.parametrize(
    ("text", "kind", "config", "seed"),
    [
        ("g0003s42", "g", "g0003", 42),
        ("o0007s1", "o", "o0007", 1),
        ("c0a1b2c3d4e5fs4", "c", "c0a1b2c3d4e5f", 4),
        ("g0012", "g", "g0012", None),
    ],
)
def test_plan_keys_are_built_and_read_in_one_place(text, kind, config, seed):
    key = PlanKey.parse(text)
    assert (key.kind, key.config, key.seed, str(key)) == (kind, config, seed, text)
    assert str(PlanKey.grid(3, 42)) == "g0003s42" and str(PlanKey.sampled(7).with_seed(1)) == "o0007s1"
    assert str(PlanKey.confirm("0a1b2c3d4e5f", 4)) == "c0a1b2c3d4e5fs4"


@pytest.mark.parametrize("text", ["x0001s1", "g0001s", "g", "G0001s1", "g00z1s1"])
def test_a_malformed_plan_key_is_refused(text):
    with pytest.raises(ValueError, match="is not a plan key"):
        PlanKey.parse(text)
