"""The class-paired static source: one tensor of static images and, per class, the images that may be drawn.

Why a pool on the device: the original gathers static images on the CPU with a Python loop over the
batch every iteration (spec §11 item 26). Here all drawable images live in one ``[N, S, S]`` tensor
(channel already applied), and :meth:`StaticPool.sample` draws one per event label with a few
vectorised indexing ops on whatever device the pool is on — no host sync, no per-sample loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["StaticPool"]


@dataclass
class StaticPool:
    """Static images ``[N, S, S]`` in [0, 1] plus per-class index pools.

    Attributes:
        images: ``float32 [N, S, S]``, the chosen static channel of each drawable image.
        labels: ``int64 [N]``, each image's own class.
        pool_index: ``int64 [M]``, concatenation of every class's drawable positions into ``images``.
        pool_offset, pool_count: ``int64 [K]``; class ``c`` draws from
            ``pool_index[pool_offset[c] : pool_offset[c] + pool_count[c]]``.
        keys: pairing key (file stem) of each image, for inspection and tests.
    """

    images: torch.Tensor
    labels: torch.Tensor
    pool_index: torch.Tensor
    pool_offset: torch.Tensor
    pool_count: torch.Tensor
    keys: tuple[str, ...] = ()

    @classmethod
    def from_pools(
        cls,
        images: torch.Tensor,
        labels: Sequence[int],
        pools: Sequence[np.ndarray],
        keys: Sequence[str] = (),
    ) -> StaticPool:
        counts = np.array([len(p) for p in pools], dtype=np.int64)
        if (counts == 0).any():
            empty = np.flatnonzero(counts == 0).tolist()
            raise ValueError(f"static pools of classes {empty} are empty")
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        index = np.concatenate([np.asarray(p, dtype=np.int64) for p in pools])
        return cls(
            images=images,
            labels=torch.as_tensor(np.asarray(labels, dtype=np.int64)),
            pool_index=torch.from_numpy(index),
            pool_offset=torch.from_numpy(offsets),
            pool_count=torch.from_numpy(counts),
            keys=tuple(keys),
        )

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def num_classes(self) -> int:
        return int(self.pool_count.shape[0])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> StaticPool:
        return StaticPool(
            images=self.images.to(device),
            labels=self.labels.to(device),
            pool_index=self.pool_index.to(device),
            pool_offset=self.pool_offset.to(device),
            pool_count=self.pool_count.to(device),
            keys=self.keys,
        )

    def sample_indices(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """For each label, a uniformly drawn position (with replacement) from that class's pool."""
        labels = labels.to(self.pool_count.device)
        count = self.pool_count[labels]
        u = torch.rand(labels.shape, generator=generator, device=self.pool_count.device)
        pick = torch.minimum((u * count).long(), count - 1)
        return self.pool_index[self.pool_offset[labels] + pick]

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One static image ``[B, S, S]`` per event label, same class, from the training split only.

        ``generator`` must live on the pool's device (after ``pool.to("cuda")``, a CUDA generator).
        """
        return self.images[self.sample_indices(labels, generator)]
