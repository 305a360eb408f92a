"""The callback protocol: how the outside world hears about each finished epoch.

The orchestrator reports to Ray Tune through a callback (``tune.report(metrics, checkpoint=...)``); the
trainer itself never imports Ray. A callback is called after the epoch's checkpoint has been written,
so ``checkpoint_dir`` already holds a complete checkpoint that resumes the run via
``train(..., resume_from=checkpoint_dir)``. The directory is rewritten at the next epoch: a callback
that wants to keep it must copy it before returning (Ray Tune's ``report`` does).

A callback may raise to stop the run (a pruner, an interrupt); the checkpoint it was handed stays valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["Callback"]


@runtime_checkable
class Callback(Protocol):
    def on_epoch_end(self, epoch: int, metrics: dict[str, float], checkpoint_dir: Path) -> None:
        """Called once per epoch with the epoch's record (contract metric keys) and its checkpoint."""
