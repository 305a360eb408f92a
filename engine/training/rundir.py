"""A run directory's layout, named in one place.

The trainer writes it, ``spikesweep train --resume`` and ``eval`` read it, and the sweep trainable
exports parts of it; the mirror of ``orchestrator.sweepdir.SweepDir`` for one engine run::

    config.yaml           the run configuration
    epochs.parquet        one record per completed epoch (engine.training.records)
    layers.parquet        per epoch and neuron layer: spikes and firing rate on the event test split
    checkpoints/last/     the newest checkpoint (engine.training.checkpoint)
    checkpoints/best/     the checkpoint of the epoch with the best test top-1
    result.json           written when the run ends: completed, failed or interrupted

A checkpoint directory repeats ``config.yaml``, ``epochs.parquet`` and ``layers.parquet`` under the
same names (so a checkpoint moved elsewhere still holds the whole history).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "LAYERS_FILE",
    "META_FILE",
    "RECORDS_FILE",
    "RESULT_FILE",
    "RunDir",
]

CONFIG_FILE = "config.yaml"
RECORDS_FILE = "epochs.parquet"
LAYERS_FILE = "layers.parquet"
RESULT_FILE = "result.json"
META_FILE = "meta.json"
"""A checkpoint directory's summary, written last: a checkpoint without it is incomplete."""
CHECKPOINTS_DIR = "checkpoints"


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (nothing is created or read here)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / CONFIG_FILE)
    records = property(lambda self: self.root / RECORDS_FILE)
    layers = property(lambda self: self.root / LAYERS_FILE)
    result = property(lambda self: self.root / RESULT_FILE)
    checkpoints = property(lambda self: self.root / CHECKPOINTS_DIR)
    last = property(lambda self: self.root / CHECKPOINTS_DIR / "last")
    best = property(lambda self: self.root / CHECKPOINTS_DIR / "best")

    def has_checkpoints(self) -> bool:
        """A directory a run has written checkpoints into (what ``--resume`` and ``eval`` look for)."""
        return self.checkpoints.is_dir()

    @staticmethod
    def of_checkpoint(path: Path) -> bool:
        """``path`` is a run directory's ``checkpoints/last`` or ``checkpoints/best``."""
        path = Path(path)
        return path.name in ("best", "last") and path.parent.name == CHECKPOINTS_DIR
