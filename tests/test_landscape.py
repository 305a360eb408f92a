"""Loss landscapes: filter normalisation, the centre point, Ray distribution and resumption, outputs,
bad input."""

from __future__ import annotations

import argparse

import pyarrow.parquet as pq
import pytest
import torch

from engine.config import RunConfig
from engine.landscape import evaluate_points, filter_normalise, interpolation_direction, random_direction
from engine.models import create_model
from engine.training.evaluation import evaluate
from orchestrator.landscape import LandscapeSpec, parse_range, run_landscape


def _model(seed=0):
    """Untrained, so a low threshold: spikes must reach the head for the weights to matter."""
    torch.manual_seed(seed)
    return create_model("transfer_vgg_snn", num_classes=3, T=2, width=0.25, input_size=32, v_th=0.01).eval()


def test_filter_normalisation_gives_each_filter_the_weights_filter_norm():
    model = _model()
    direction = random_direction(model, seed=7)
    for name, p in model.named_parameters():
        d = direction[name]
        assert d.shape == p.shape
        if p.dim() <= 1:  # biases, BatchNorm, coefficients: left out
            assert torch.count_nonzero(d) == 0, name
            continue
        got = d.reshape(d.shape[0], -1).norm(dim=1)
        want = p.detach().reshape(p.shape[0], -1).norm(dim=1)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # seeded: the same command gives the same directions; another seed another one
    again = random_direction(_model(), seed=7)
    assert all(torch.equal(direction[k], again[k]) for k in direction)
    assert not torch.equal(
        direction["feature.0.conv.weight"], random_direction(model, seed=8)["feature.0.conv.weight"]
    )
    # included 1-D parameters move along their own values (Li et al.)
    weight = torch.tensor([3.0, -4.0])
    assert torch.equal(filter_normalise(torch.tensor([1.0, 1.0]), weight, ignore_1d=False), weight)
    # exact on a hand-made filter: [3, 4] has norm 5; direction [1, 0] becomes [5, 0]
    torch.testing.assert_close(
        filter_normalise(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]])),
        torch.tensor([[5.0, 0.0], [0.0, 1.0]]),
    )


def test_centre_point_equals_a_plain_evaluation_and_weights_are_restored():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(3)
    batches = [(torch.rand(5, 2, 2, 32, 32) * 5, torch.randint(0, 3, (5,))) for _ in range(3)]
    plain = evaluate(model, batches, torch.device("cpu"))
    directions = [random_direction(model, 0), random_direction(model, 1)]
    results = evaluate_points(model, directions, [(0.0, 0.0), (0.5, -0.5)], batches, torch.device("cpu"))
    assert (results[0].loss, results[0].top1, results[0].top5) == (
        plain["test_loss"],
        plain["test_top1"],
        plain["test_top5"],
    )
    assert results[1].loss != results[0].loss
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_interpolation_runs_from_a_to_b():
    a, b = _model(0), _model(1)
    d = interpolation_direction(a, b)
    x = torch.rand(2, 2, 2, 32, 32)
    batches = [(x, torch.tensor([0, 1]))]
    at_b = evaluate_points(a, [d], [(1.0,)], batches, torch.device("cpu"))[0]
    plain_b = evaluate(b, batches, torch.device("cpu"))
    assert at_b.loss == pytest.approx(plain_b["test_loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:-1", "LOW < HIGH"),
        ("-1", "expected LOW:HIGH"),
        ("a:b", "expected LOW:HIGH"),
        ("0:nan", "LOW:HIGH"),
    ],
)
def test_malformed_ranges_are_refused(text, message):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_range(text)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from engine.training import train

    root = tmp_path_factory.mktemp("ls")
    config = RunConfig.from_preset("quick").with_overrides(
        {
            "epochs": 2,
            "T": 2,
            "batch_size": 8,
            "model.width": 0.0625,
            "data.nshapes_classes": 3,
            "data.nshapes_per_class": 12,
            "data.train_portion": 0.5,
            "data.cache_root": str(root / "cache"),
            "progress": False,
        }
    )
    train(config, root / "run")
    return root / "run"


