"""``build_data(config) -> DataBundle``: the one entry point from a run config to tensors.

Steps: the pair's reader lists and splits the files (a :class:`Catalog`); each split's events are
turned into frames once into the shared cache (:mod:`engine.data.cache`); the static images of the
training split are decoded and resized once into the cache too; loaders read whole batches from the
memory-mapped frames. The trainer then moves the static pool to its device and calls
``bundle.augment`` on each event batch there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from engine.config import RunConfig
from engine.data.augment import FrameAugment
from engine.data.cache import ArrayCache, default_cache_root
from engine.data.catalog import Catalog, EventRecord, StaticRecord
from engine.data.events import FRAME_MODES, resize_frames
from engine.data.loaders import (
    BalancedSampler,
    FrameBatches,
    SequentialSampler,
    ShuffleSampler,
    make_loader,
)
from engine.data.pairs import PAIRS
from engine.data.static_pool import StaticPool
from engine.errors import ConfigError, DatasetError

__all__ = [
    "DataBundle",
    "build_data",
    "build_static_pool",
    "cached_frames",
    "frame_mode_for",
    "load_catalog",
]

log = logging.getLogger(__name__)

FRAMES_VERSION = 2
"""Bump when the frame computation changes, so cached frames are rebuilt (2: frame modes, per-pair resize)."""
STATIC_VERSION = 1


@dataclass
class DataBundle:
    """Everything the trainer needs from the data layer (see ``contracts.md``, "Data")."""

    train_loader: DataLoader
    test_loader: DataLoader
    static_pool: StaticPool
    augment: FrameAugment
    num_classes: int
    class_names: list[str]
    event_size: int
    T: int
    pair: str
    catalog_warnings: list[str] = field(default_factory=list)
    frame_mode: str = "counts"
    """The frame values actually used (``data.frame_mode`` with ``auto`` resolved for the pair)."""
    _samplers: tuple = ()

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the train sampling from (seed, epoch): a resumed run replays the same order."""
        for sampler in self._samplers:
            sampler.set_epoch(epoch)

    @property
    def train_size(self) -> int:
        return len(self.train_loader.dataset)  # type: ignore[arg-type]

    @property
    def test_size(self) -> int:
        return len(self.test_loader.dataset)  # type: ignore[arg-type]


def load_catalog(config: RunConfig) -> Catalog:
    """The pair's file lists and splits for this config (no events or images decoded)."""
    spec = PAIRS.get(config.data.pair)
    return spec.catalog(config.data, default_cache_root(config.data.cache_root))


def _files_digest(records: Sequence[EventRecord | StaticRecord]) -> str:
    digest = hashlib.sha256()
    for record in records:
        try:
            stat = record.path.stat()
        except OSError as exc:
            raise DatasetError(f"cannot read {record.path}: {exc}") from None
        part = getattr(record, "part", 0)
        digest.update(
            json.dumps([str(record.path), part, record.label, stat.st_size, stat.st_mtime_ns]).encode()
        )
    return digest.hexdigest()


def frame_mode_for(configured: str, catalog: Catalog) -> str:
    """``data.frame_mode`` with ``auto`` resolved to the pair's original representation."""
    mode = catalog.frame_mode if configured == "auto" else configured
    if mode not in FRAME_MODES:
        raise ConfigError(
            f"data.frame_mode = {configured!r} must be auto or one of {', '.join(sorted(FRAME_MODES))}"
        )
    return mode


def cached_frames(
    catalog: Catalog,
    records: list[EventRecord],
    split: str,
    pair: str,
    T: int,
    size: int,
    cache: ArrayCache,
    mode: str = "counts",
) -> tuple[Path, tuple[int, ...]]:
    """Frames ``float32 [N, T, 2, size, size]`` of ``records``, built once into the cache.

    Per recording, as the original: frames over the pair's sensor geometry (``mode`` = ``counts`` or
    ``frequency``), then the pair's crop, then its bilinear resize to ``size``.
    """
    shape = (len(records), T, 2, size, size)
    to_frames = FRAME_MODES[mode]
    key = {
        "version": FRAMES_VERSION,
        "pair": pair,
        "split": split,
        "T": T,
        "size": size,
        "mode": mode,
        "align_corners": catalog.frame_align_corners,
        "files": _files_digest(records),
        "crop": catalog.frame_crop,
        **catalog.extra_key,
    }

    def fill(out: np.ndarray) -> None:
        log.info(
            "building %s %s %s frames: %d recordings, T=%d, %dpx", pair, split, mode, len(records), T, size
        )
        for i, record in enumerate(records):
            events = catalog.load_events(record)
            x, y, sensor = catalog.frame_geometry(events)
            try:
                frames = to_frames(x, y, events["t"], events["p"], sensor, T)
            except ValueError as exc:
                raise DatasetError(f"bad events in {record.path}: {exc}") from None
            if catalog.frame_crop is not None:
                y0, y1, x0, x1 = catalog.frame_crop
                frames = frames[..., y0:y1, x0:x1]
            out[i] = resize_frames(frames, size, align_corners=catalog.frame_align_corners).numpy()

    name = f"{pair}-{split}-T{T}-S{size}-{mode}"
    cache.get_array(name, key, shape, np.float32, fill)
    data_path, _, _ = cache.paths(name, key)
    return data_path, shape


