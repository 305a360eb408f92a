"""engine.typed: the one builder behind the run config and the sweep file's typed sections."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from engine.typed import Rule, build, rule


@dataclass(frozen=True)
class Inner:
    ratio: float = field(default=0.5, metadata=rule(gt=0))


@dataclass(frozen=True)
class Section:
    count: int = field(default=1, metadata=rule(ge=1))
    rate: float = 0.1
    name: str | None = field(default=None, metadata=rule(nonempty=True))
    kind: str = field(default="a", metadata=rule(choices=("a", "b")))
    sizes: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


class Raised(Exception):
    pass


class Recorder:
    """A style that says which check failed and with what."""

    def not_a_mapping(self, where, value):
        return Raised("mapping", where, value)

    def unknown_key(self, key, valid):
        return Raised("unknown", key, valid)

    def bad_value(self, key, value, kind, rule):
        return Raised("value", key, value, rule)

    def bad_choice(self, key, value, choices):
        return Raised("choice", key, value, choices)


def failure(data):
    with pytest.raises(Raised) as raised:
        build(Section, data, Recorder())
    return raised.value.args


def test_values_are_typed_and_defaults_kept():
    built = build(Section, {"count": 3, "rate": 2, "sizes": [1, 2], "inner": {"ratio": 1}}, Recorder())
    assert built == Section(count=3, rate=2.0, sizes=[1, 2], inner=Inner(ratio=1.0))
    assert isinstance(built.rate, float) and isinstance(built.inner.ratio, float)
    assert build(Section, {"name": None}, Recorder()) == Section()


def test_each_check_names_the_key():
    assert failure({"cuont": 1}) == ("unknown", "cuont", ["count", "rate", "name", "kind", "sizes", "inner"])
    assert failure({"count": 0})[:3] == ("value", "count", 0)
    assert failure({"count": True})[:3] == ("value", "count", True)  # a bool is not an integer
    assert failure({"rate": "fast"})[:3] == ("value", "rate", "fast")
    assert failure({"name": ""})[:3] == ("value", "name", "")
    assert failure({"kind": "c"}) == ("choice", "kind", "c", ("a", "b"))
    assert failure({"kind": 3}) == ("choice", "kind", 3, ("a", "b"))
    assert failure({"sizes": [1, "x"]})[:3] == ("value", "sizes[1]", "x")
    assert failure({"inner": {"ratio": -1}})[:3] == ("value", "inner.ratio", -1)
    assert failure({"inner": {"ratoi": 1}})[:2] == ("unknown", "inner.ratoi")
    assert failure({"inner": 5}) == ("mapping", "inner", 5)


def test_rules_reject_non_finite_numbers_unless_told():
    assert not Rule(gt=0).accepts(math.nan) and not Rule(gt=0).accepts(math.inf)
    assert Rule(gt=0, finite=False).accepts(math.inf)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"epochs": "ten"}, "x.yaml: epochs = 'ten' must be an integer"),
        ({"epochs": 2.5}, "x.yaml: epochs = 2.5 must be an integer"),
        ({"optim": {"lr": True}}, "x.yaml: optim.lr = True must be a number"),
        ({"data": {"root": 5}}, "x.yaml: data.root = 5 must be a string or null"),
        ({"model": 3}, "x.yaml: model must be a mapping, got 3"),
        ({"model": {"widht": 1}}, "x.yaml: unknown config key 'model.widht'; did you mean model.width"),
        ({"optim": {"betas": 0.9}}, "x.yaml: optim.betas = 0.9 must be a list"),
        ({"optim": {"betas": [0.9, "x"]}}, "x.yaml: optim.betas[1] = 'x' must be a number"),
    ],
)
def test_a_run_config_names_the_file_key_and_type(data, message):
    """The run config's wording through the shared builder (the same strings as before it was shared)."""
    from engine.config import RunConfig
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        RunConfig.from_dict(data, source="x.yaml")
    assert str(refused.value).startswith(message)
