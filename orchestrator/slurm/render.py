"""Fill the sbatch template and lay out ``<sweep>/slurm/``: a script that plain ``sbatch`` runs again.

What lands in ``<sweep>/slurm/`` (the job's own directory inside the sweep directory):

* ``sweep.sbatch`` — the rendered ``slurm/sweep.sbatch``: every path absolute, every choice visible;
* ``ray_node.sh`` — a copy of ``slurm/ray_node.sh``, so a requeued job runs the same bootstrap even if the
  checkout changes meanwhile;
* ``<space file name>`` — a copy of the space the job runs (its name is kept: a space without a
  ``name`` key is named after its file);
* later, written by the job: ``slurm-<jobid>.out``, ``ray-<jobid>-<node>.log``, ``events.tsv``.

The template language is only ``{{ key }}``: every key must be given and every value used, so a typo in
the template or here fails at render time rather than as a broken script in the queue.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError
from orchestrator.slurm.request import SlurmRequest
from orchestrator.space import check_name

__all__ = [
    "JobFiles",
    "SweepJob",
    "render_sweep_script",
    "render_template",
    "template_dir",
    "write_job_files",
]

SCRIPT_NAME = "sweep.sbatch"
NODE_HELPER_NAME = "ray_node.sh"
SETUP_NAME = "setup.sh"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template_dir() -> Path:
    """Where the sbatch template and the node helper are.

    ``slurm/`` of the source tree this package was loaded from (an editable install), else the copy a
    wheel install puts under ``<prefix>/share/spikesweep/slurm`` (``data-files`` in pyproject.toml).
    """
    candidates = [
        Path(__file__).resolve().parents[2] / "slurm",
        Path(sysconfig.get_path("data")) / "share" / "spikesweep" / "slurm",
    ]
    for here in candidates:
        if (here / SCRIPT_NAME).is_file() and (here / NODE_HELPER_NAME).is_file():
            return here
    raise ConfigError(
        f"the sbatch template ({SCRIPT_NAME}, {NODE_HELPER_NAME}) is in none of "
        f"{', '.join(str(c) for c in candidates)}: reinstall spikesweep (pip install -e . from a checkout)"
    )


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{ key }}``; unknown keys and unused values are errors."""
    used: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{ {key} }}}} has no value")
        used.add(key)
        return values[key]

    rendered = _PLACEHOLDER.sub(substitute, text)
    unused = sorted(set(values) - used)
    if unused:
        raise KeyError(f"values never used by the template: {', '.join(unused)}")
    return rendered


@dataclass(frozen=True)
class SweepJob:
    """Everything the script needs besides the request: which sweep, and which environment runs it."""

    name: str
    storage: Path
    space: Path
    """The space file the job runs (the copy in ``<sweep>/slurm/``)."""
    python: Path
    """Interpreter of the environment with spikesweep and Ray; its ``bin/`` holds ``spikesweep``, ``ray``."""
    workdir: Path
    """Working directory of the job (relative paths in the space resolve as they did at submission)."""
    driver: Path | None = None
    """The ``spikesweep`` executable the job runs (default: the one next to ``python``)."""
    setup: Path | None = None
    """The copy in ``<sweep>/slurm/setup.sh`` of the site's set-up lines (``--setup``), sourced on every node
    before Ray starts (``module load``, ``conda activate``)."""

    @property
    def sweep_dir(self) -> Path:
        return self.storage / self.name

    @property
    def job_dir(self) -> Path:
        return self.sweep_dir / "slurm"

    @property
    def script_path(self) -> Path:
        return self.job_dir / SCRIPT_NAME

    @property
    def node_helper(self) -> Path:
        return self.job_dir / NODE_HELPER_NAME

    @property
    def spikesweep(self) -> Path:
        return self.driver or self.python.parent / "spikesweep"


