"""Multi-objective (Pareto) sweeps without Ray: the space accepts a list of objectives and refuses what
cannot work with several; the study gets one direction per objective and is told every value; the
confirmation stage re-runs exactly the search stage's Pareto front, which equals a brute-force front."""

from __future__ import annotations

import itertools
import random
import statistics

import optuna
import pytest
import yaml
from ray.tune.search import Searcher
from test_sweep_space import TINY_BASE

from orchestrator.plan import build_plan, front_configs
from orchestrator.records import COMPLETE_KEY, SEED_KEY
from orchestrator.space import Objective, SpaceError, load_space
from orchestrator.summary import format_plan
from orchestrator.sweepdir import SweepDir
from orchestrator.tune.searcher import TrialPlanner
from orchestrator.tune.study import SweepStudy

ACCURACY_ENERGY = [
    {"metric": "best_test_top1", "mode": "max"},
    {"metric": "best_epoch_energy_uj", "mode": "min"},
]


def write(tmp_path, **overrides):
    doc = {
        "name": "mo",
        "preset": "quick",
        "base": TINY_BASE,
        "parameters": {"method.beta": [0.0, 0.5, 1.0, 2.0]},
        "objective": ACCURACY_ENERGY,
    }
    doc.update(overrides)
    path = tmp_path / "mo.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # no aliases: every dict is written out
    return path


# --------------------------------------------------------------------------------------------------
# the space


def test_a_list_of_objectives_is_a_pareto_space(tmp_path) -> None:
    space = load_space(write(tmp_path))
    assert space.objectives == (
        Objective("best_test_top1", "max"),
        Objective("best_epoch_energy_uj", "min"),
    )
    assert space.multi_objective and (space.metric, space.metric_mode) == ("best_test_top1", "max")
    single = load_space(write(tmp_path, objective={"metric": "test_loss"}))
    assert single.objectives == (Objective("test_loss", "min"),) and not single.multi_objective


@pytest.mark.parametrize(
    ("overrides", "key_path", "allowed"),
    [
        (
            {"objective": [ACCURACY_ENERGY[0], {"metric": "energy", "mode": "min"}]},
            "objective[1].metric",
            "energy_uj",
        ),
        (
            {"objective": [ACCURACY_ENERGY[0], {"metric": "energy_uj", "mode": "low"}]},
            "objective[1].mode",
            "max, min",
        ),
        ({"objective": [ACCURACY_ENERGY[0], dict(ACCURACY_ENERGY[0])]}, "objective", "listed twice"),
        ({"objective": []}, "objective", "one objective or several"),
        ({"pruner": {"name": "median"}}, "pruner", "allowed with a list of objectives: none"),
        ({"pruner": {"name": "asha"}}, "pruner", "allowed with a list of objectives: none"),
        ({"pruner": {"name": "wilcoxon"}}, "pruner", "allowed with a list of objectives: none"),
        (
            {"search": {"mode": "optuna", "samples": 4, "sampler": "cmaes"}, "parameters": {"T": [2, 4]}},
            "search.sampler",
            "tpe, nsga2, random",
        ),
        (
            {"search": {"mode": "optuna", "samples": 4, "population_size": 4}, "parameters": {"T": [2, 4]}},
            "search.population_size",
            "nsga2",
        ),
        ({"objective": ACCURACY_ENERGY[0], "seeds": [1, 2], "confirm": {}}, "confirm.top_k", "integer ≥ 1"),
    ],
)
def test_bad_objectives_name_the_key_and_the_allowed_values(tmp_path, overrides, key_path, allowed) -> None:
    path = write(tmp_path, **overrides)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message and key_path in message and allowed in message, message


def test_dry_run_says_what_a_pareto_sweep_confirms(tmp_path) -> None:
    space = load_space(write(tmp_path, seeds=[1, 2, 3], confirm={}))
    plan = build_plan(space)
    assert plan.confirm_configs == 4 and plan.confirm_seeds == (2, 3)  # at most the whole grid
    text = format_plan(plan, SweepDir.for_space(space, tmp_path / "sweeps", None))
    assert (
        "objectives: best_test_top1 (max), best_epoch_energy_uj (min) — a Pareto search, no pruning" in text
    )
    assert "confirm: the search stage's Pareto front re-run on seeds [2, 3]" in text
    capped = load_space(write(tmp_path, seeds=[1, 2], confirm={"top_k": 2}))
    assert build_plan(capped).confirm_configs == 2


# --------------------------------------------------------------------------------------------------
# the front


def brute_force_front(points: dict[str, tuple[float, ...]], modes: list[str]) -> set[str]:
    def at_least(a, b):
        return all((x >= y) if m == "max" else (x <= y) for x, y, m in zip(a, b, modes, strict=True))

    def dominates(a, b):
        return at_least(a, b) and a != b

    return {k for k, p in points.items() if not any(dominates(q, p) for q in points.values())}


