"""The sweep directory ``<storage>/<name>/``: its layout, its identity file, and the resume check.

Everything a sweep owns lives in one directory so that it can be resumed, inspected and archived as a
unit: Ray Tune's experiment state and trial checkpoints, the Optuna study (``optuna.db``), the MLflow
store (``mlflow.db`` + ``mlartifacts/`` unless another tracking URI is given), the copy of the space
file (``space.yaml``), the result tables (``trials.parquet``, ``epochs.parquet``), the driver's
append-only record journal (``journal.jsonl``) and each engine run's final files (``runs/``).

``sweep.json`` pins the sweep's identity (a random id, the space hash, where it was created); a rerun
with a different space is refused because Ray Tune restores the search algorithm from its own pickle,
and the Optuna study, plan keys and MLflow runs of the old space would silently mix with the new one.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text
from engine.config import flatten
from engine.errors import ConfigError
from orchestrator.space import SweepSpace

__all__ = ["BEST_EXPORT", "SweepDir", "SweepDirError", "SweepMeta", "git_commit", "spikesweep_version"]

META_FILE = "sweep.json"


BEST_EXPORT = "best"
"""The best-epoch checkpoint inside an exported run directory (:meth:`SweepDir.run_export`)."""


class SweepDirError(ConfigError):
    """The sweep's place on disk cannot be used (storage is a file, …)."""


@dataclass(frozen=True)
class SweepMeta:
    sweep_id: str
    name: str
    space_hash: str
    created_unix: float
    created_path: str
    git_commit: str
    spikesweep_version: str
    space: dict[str, Any]
    """The canonical space the sweep was started with (what the hash covers), to explain a mismatch."""


@dataclass(frozen=True)
class SweepDir:
    """Paths inside one sweep directory."""

    root: Path

    @classmethod
    def for_space(cls, space: SweepSpace, storage: str | Path | None, name: str | None) -> SweepDir:
        """``<storage>/<name>``: ``--name`` follows the space's name rule (so it stays inside the
        storage), and the storage must be a directory or a path where one can be created."""
        from orchestrator.space import check_name  # noqa: PLC0415 — space imports this module

        if name is not None:
            check_name(name, "--name")
        storage = Path(storage if storage is not None else "sweeps").expanduser().resolve()
        for parent in (storage, *storage.parents):
            if parent.exists():
                if not parent.is_dir():
                    what = "--storage" if parent == storage else f"--storage {str(storage)!r}: its parent"
                    raise SweepDirError(f"{what} {str(parent)!r} is a file, not a directory")
                break
        return cls(storage / (name or space.name))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def storage(self) -> Path:
        return self.root.parent

    meta_path = property(lambda self: self.root / META_FILE)
    space_path = property(lambda self: self.root / "space.yaml")
    optuna_db = property(lambda self: self.root / "optuna.db")
    mlflow_db = property(lambda self: self.root / "mlflow.db")
    mlflow_artifacts = property(lambda self: self.root / "mlartifacts")
    trials_parquet = property(lambda self: self.root / "trials.parquet")
    epochs_parquet = property(lambda self: self.root / "epochs.parquet")
    layers_parquet = property(lambda self: self.root / "layers.parquet")
    journal = property(lambda self: self.root / "journal.jsonl")
    runs = property(lambda self: self.root / "runs")
    faults = property(lambda self: self.root / ".faults")

    def run_export(self, plan_key: str, seed: int) -> Path:
        """Where one engine run's final files are exported: ``runs/<plan key>/seed_<seed>/`` (config,
        epoch records, result, and the best-epoch weights in :data:`BEST_EXPORT`)."""
        return self.runs / plan_key / f"seed_{seed}"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.optuna_db}"

    @property
    def mlflow_default_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    def exists(self) -> bool:
        return self.meta_path.is_file()

    # ----------------------------------------------------------------------------------------------
    def read_meta(self) -> SweepMeta:
        return SweepMeta(**json.loads(self.meta_path.read_text()))

    def create(self, space: SweepSpace) -> SweepMeta:
        """Make the directory, copy the space file and write ``sweep.json`` (new sweeps only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        meta = SweepMeta(
            sweep_id=uuid.uuid4().hex[:12],
            name=self.name,
            space_hash=space.space_hash(),
            created_unix=time.time(),
            created_path=str(self.root),
            git_commit=git_commit(),
            spikesweep_version=spikesweep_version(),
            space=json.loads(json.dumps(space.canonical(), default=str)),
        )
        _atomic_write(self.space_path, space.text())
        _atomic_write(self.meta_path, json.dumps(asdict(meta), indent=2) + "\n")
        return meta

    def never_started(self) -> bool:
        """True when the directory holds only what :meth:`create` writes: the sweep failed before Ray
        Tune ran (e.g. a GPU request on a machine without one), so nothing depends on its space yet."""
        if not self.root.is_dir():
            return False
        created = {META_FILE, self.space_path.name}
        return all(p.name in created or p.name.startswith(".") for p in self.root.iterdir())

    def check_resumable(self, space: SweepSpace) -> SweepMeta:
        """The stored identity, after checking that ``space`` is the one this sweep was started with."""
        meta = self.read_meta()
        if meta.space_hash != space.space_hash():
            changes = describe_changes(meta.space, space.canonical())
            raise ConfigError(
                f"{space.path}: refusing to resume sweep {str(self.root)!r} with a changed search space.\n"
                f"  The sweep was started from the space stored in {self.space_path}; resuming with a\n"
                f"  different one would mix trials of two experiments in one Optuna study and one\n"
                f"  MLflow experiment. Changed keys:\n    " + "\n    ".join(changes) + "\n"
                "  Either restore the original space file, or start a new sweep under another "
                "--name (or --storage)."
            )
        if Path(meta.created_path) != self.root:
            raise ConfigError(
                f"sweep {str(self.root)!r} was created at {meta.created_path!r}; Ray Tune's saved "
                f"experiment state holds absolute paths, so resume it from its original location "
                f"(its results can be read from anywhere)."
            )
        return meta


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old → new`` lines for the keys that differ (resume-safe keys ignored)."""
    from orchestrator.space import _RESUME_SAFE_KEYS  # noqa: PLC0415

    flat_old = {k: v for k, v in flatten(old).items() if k.split(".")[0] not in _RESUME_SAFE_KEYS}
    flat_new = {k: v for k, v in flatten(new).items() if k.split(".")[0] not in _RESUME_SAFE_KEYS}
    missing = object()
    lines = []
    for key in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(key, missing), flat_new.get(key, missing)
        if a != b:
            show = lambda v: "(absent)" if v is missing else repr(v)  # noqa: E731
            lines.append(f"{key}: {show(a)} → {show(b)}")
    return lines or ["(only formatting differs from the stored copy)"]


@functools.cache
def git_commit() -> str:
    """The commit of the code that runs (``<sha>-dirty`` with local changes; ``unknown`` outside git)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(here),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "engine",
                "orchestrator",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=here.parent,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.cache
def spikesweep_version() -> str:
    try:
        return importlib.metadata.version("spikesweep")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        for line in pyproject.read_text().splitlines() if pyproject.is_file() else []:
            if line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"') + "+src"
        return "unknown"


def _atomic_write(path: Path, text: str) -> None:
    atomic_write_text(path, text)
