"""Sliding schedules (spec §4.1) and per-sample replacement with a seeded generator."""

import math

import pytest
import torch

from engine.sliding import SCHEDULES, replace_static, replacement_probability
from engine.static_channel import static_stream

E, L = 10, 100  # 1000 iterations in all


def p(name, i, **kw):
    return replacement_probability(name, i, iters_per_epoch=L, epochs=E, **kw)


def test_registry_names():
    assert SCHEDULES.names() == sorted(["poly", "linear", "cosine", "step", "none", "event_only"])


@pytest.mark.parametrize(
    ("i", "expected"),
    [(0, 0.0), (500, 0.125), (750, 0.421875), (800, 0.512), (900, 0.729), (950, 0.857375), (1000, 1.0)],
)
def test_poly_matches_the_spec_values(i, expected):
    assert p("poly", i) == pytest.approx(expected, abs=1e-12)


def test_poly_options_and_cap():
    assert p("poly", 250, end_frac=0.5) == pytest.approx(0.125)  # the older code saturated at E/2
    assert p("poly", 500, end_frac=0.5) == 1.0
    assert p("poly", 999, end_frac=0.5) == 1.0
    assert p("poly", 500, pow=2.0) == pytest.approx(0.25)
    assert p("poly", 5000) == 1.0  # past the end: capped
    assert p("poly", 1) == pytest.approx(1e-9)  # smooth per iteration, not per epoch


def test_linear_and_cosine():
    assert p("linear", 250) == pytest.approx(0.25)
    assert p("linear", 2000) == 1.0
    assert p("cosine", 500) == pytest.approx(0.5)
    assert p("cosine", 250) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    assert p("cosine", 1000) == pytest.approx(1.0)


def test_step_is_the_original_no_sliding_switch():
    # E = 300: epochs 0–150 static, 151–299 event
    kw = dict(iters_per_epoch=10, epochs=300)
    assert replacement_probability("step", 0, **kw) == 0.0
    assert replacement_probability("step", 150 * 10 + 9, **kw) == 0.0
    assert replacement_probability("step", 151 * 10, **kw) == 1.0
    # odd E = 5: epoch 2 ≤ 2.5 → 0, epoch 3 → 1
    assert replacement_probability("step", 29, iters_per_epoch=10, epochs=5) == 0.0
    assert replacement_probability("step", 30, iters_per_epoch=10, epochs=5) == 1.0


def test_none_and_event_only():
    assert {p("none", i) for i in (0, 500, 999)} == {0.0}
    assert {p("event_only", i) for i in (0, 500, 999)} == {1.0}


def test_bad_schedule_input():
    with pytest.raises(ValueError, match="valid sliding schedule names: cosine, event_only, linear, none"):
        p("polynomial", 3)
    with pytest.raises(ValueError, match="iters_per_epoch"):
        replacement_probability("poly", 3, iters_per_epoch=0, epochs=3)
    with pytest.raises(ValueError, match="end_frac"):
        p("poly", 3, end_frac=0.0)


# ------------------------------------------------------------------------------------------------
# replacement


def streams(b=6, T=3, size=4):
    g = torch.Generator().manual_seed(0)
    x_static = static_stream(torch.rand(b, size, size, generator=g), T)
    x_event = torch.rand(b, T, 2, size, size, generator=g) + 2.0  # distinguishable from static
    return x_static, x_event


def test_p_zero_never_and_p_one_always_replaces():
    x_static, x_event = streams()
    mixed, mask = replace_static(x_static, x_event, 0.0, torch.Generator().manual_seed(1))
    assert not mask.any() and torch.equal(mixed, x_static)
    mixed, mask = replace_static(x_static, x_event, 1.0, torch.Generator().manual_seed(1))
    assert mask.all() and torch.equal(mixed, x_event)


def test_whole_samples_are_replaced_and_the_draw_is_seeded():
    x_static, x_event = streams(b=64)
    mixed, mask = replace_static(x_static, x_event, 0.5, torch.Generator().manual_seed(7))
    again, mask_again = replace_static(x_static, x_event, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(mask, mask_again) and torch.equal(mixed, again)
    assert mask.dtype == torch.bool and mask.shape == (64,)
    assert 0 < int(mask.sum()) < 64
    torch.testing.assert_close(mixed[mask], x_event[mask], rtol=0, atol=0)
    torch.testing.assert_close(mixed[~mask], x_static[~mask], rtol=0, atol=0)
    # the same uniform draws as the generator gives: u < p replaces
    u = torch.rand(64, generator=torch.Generator().manual_seed(7))
    assert torch.equal(mask, u < 0.5)


def test_replacement_frequency_follows_p():
    x_static, x_event = streams(b=20000, T=1, size=1)
    _, mask = replace_static(x_static, x_event, 0.3, torch.Generator().manual_seed(0))
    rate = mask.float().mean().item()
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 20000)


def test_random_stream_does_not_depend_on_p():
    x_static, x_event = streams()
    g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    replace_static(x_static, x_event, 0.0, g0)
    replace_static(x_static, x_event, 1.0, g1)
    assert torch.equal(g0.get_state(), g1.get_state())


def test_shape_mismatch_names_both_shapes():
    x_static, x_event = streams()
    with pytest.raises(ValueError, match=r"static \(6, 3, 2, 4, 4\) and event \(6, 2, 2, 4, 4\)"):
        replace_static(x_static, x_event[:, :2], 0.5, torch.Generator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_replacement_on_cuda_with_either_generator():
    x_static, x_event = (t.cuda() for t in streams())
    for gen in (torch.Generator(device="cuda").manual_seed(0), torch.Generator().manual_seed(0)):
        mixed, mask = replace_static(x_static, x_event, 0.5, gen)
        assert mixed.is_cuda and mask.is_cuda
        torch.testing.assert_close(mixed[mask], x_event[mask])
        torch.testing.assert_close(mixed[~mask], x_static[~mask])