def render_sweep_script(request: SlurmRequest, job: SweepJob, rendered_at: _dt.datetime | None = None) -> str:
    """The sbatch script for ``job`` with ``request``'s resources (text only; nothing is written)."""
    request.validate()
    check_name(job.name, "--name")  # also a comment line, the job name and a shell word
    for label, path in (("storage", job.sweep_dir), ("working directory", job.workdir)):
        # #SBATCH lines cannot quote, % starts a filename pattern in --output, and a line break would end
        # the comment or directive line it is written into.
        if re.search(r"[\s%\"'\\]", str(path)):
            raise ConfigError(
                f"the {label} {str(path)!r} contains whitespace, a quote, a backslash or '%', which #SBATCH "
                f"lines cannot hold; choose another --storage / working directory"
            )
    when = (rendered_at or _dt.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
    values = {
        "name": job.name,
        "name_q": shlex.quote(job.name),
        "job_name": request.job_name or f"sweep-{job.name}",
        "rendered_at": when,
        "script_path": str(job.script_path),
        "script_path_q": shlex.quote(str(job.script_path)),
        "sweep_dir": str(job.sweep_dir),
        "storage": str(job.storage),
        "storage_q": shlex.quote(str(job.storage)),
        "space_q": shlex.quote(str(job.space)),
        "spikesweep_q": shlex.quote(str(job.spikesweep)),
        "python_q": shlex.quote(str(job.python)),
        "ray_node": str(job.node_helper),
        "ray_node_q": shlex.quote(str(job.node_helper)),
        "log_dir": str(job.job_dir),
        "log_dir_q": shlex.quote(str(job.job_dir)),
        "workdir": str(job.workdir),
        "nodes": str(request.nodes),
        "cpus_per_node": str(request.cpus_per_node),
        "time": request.time,
        "optional_directives": "\n".join(request.optional_directives()),
        "signal_lead_s": str(request.signal_lead_s),
        "join_timeout_s": str(request.join_timeout_s),
        "max_requeues": str(request.max_requeues),
        "setup_q": shlex.quote(str(job.setup)) if job.setup else "''",
    }
    text = (template_dir() / SCRIPT_NAME).read_text()
    rendered = render_template(text, values)
    # An empty optional block leaves a blank line among the #SBATCH lines; keep the header tidy.
    return re.sub(r"\n\n(#SBATCH)", r"\n\1", rendered)


@dataclass(frozen=True)
class JobFiles:
    script: Path
    node_helper: Path
    space: Path
    text: str = ""
    """The rendered script."""


def default_python() -> Path:
    """This interpreter, as invoked (a venv's ``bin/python`` must not be resolved to the system one)."""
    return Path(sys.executable).absolute()


def write_job_files(
    request: SlurmRequest,
    *,
    space_path: Path,
    name: str,
    storage: Path,
    python: Path | None = None,
    workdir: Path | None = None,
    setup: Path | None = None,
    dry_run: bool = False,
) -> JobFiles:
    """Render the script into ``<storage>/<name>/slurm/`` with a copy of the space and the node helper.

    ``setup``: a file of shell lines copied to ``setup.sh`` there and sourced on every node before Ray.
    ``dry_run``: render and check everything, write nothing; the returned paths say where files would go
    and ``JobFiles.text`` holds the script.
    """
    python = python or default_python()
    if setup is not None and not setup.is_file():
        raise ConfigError(f"--setup {str(setup)!r} is not a readable file")
    missing = [p for p in (python, python.parent / "spikesweep", python.parent / "ray") if not p.exists()]
    if missing:
        raise ConfigError(
            f"the job would run {python}, but {', '.join(map(str, missing))} does not exist; submit from "
            f"the environment where spikesweep and Ray are installed"
        )
    job_dir = storage.absolute() / name / "slurm"
    job = SweepJob(
        name=name,
        storage=storage.absolute(),
        space=job_dir / space_path.name,
        python=python,
        workdir=(workdir or Path.cwd()).absolute(),
        setup=job_dir / SETUP_NAME if setup is not None else None,
    )
    script_text = render_sweep_script(request, job)  # validate before touching the disk
    files = JobFiles(script=job.script_path, node_helper=job.node_helper, space=job.space, text=script_text)
    if dry_run:
        return files
    job_dir.mkdir(parents=True, exist_ok=True)
    if setup is not None:
        shutil.copyfile(setup, job_dir / SETUP_NAME)
    if space_path.absolute() != job.space:
        shutil.copyfile(space_path, job.space)
    shutil.copyfile(template_dir() / NODE_HELPER_NAME, job.node_helper)
    job.node_helper.chmod(0o755)
    job.script_path.write_text(script_text)
    job.script_path.chmod(0o755)
    return files