def _cli(*argv):
    from orchestrator.commands import landscape

    parser = argparse.ArgumentParser()
    landscape.add_arguments(parser)
    return landscape.run(parser.parse_args([str(a) for a in argv]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--points", "1"], "--points 1: at least 2"),
        (["--dims", "3"], "--dims 3: allowed 1 or 2"),
        (["--range", "2:1"], "LOW < HIGH"),
        (["--split", "val"], "allowed test, train"),
        (["--set", "model.width=0.125"], "does not fit the model"),
    ],
)
def test_bad_input_is_refused_before_any_evaluation(checkpoint, tmp_path, argv, message):
    from engine.errors import SpikesweepError

    with pytest.raises(SpikesweepError, match=message):
        _cli(checkpoint, "--workers", "0", "--out", tmp_path / "out", *argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_grid_through_ray_resumes_after_a_kill_and_equals_one_process(checkpoint, tmp_path):
    import ray

    spec = LandscapeSpec(checkpoint=str(checkpoint), dims=2, points=4, subset=10).validate()
    reference = run_landscape(spec, tmp_path / "single", use_ray=False, chunk_size=4).rows

    class Killed(Exception):
        pass

    def kill_after_two_chunks(done, total):
        if done >= 8:
            raise Killed

    with pytest.raises(Killed):
        run_landscape(spec, tmp_path / "ray", use_ray=False, chunk_size=4, on_chunk=kill_after_two_chunks)
    assert len(pq.read_table(tmp_path / "ray" / "landscape.parquet")) == 8  # what finished was kept

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=2, include_dashboard=False)
        try:
            resumed = run_landscape(spec, tmp_path / "ray", num_cpus=2, chunk_size=2)
        finally:
            ray.shutdown()
    assert resumed.computed == 16 - 8  # only the missing points
    assert resumed.rows == reference  # bit for bit: one thread per task, the same directions
    table = pq.read_table(tmp_path / "ray" / "landscape.parquet").to_pylist()
    assert sorted((r["i"], r["j"]) for r in table) == [(i, j) for i in range(4) for j in range(4)]

    # another grid in the same directory is refused rather than mixed in
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="differs in points"):
        run_landscape(
            LandscapeSpec(checkpoint=str(checkpoint), dims=2, points=5), tmp_path / "ray", use_ray=False
        )


def test_command_writes_the_table_and_the_figures(checkpoint, tmp_path):
    out2 = tmp_path / "two"
    assert _cli(checkpoint, "--workers", "0", "--points", "3", "--subset", "8", "--out", out2) == 0
    assert len(pq.read_table(out2 / "landscape.parquet")) == 9
    for name in ("landscape_2d_contour.png", "landscape_2d_filled.png", "landscape_2d_surface.png"):
        assert (out2 / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    out1 = tmp_path / "one"
    assert (
        _cli(checkpoint, "--workers", "0", "--dims", "1", "--points", "5", "--subset", "8", "--out", out1)
        == 0
    )
    rows = pq.read_table(out1 / "landscape.parquet").to_pylist()
    assert [r["x"] for r in rows] == [-1.0, -0.5, 0.0, 0.5, 1.0] and all(r["y"] == 0.0 for r in rows)
    assert (out1 / "landscape_1d.png").is_file()
    # --compare: both landscapes, one figure on one scale
    cmp = tmp_path / "cmp"
    argv = ["--compare", checkpoint, checkpoint, "--workers", "0", "--dims", "1", "--points", "3"]
    assert _cli(*argv, "--subset", "8", "--out", cmp) == 0
    assert (cmp / "compare_1d.png").is_file() and len(list(cmp.glob("*/landscape.parquet"))) == 2
