"""Batches straight out of the memory-mapped frame cache.

One ``__getitem__`` per *batch*: the batch sampler hands the dataset a list of positions and the
dataset reads them with one sorted fancy-index into the memmap, instead of B Python calls, B small
tensors and a collate. Samplers are re-seeded from ``(seed, epoch)`` by :meth:`set_epoch`, so a run
resumed at epoch ``e`` replays exactly the order an uninterrupted run would have used, without saving
sampler state; workers get seeds derived the same way (spec §11 item 28).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

__all__ = [
    "BalancedSampler",
    "FrameBatches",
    "SequentialSampler",
    "ShuffleSampler",
    "epoch_seed",
    "make_loader",
]


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class FrameBatches(Dataset):
    """Map-style dataset whose items are whole batches: ``dataset[[i, j, ...]] -> (frames, labels)``.

    Args:
        path: the cache file (raw ``float32 [N, T, 2, S, S]``), one row per recording of the split.
        shape: its full shape.
        labels: label of each row.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], labels: np.ndarray) -> None:
        self.path = Path(path)
        self.shape = tuple(shape)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self._mm: np.memmap | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _memmap(self) -> np.ndarray:
        if self._mm is None:
            if int(np.prod(self.shape)) == 0:
                self._mm = np.zeros(self.shape, dtype=np.float32)  # type: ignore[assignment]
            else:
                self._mm = np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)
        return self._mm  # type: ignore[return-value]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_mm"] = None  # workers map the file themselves; never pickle the mapping
        return state

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(positions, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        frames = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        frames[order] = self._memmap()[rows[order]]  # one sorted read, then back to sampling order
        return torch.from_numpy(frames), self.labels[torch.from_numpy(rows)]


class _EpochSampler(Sampler[int]):
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))


class BalancedSampler(_EpochSampler):
    """``WeightedRandomSampler`` semantics: ``len(labels)`` draws with replacement, weight 1/count_c.

    This is the original N-Caltech101 training sampler (spec §7.1, §11 item 19): within an epoch some
    recordings repeat and others are skipped. By default ``count_c`` is the number of recordings of
    class c in ``labels``, so every class is exactly equally likely. The original weighed by the
    class's size in the whole dataset (``class_sizes``) instead, so classes whose kept share is
    smaller (``int(n_train·r)`` truncation) are drawn less; pass ``class_sizes`` to reproduce it.
    """

    def __init__(self, labels: np.ndarray, seed: int, class_sizes: list[int] | None = None) -> None:
        super().__init__(seed)
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels) if class_sizes is None else np.asarray(class_sizes, dtype=np.int64)
        self.weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)
        self.num_samples = len(labels)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        draws = torch.multinomial(
            self.weights, self.num_samples, replacement=True, generator=self._generator()
        )
        return iter(draws.tolist())


class ShuffleSampler(_EpochSampler):
    """A fresh permutation every epoch (``SubsetRandomSampler`` / ``shuffle=True`` in the original)."""

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(seed)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self._generator()).tolist())


class SequentialSampler(_EpochSampler):
    """Test order: every sample once, in file order (evaluation does not depend on the order)."""

    def __init__(self, n: int) -> None:
        super().__init__(0)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))


class _SeedWorkers:
    """``worker_init_fn`` seeding numpy/torch/random in each worker from (seed, epoch, worker id)."""

    def __init__(self, sampler: _EpochSampler) -> None:
        self.sampler = sampler

    def __call__(self, worker_id: int) -> None:
        import random

        seed = epoch_seed(self.sampler.seed, self.sampler.epoch, 1 + worker_id)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)


def make_loader(
    dataset: FrameBatches,
    sampler: _EpochSampler,
    batch_size: int,
    drop_last: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader that yields ``(frames [B, T, 2, S, S] float32, labels [B] int64)``."""
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),  # pinning without a GPU only warns
        worker_init_fn=_SeedWorkers(sampler) if num_workers > 0 else None,
        persistent_workers=False,
    )