@pytest.mark.parametrize("seed", range(5))
def test_front_configs_equal_a_brute_force_front_of_the_seed_means(seed) -> None:
    rng = random.Random(seed)
    modes = ["max", "min", "max"][: 2 + seed % 2]
    finished, values = [], {}
    for c in range(12):
        for _ in range(rng.randint(1, 3)):
            # coarse values so that ties and duplicates happen
            point = tuple(float(rng.randint(0, 4)) for _ in modes)
            finished.append((f"h{c:02d}", {"c": c}, point))
            values.setdefault(f"h{c:02d}", []).append(point)
    means = {h: tuple(statistics.fmean(col) for col in zip(*v, strict=True)) for h, v in values.items()}
    front = front_configs(finished, modes)
    assert {s.config_hash for s in front} == brute_force_front(means, modes)
    firsts = [means[s.config_hash][0] * (-1 if modes[0] == "max" else 1) for s in front]
    assert firsts == sorted(firsts)  # best by the first objective first
    assert all(s.values == tuple(p[0] for p in values[s.config_hash]) for s in front)


def test_non_finite_runs_stay_off_the_front() -> None:
    finished = [
        ("a", {}, (90.0, 5.0)),
        ("b", {}, (95.0, float("nan"))),
        ("c", {}, (80.0, 1.0)),
        ("d", {}, None),
    ]
    assert [s.config_hash for s in front_configs(finished, ["max", "min"])] == ["a", "c"]


# --------------------------------------------------------------------------------------------------
# the study


def test_study_has_one_direction_per_objective_and_confirms_the_front(tmp_path) -> None:
    space = load_space(write(tmp_path, seeds=[7, 8], confirm={}))
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    planner = TrialPlanner(SweepStudy(space, sweep_dir))
    assert planner.study.optuna.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    assert planner.study.optuna.user_attrs["objectives"] == ["best_test_top1:max", "best_epoch_energy_uj:min"]

    # (accuracy, energy) per grid point: g1 is beaten by g0 in both, g3 by g2; g0 and g2 trade off
    outcomes = {0: (80.0, 10.0), 1: (70.0, 12.0), 2: (60.0, 4.0), 3: (60.0, 5.0)}
    configs = [planner.next_trial(f"t{i}") for i in range(4)]
    assert [c["plan_key"] for c in configs] == ["g0000s7", "g0001s7", "g0002s7", "g0003s7"]
    assert planner.next_trial("wait") is None  # the front needs every search trial finished
    for i, config in enumerate(configs):
        accuracy, energy = outcomes[i]
        result = {"epoch": 1, SEED_KEY: 7, COMPLETE_KEY: True}
        result |= {"best_test_top1": accuracy, "best_epoch_energy_uj": energy}
        # no intermediate values in a multi-objective study, and nothing to prune
        assert not planner.study.report(
            f"t{i}", {**result, COMPLETE_KEY: False, "epoch": 0}, config, may_prune=True
        )
        assert planner.study.complete(f"t{i}", result, error=False) == "COMPLETE"
    trials = planner.study.optuna.trials
    assert [t.values for t in trials] == [list(outcomes[i]) for i in range(4)]
    assert all(t.intermediate_values == {} for t in trials)

    confirm = [planner.next_trial(f"c{i}") for i in range(3)]
    assert [c["plan_key"] if isinstance(c, dict) else c for c in confirm] == [
        f"c{configs[0]['config_hash']}s8",
        f"c{configs[2]['config_hash']}s8",
        Searcher.FINISHED,
    ]
    assert [s.config_hash for s in planner.study.front()] == [
        configs[0]["config_hash"],
        configs[2]["config_hash"],
    ]

    # a run whose energy is not finite fails, naming the metric
    result = {
        "epoch": 1,
        SEED_KEY: 8,
        COMPLETE_KEY: True,
        "best_test_top1": 81.0,
        "best_epoch_energy_uj": float("nan"),
    }
    assert planner.study.complete("c0", result, error=False) == "FAILED"
    assert planner.study.optuna.trials[4].user_attrs["fail_reason"] == "non-finite best_epoch_energy_uj"


def test_nsga2_sampler_is_built_with_its_population(tmp_path) -> None:
    path = write(
        tmp_path,
        search={"mode": "optuna", "sampler": "nsga2", "samples": 9, "population_size": 3},
        parameters={"method.beta": {"type": "uniform", "low": 0.0, "high": 1.0}},
    )
    space = load_space(path)
    sweep_dir = SweepDir.for_space(space, tmp_path / "sweeps", None)
    sweep_dir.create(space)
    planner = TrialPlanner(SweepStudy(space, sweep_dir))
    sampler = planner.study.optuna.sampler
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    configs = [planner.next_trial(f"t{i}") for i in range(3)]
    betas = [c["params"]["method.beta"] for c in configs]
    assert len(set(betas)) == 3 and all(0.0 <= b <= 1.0 for b in betas)
    assert list(itertools.chain(c["seeds"] for c in configs)) == [[42], [42], [42]]