def _static_rgb(catalog: Catalog, pair: str, size: int, cache: ArrayCache) -> np.ndarray:
    """``uint8 [N, 3, size, size]`` RGB of the drawable static images (PIL bilinear resize), cached."""
    records = catalog.static
    key = {"version": STATIC_VERSION, "pair": pair, "size": size, "files": _files_digest(records)}

    def fill(out: np.ndarray) -> None:
        for i, record in enumerate(records):
            try:
                with Image.open(record.path) as image:
                    rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            except OSError as exc:
                raise DatasetError(f"cannot decode image {record.path}: {exc}") from None
            out[i] = np.asarray(rgb).transpose(2, 0, 1)

    return cache.get_array(f"{pair}-static-S{size}", key, (len(records), 3, size, size), np.uint8, fill)


def build_static_pool(catalog: Catalog, pair: str, size: int, channel: str, cache: ArrayCache) -> StaticPool:
    """The static images of the training split as a :class:`StaticPool` with ``channel`` applied."""
    from engine.static_channel import to_static_channel

    rgb = torch.from_numpy(np.array(_static_rgb(catalog, pair, size, cache))).float().div_(255.0)
    images = to_static_channel(rgb, channel).contiguous()
    if catalog.static_invert:
        images = torch.sub(1.0, images)
    labels = [record.label for record in catalog.static]
    try:
        return StaticPool.from_pools(images, labels, catalog.static_pools, [r.key for r in catalog.static])
    except ValueError as exc:
        raise DatasetError(f"{catalog.description}: {exc}") from None


def build_data(config: RunConfig) -> DataBundle:
    """Readers → cached frames → loaders, plus the class-paired static pool and the augmentation."""
    data = config.data
    catalog = load_catalog(config)
    for message in catalog.warnings:
        warnings.warn(f"{data.pair}: {message}", stacklevel=2)
    cache = ArrayCache(default_cache_root(data.cache_root) / "frames")
    size = data.event_size
    mode = frame_mode_for(data.frame_mode, catalog)

    splits = {}
    for split, records in (("train", catalog.train), ("test", catalog.test)):
        if not records:
            raise DatasetError(f"{catalog.description}: the {split} split is empty")
        path, shape = cached_frames(catalog, records, split, data.pair, config.T, size, cache, mode)
        labels = np.array([r.label for r in records], dtype=np.int64)
        splits[split] = FrameBatches(path, shape, labels)

    train_labels = splits["train"].labels.numpy()
    if catalog.balanced_sampling:
        sizes = catalog.class_sizes if data.legacy_sampler_class_size_weights else None
        train_sampler = BalancedSampler(train_labels, config.seed, sizes)
    else:
        train_sampler = ShuffleSampler(len(train_labels), config.seed)
    if len(train_labels) < config.batch_size:
        raise DatasetError(
            f"{catalog.description}: {len(train_labels)} training recordings are fewer than one batch "
            f"(batch_size={config.batch_size}); lower batch_size or use more data"
        )
    train_loader = make_loader(
        splits["train"], train_sampler, config.batch_size, True, data.num_workers, data.pin_memory
    )
    test_loader = make_loader(
        splits["test"],
        SequentialSampler(len(splits["test"])),
        config.batch_size,
        False,
        data.num_workers,
        data.pin_memory,
    )
    pool = build_static_pool(catalog, data.pair, size, config.method.static_channel, cache)
    return DataBundle(
        train_loader=train_loader,
        test_loader=test_loader,
        static_pool=pool,
        augment=FrameAugment(padding=data.crop_padding, dvs_da=data.dvs_da, snr=data.snr),
        num_classes=catalog.num_classes,
        class_names=list(catalog.class_names),
        event_size=size,
        T=config.T,
        pair=data.pair,
        catalog_warnings=list(catalog.warnings),
        frame_mode=mode,
        _samplers=(train_sampler,),
    )
