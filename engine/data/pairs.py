"""The ``PAIRS`` registry: dataset-pair name → how to find and split its files.

Each entry turns a data config (and the cache root, for generated data) into a :class:`Catalog`. Adding
a pair means writing a reader that returns a Catalog and registering it here; nothing else in the
data layer knows pair names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config import DataConfig
from engine.data.cache import ArrayCache
from engine.data.catalog import Catalog
from engine.errors import DatasetError
from engine.registry import Registry

__all__ = ["PAIRS", "PairSpec", "nshapes_root"]


@dataclass(frozen=True)
class PairSpec:
    """One static/event dataset pair.

    Attributes:
        name: registry name.
        summary: one line for ``--help`` and messages.
        catalog: ``(data config, cache root) -> Catalog``.
    """

    name: str
    summary: str
    catalog: Callable[[DataConfig, Path], Catalog]


PAIRS: Registry[PairSpec] = Registry("dataset pair")


def _require_root(cfg: DataConfig, pair: str, layout: str) -> Path:
    if cfg.root is None:
        raise DatasetError(f"data.root is not set; the {pair!r} pair reads a dataset from disk\n{layout}")
    return Path(cfg.root).expanduser()


def nshapes_root(cfg: DataConfig, cache_root: Path) -> Path:
    """``data.root`` if given, else the generated copy under the cache root (built once, under a lock)."""
    if cfg.root is not None:
        return Path(cfg.root).expanduser()
    from engine.data.nshapes import GENERATOR_VERSION, generate_nshapes

    key = {
        "version": GENERATOR_VERSION,
        "classes": cfg.nshapes_classes,
        "per_class": cfg.nshapes_per_class,
        "seed": cfg.nshapes_seed,
    }

    def build(out: Path) -> None:
        generate_nshapes(
            out, classes=cfg.nshapes_classes, per_class=cfg.nshapes_per_class, seed=cfg.nshapes_seed
        )

    return ArrayCache(cache_root).get_directory("nshapes", key, build)


def _nshapes_catalog(cfg: DataConfig, cache_root: Path) -> Catalog:
    from engine.data.readers.ncaltech101 import ncaltech101_catalog

    return ncaltech101_catalog(nshapes_root(cfg, cache_root), cfg, name="nshapes (N-Caltech101 layout)")


def _ncaltech101_catalog(cfg: DataConfig, cache_root: Path) -> Catalog:
    from engine.data.readers.ncaltech101 import LAYOUT, ncaltech101_catalog

    return ncaltech101_catalog(_require_root(cfg, "ncaltech101", LAYOUT), cfg)


def _cepdvs_catalog(cfg: DataConfig, cache_root: Path) -> Catalog:
    from engine.data.readers.cepdvs import LAYOUT, cepdvs_catalog

    return cepdvs_catalog(_require_root(cfg, "cepdvs", LAYOUT), cfg)


def _nomniglot_catalog(cfg: DataConfig, cache_root: Path) -> Catalog:
    from engine.data.readers.nomniglot import LAYOUT, nomniglot_catalog

    return nomniglot_catalog(_require_root(cfg, "nomniglot", LAYOUT), cfg)


for _spec in (
    PairSpec(
        "nshapes",
        "built-in procedural shapes + simulated saccade DVS recordings (generated)",
        _nshapes_catalog,
    ),
    PairSpec("ncaltech101", "Caltech101 images → N-Caltech101 events (101 classes)", _ncaltech101_catalog),
    PairSpec("cepdvs", "CEP-DVS RGB images → CEP-DVS events (20 CIFAR-100 superclasses)", _cepdvs_catalog),
    PairSpec("nomniglot", "Omniglot images → N-Omniglot events (1623 characters)", _nomniglot_catalog),
):
    PAIRS.register(_spec.name)(_spec)
