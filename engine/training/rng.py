"""Randomness of a run: derived per (seed, epoch, stream), so a resumed run needs no sampler state.

Every random choice the trainer makes inside an epoch — which static image pairs with each event sample,
which static samples are replaced by events, how each event batch is augmented — is drawn from a
``torch.Generator`` seeded from ``(seed, epoch, stream)``. Epoch ``e`` therefore draws the same numbers
whether the run got there uninterrupted or was resumed from the checkpoint of epoch ``e − 1``; nothing
about generator positions has to be saved. (The train sampler is re-seeded the same way by
``DataBundle.set_epoch``.)

The global RNGs (torch CPU and CUDA, numpy, python ``random``) are still captured in every checkpoint
and restored on resume, for anything outside the trainer that draws from them.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "EpochGenerators",
    "capture_rng_state",
    "derive_seed",
    "epoch_generators",
    "restore_rng_state",
    "seed_everything",
]

STREAMS = ("static_pairing", "replacement", "augmentation", "mixup")


def derive_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one random stream of one epoch, independent of Python's hash randomisation.

    ``numpy.random.SeedSequence`` mixes the three numbers so that neighbouring seeds or epochs give
    unrelated streams (``seed + epoch`` would make seed 1 / epoch 0 equal seed 0 / epoch 1).
    """
    stream_id = zlib.crc32(stream.encode())
    state = np.random.SeedSequence([seed, epoch, stream_id]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass(frozen=True)
class EpochGenerators:
    """The generators one epoch draws from, all on the training device."""

    static_pairing: torch.Generator
    replacement: torch.Generator
    augmentation: torch.Generator
    mixup: torch.Generator


def epoch_generators(seed: int, epoch: int, device: torch.device) -> EpochGenerators:
    """Fresh generators for ``epoch``; on CUDA they live on the device so draws never touch the host."""

    def make(stream: str) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(derive_seed(seed, epoch, stream))
        return generator

    return EpochGenerators(**{stream: make(stream) for stream in STREAMS})


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy and python ``random``; model initialisation uses it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state, in types ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored only where devices exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)
