"""Epoch data time: the cached batch loader vs converting events every epoch, as a ratio.

Baseline ("no cache"): what the original does without its disk cache — a per-sample map-style dataset
that reads the recording with tonic, bins it with ``tonic.transforms.ToFrame`` and resizes it,
batched by a plain DataLoader with the same class-balanced sampler. Ours: ``build_data``'s loader,
which reads one sorted fancy-index per batch from the memory-mapped frame cache (cache build time is
reported separately; it is paid once per dataset, T and size, not per epoch or per trial).

Run: ``python bench/bench_data.py [--classes 10] [--per-class 40] [--epochs 3] [--T 10]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import tonic
import torch
from tonic.io import events_struct
from torch.utils.data import DataLoader, Dataset

from engine.config import RunConfig
from engine.data import build_data, load_catalog
from engine.data.loaders import BalancedSampler
from engine.data.readers.ncaltech101 import shifted_geometry


class EventsEveryEpoch(Dataset):
    """The uncached baseline: decode, bin and resize one recording per ``__getitem__``."""

    def __init__(self, catalog, records, T: int, size: int) -> None:
        self.catalog, self.records, self.T, self.size = catalog, records, T, size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        record = self.records[i]
        events = self.catalog.load_events(record)
        x, y, (width, height) = shifted_geometry(events)
        shifted = np.zeros(len(events), dtype=events_struct)
        shifted["x"], shifted["y"], shifted["t"], shifted["p"] = x, y, events["t"], events["p"]
        frames = tonic.transforms.ToFrame(sensor_size=(width, height, 2), n_time_bins=self.T)(shifted)
        frames = torch.nn.functional.interpolate(
            torch.from_numpy(frames).float(), size=(self.size, self.size), mode="bilinear", align_corners=True
        )
        return frames, record.label


def _epoch_seconds(loader, epochs: int, set_epoch) -> float:
    times = []
    for epoch in range(epochs):
        set_epoch(epoch)
        start = time.perf_counter()
        for frames, _labels in loader:
            frames.sum()  # touch the data
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--T", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as cache:
        config = RunConfig().with_overrides(
            {
                "data.pair": "nshapes",
                "data.cache_root": cache,
                "data.nshapes_classes": args.classes,
                "data.nshapes_per_class": args.per_class,
                "T": args.T,
                "batch_size": args.batch_size,
            }
        )
        catalog = load_catalog(config)  # generates nshapes once (not timed below)
        start = time.perf_counter()
        bundle = build_data(config)
        build_s = time.perf_counter() - start
        cached = _epoch_seconds(bundle.train_loader, args.epochs, bundle.set_epoch)

        sampler = BalancedSampler(np.array([r.label for r in catalog.train]), config.seed)
        baseline_loader = DataLoader(
            EventsEveryEpoch(catalog, catalog.train, args.T, config.data.event_size),
            batch_size=args.batch_size,
            sampler=sampler,
            drop_last=True,
        )
        uncached = _epoch_seconds(baseline_loader, args.epochs, sampler.set_epoch)

    n = len(catalog.train)
    print(f"nshapes {args.classes}×{args.per_class}: {n} train recordings, T={args.T}, B={args.batch_size}")
    print(f"  cache build (once):              {build_s:8.3f} s")
    print(f"  epoch, events → frames each time: {uncached:8.3f} s  ({n / uncached:8.0f} samples/s)")
    print(f"  epoch, cached memmap batches:     {cached:8.3f} s  ({n / cached:8.0f} samples/s)")
    print(f"  speed-up of the cached loader:    {uncached / cached:8.1f}×")


if __name__ == "__main__":
    main()
