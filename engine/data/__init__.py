"""Event data layer: dataset readers, cached event frames, class-paired static images, augmentation.

Public entry points:
- :data:`PAIRS` — registry of dataset pairs (``nshapes``, ``ncaltech101``, ``cepdvs``, ``nomniglot``).
- :func:`build_data` — ``RunConfig`` → :class:`DataBundle` (train/test loaders of
  ``(frames float32 [B, T, 2, S, S], labels int64 [B])``, the :class:`StaticPool`, the augmentation).
- :func:`generate_nshapes` — writes the built-in dataset in the N-Caltech101 layout.
"""

from engine.data.augment import FrameAugment
from engine.data.catalog import Catalog, EventRecord, StaticRecord
from engine.data.events import events_to_frames, resize_frames
from engine.data.nshapes import generate_nshapes
from engine.data.pairs import PAIRS, PairSpec
from engine.data.pipeline import DataBundle, build_data, load_catalog
from engine.data.static_pool import StaticPool

__all__ = [
    "PAIRS",
    "Catalog",
    "DataBundle",
    "EventRecord",
    "FrameAugment",
    "PairSpec",
    "StaticPool",
    "StaticRecord",
    "build_data",
    "events_to_frames",
    "generate_nshapes",
    "load_catalog",
    "resize_frames",
]
