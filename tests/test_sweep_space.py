"""Search-space files: every mistake fails before launch, naming the file, the key path and the allowed
values; every shipped space validates and dry-runs; the planner gives exact seeds per configuration and
stable plan keys. No Ray here (it is the fast half of the orchestrator tests)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from engine.config import RunConfig
from engine.errors import ConfigError, SpikesweepError
from orchestrator.cli import main as cli_main
from orchestrator.plan import build_plan, confirm_trials, rank_configs
from orchestrator.space import SpaceError, load_space
from orchestrator.sweepdir import SweepDir
from orchestrator.tune.driver import run_sweep

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))

TINY_BASE = {
    "T": 2,
    "epochs": 2,
    "batch_size": 8,
    "model": {"width": 0.125},
    "data": {"pair": "nshapes", "nshapes_classes": 4, "nshapes_per_class": 12, "event_size": 16},
}


def write_space(tmp_path: Path, **overrides) -> Path:
    space = {"name": "t", "preset": "quick", "base": TINY_BASE, "parameters": {"method.beta": [0.0, 0.5]}}
    space.update(overrides)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------------
# bad input: file, key path, allowed values


@pytest.mark.parametrize(
    ("overrides", "key_path", "allowed"),
    [
        ({"searchh": {"mode": "grid"}}, "searchh", "search"),  # unknown top-level key
        ({"parameters": {"method.betta": [0.0]}}, "parameters.method.betta", "method.beta"),
        ({"parameters": {"method.beta": []}}, "parameters.method.beta", "at least one value"),
        (
            {"parameters": {"method.beta": "0.5"}},
            "parameters.method.beta",
            "choice, uniform, loguniform, int",
        ),
        (
            {"parameters": {"optim.lr": {"type": "gaussian"}}},
            "parameters.optim.lr.type",
            "uniform, loguniform",
        ),
        (
            {
                "search": {"mode": "optuna", "samples": 4},
                "parameters": {"optim.lr": {"type": "uniform", "low": 0.1, "high": 0.01}},
            },
            "parameters.optim.lr",
            "must be < high",
        ),
        (
            {
                "search": {"mode": "optuna", "samples": 4},
                "parameters": {"optim.lr": {"type": "loguniform", "low": 0.0, "high": 0.1}},
            },
            "parameters.optim.lr.low",
            "> 0",
        ),
        (
            {"parameters": {"optim.lr": {"type": "uniform", "low": 0.0, "high": 0.1}}},
            "parameters.optim.lr",
            "grid mode",
        ),
        ({"resources": {"cpu": 1, "gpu": 0.3}}, "resources.gpu", "1/n"),
        ({"resources": {"cpu": "two"}}, "resources.cpu", "number > 0"),
        (
            {"parameters": {"model.name": ["transfer_vgg_snn", "vgg_snnn"]}},
            "model.name=vgg_snnn",
            "transfer_resnet18",
        ),
        ({"parameters": {"sliding.schedule": ["poly", "expo"]}}, "sliding.schedule=expo", "cosine"),
        ({"parameters": {"T": ["ten"]}}, "T=ten", "an integer"),
        ({"pruner": {"name": "median", "n_startup": 3}}, "pruner.n_startup", "n_warmup_steps"),
        ({"pruner": "patience"}, "pruner.name", "successive_halving"),
        ({"search": {"mode": "bayes"}}, "search.mode", "grid, random, optuna"),
        ({"search": {"mode": "random"}}, "search.samples", "number of configurations"),
        ({"seeds": [1, 1]}, "seeds", "twice"),
        ({"seeds": []}, "seeds", "count"),
        ({"objective": {"metric": "accuracy"}}, "objective.metric", "best_test_top1"),
        ({"preset": "fast"}, "preset", "quick"),
        ({"base": {"model": {"widht": 0.5}}}, "base.model.widht", "model.width"),
        ({"arms": [{"name": "a", "set": {"method.beta": -1.0}}]}, "arms[a].set", "must be ≥ 0"),
        ({"confirm": {"top_k": 2}, "pruner": "wilcoxon"}, "confirm", "wilcoxon"),
        ({"max_concurrent_trials": 0}, "max_concurrent_trials", "≥ 1"),
        ({"report": {"baseline": {"method.betta": 0.0}}}, "report.baseline.method.betta", "method.beta"),
        (
            {"arms": [{"name": "full", "set": {}}], "report": {"baseline": {"arm": "ful"}}},
            "report.baseline.arm",
            "arms: full",
        ),
    ],
)
def test_bad_space_names_file_key_and_allowed_values(tmp_path, overrides, key_path, allowed) -> None:
    path = write_space(tmp_path, **overrides)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message
    assert key_path in message
    assert allowed in message


def test_bad_space_fails_before_anything_is_created(tmp_path) -> None:
    path = write_space(tmp_path, parameters={"method.beta": []})
    with pytest.raises(ConfigError):
        run_sweep(path, storage=tmp_path / "sweeps")
    assert not (tmp_path / "sweeps").exists()


def test_cli_reports_bad_space_without_traceback(tmp_path, capsys) -> None:
    path = write_space(tmp_path, resources={"gpu": 0.3})
    assert cli_main(["sweep", str(path), "--storage", str(tmp_path / "s"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "resources.gpu" in err and "Traceback" not in err


def test_missing_dataset_fails_before_launch(tmp_path) -> None:
    base = {**TINY_BASE, "data": {"pair": "ncaltech101", "root": str(tmp_path / "nowhere")}}
    path = write_space(tmp_path, base=base)
    with pytest.raises(SpikesweepError, match="nowhere"):
        run_sweep(path, storage=tmp_path / "sweeps")
    assert not (tmp_path / "sweeps").exists()


# --------------------------------------------------------------------------------------------------
# shipped spaces


def test_every_shipped_space_is_present() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"smoke", "ncaltech101_main", "cepdvs_main", "ncaltech101_ablation", "nomniglot_main"} <= names
    explore = [load_space(p) for p in SHIPPED if "explore" in p.stem]
    assert explore and all(
        s.search.mode == "optuna" and s.confirm and s.pruner.name != "none" for s in explore
    )
    varied = set().union(*(s.varied_keys() for s in explore))
    assert {"T", "method.beta", "sliding.schedule", "sliding.pow", "optim.lr"} <= varied


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_space_validates_and_dry_runs(path, tmp_path, capsys) -> None:
    space = load_space(path)
    assert space.name == path.stem
    code = cli_main(["sweep", str(path), "--storage", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    # A truthful dry run: the real datasets (no data.root here) and GPU spaces cannot start on this
    # machine, and the dry run says so with a non-zero exit; the built-in CPU spaces can.
    runnable = space.base_config().data.pair == "nshapes" and space.resources.gpu == 0
    assert code == (0 if runnable else 1)
    assert ("the real run could not start:" in out) is not runnable
    plan = build_plan(space)
    assert f"at most {plan.max_trials()}" in out
    assert "resources per trial" in out and "max concurrent trials" in out
    assert not any(tmp_path.iterdir()), "a dry run must not create anything"


def test_published_configurations() -> None:
    main = load_space(REPO / "search_spaces" / "ncaltech101_main.yaml")
    plan = build_plan(main)
    assert main.seeds == (42, 1024, 90210)
    assert sorted({t.params["method.beta"] for t in plan.fixed}) == [0.0, 0.5]
    base = main.base_config()
    assert (base.model.name, base.T, base.batch_size, base.epochs) == ("transfer_vgg_snn", 10, 120, 300)
    assert base.method.tet and not base.method.regularization
    ablation = load_space(REPO / "search_spaces" / "ncaltech101_ablation.yaml")
    arms = {a.name: a.overrides for a in ablation.arms}
    assert arms["no_hsv"] == {"method.static_channel": "blue"}
    assert arms["no_sliding_reg"]["sliding.schedule"] == "step"
    assert ablation.seeds == (42,)
    omni = load_space(REPO / "search_spaces" / "nomniglot_main.yaml").base_config()
    assert (omni.model.name, omni.T, omni.batch_size, omni.epochs, omni.schedule.name) == (
        "transfer_scnn",
        12,
        16,
        50,
        "step",
    )


# --------------------------------------------------------------------------------------------------
# planning


def test_grid_times_seeds_gives_exactly_n_seeds_per_configuration(tmp_path) -> None:
    path = write_space(
        tmp_path,
        parameters={"method.beta": [0.0, 0.5], "sliding.pow": [2.0, 3.0, 4.0]},
        arms=[{"name": "v", "set": {}}, {"name": "blue", "set": {"method.static_channel": "blue"}}],
        seeds=3,
    )
    plan = build_plan(load_space(path))
    assert len(plan.fixed) == 2 * 3 * 2 * 3
    per_config: dict[str, list[int]] = {}
    for trial in plan.fixed:
        per_config.setdefault(trial.config_hash, []).extend(trial.seeds)
    assert len(per_config) == 12
    assert all(sorted(seeds) == [0, 1, 2] for seeds in per_config.values())
    assert len({t.plan_key for t in plan.fixed}) == len(plan.fixed)
    again = build_plan(load_space(path))
    assert [t.plan_key for t in again.fixed] == [t.plan_key for t in plan.fixed]
    # The config hash is the engine's, without the seed.
    first = plan.fixed[0]
    config = load_space(path).base_config().with_overrides({**first.overrides, "seed": 99})
    assert config.config_hash() == first.config_hash


def test_wilcoxon_trials_carry_all_seeds(tmp_path) -> None:
    plan = build_plan(load_space(write_space(tmp_path, seeds=[3, 4, 5], pruner={"name": "wilcoxon"})))
    assert len(plan.fixed) == 2
    assert all(t.seeds == (3, 4, 5) for t in plan.fixed)
    assert plan.max_engine_runs() == 6


def test_confirm_stage_reruns_top_k_on_the_other_seeds(tmp_path) -> None:
    space = load_space(write_space(tmp_path, seeds=[1, 2, 3], confirm={"top_k": 1}))
    plan = build_plan(space)
    assert [t.stage for t in plan.fixed] == ["search", "search"] and space.search.seeds == (1,)
    ranking = rank_configs(
        [(t.config_hash, t.params, v) for t, v in zip(plan.fixed, [70.0, 80.0], strict=True)], "max"
    )
    trials = confirm_trials(space, ranking)
    assert [t.seeds for t in trials] == [(2,), (3,)]
    assert {t.config_hash for t in trials} == {plan.fixed[1].config_hash}
    assert all(t.stage == "confirm" for t in trials)


def test_resume_with_changed_space_is_refused_with_the_changes(tmp_path) -> None:
    path = write_space(tmp_path)
    space = load_space(path)
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    assert sweep_dir.check_resumable(load_space(path)).space_hash == space.space_hash()
    # Comments and the description may change; the runs may not.
    path.write_text("# a comment\n" + path.read_text().replace("name: t", "name: t\ndescription: hi"))
    sweep_dir.check_resumable(load_space(path))
    changed = write_space(tmp_path, parameters={"method.beta": [0.0, 0.25]})
    with pytest.raises(ConfigError) as info:
        sweep_dir.check_resumable(load_space(changed))
    message = str(info.value)
    assert "refusing to resume" in message and "parameters.method.beta" in message and "0.25" in message


def test_dry_run_lists_every_grid_trial(tmp_path) -> None:
    out = io.StringIO()
    path = write_space(tmp_path, seeds=[7, 8])
    run_sweep(path, storage=tmp_path / "s", dry_run=True, out=out)
    text = out.getvalue()
    for key in ("g0000s7", "g0000s8", "g0001s7", "g0001s8"):
        assert key in text
    assert "nshapes (4 classes × 12): built in" in text


def test_base_config_matches_train_semantics(tmp_path) -> None:
    space = load_space(write_space(tmp_path, base={**TINY_BASE, "optim.lr": 0.02}))
    expected = RunConfig.from_preset("quick").with_overrides(
        {**_flat(TINY_BASE), "optim.lr": 0.02, "progress": False}
    )
    assert space.base_config() == expected


def _flat(nested: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in nested.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
