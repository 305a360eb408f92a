"""Where and how a run computes: device resolution, autocast precision, peak-memory measurement."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections.abc import Iterator

import torch

from engine.errors import ConfigError

__all__ = ["PeakMemory", "autocast", "configure_determinism", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` → the current CUDA device when one is usable, else CPU; ``cuda[:N]`` must exist."""
    if name == "auto":
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device = {name!r}, but this machine has no usable CUDA device (use cpu or auto)"
            )
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device = {name!r}, but only {torch.cuda.device_count()} CUDA device(s) exist")
        device = torch.device("cuda", index)
    return device


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels or not, for this process (the original's ``setup_seed`` made cuDNN
    deterministic and turned its autotuner off).

    cuBLAS needs a fixed workspace to repeat its reductions; the variable is read when the first cuBLAS
    handle is created, so it is set here, before any CUDA work of the run, unless the user set it.
    ``warn_only``: an operation without a deterministic kernel warns instead of stopping a run.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """``bf16`` → bfloat16 autocast on ``device``; ``fp32`` → plain float32 (no context at all)."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


class PeakMemory:
    """Peak memory of the current epoch, in MB.

    On CUDA: ``torch.cuda.max_memory_allocated`` of the device, reset at every epoch start — the tensors
    the run itself allocated. On CPU: the process's resident-set high-water mark (``ru_maxrss``), which
    the kernel never resets, so it is the peak since the process started (it includes the interpreter,
    libraries and anything else the process did). ``kind`` says which one a number is.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "process_rss_highwater"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def read_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports kilobytes, macOS bytes.
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10
