"""A private one-machine Slurm cluster for the tests: munged + slurmctld + several slurmd in a temp dir.

Everything runs from one directory with its own munge key and socket, free TCP ports and its own state,
so it neither needs nor touches a system Slurm or munge, and two test sessions do not see each other.
Several ``NodeName`` entries (``n1``, ``n2``, ...) each get their own ``slurmd -N`` on 127.0.0.1 with
its own port (Debian's Slurm supports this "multiple slurmd" mode), so multi-node jobs — ``srun`` onto
other nodes, a Ray worker per node — really run. ``SlurmdParameters=config_overrides`` lets each
simulated node declare CPUs the machine does not have.

Partitions: ``debug`` (default, ``PriorityTier=1``, preemptable with ``PreemptMode=REQUEUE``),
``urgent`` (``PriorityTier=10``: a job in it preempts and requeues a running ``debug`` job) and ``short``
(first node only, ``MaxTime=5`` minutes).

The daemons are children of the test process, run as its user (root is not needed), and are stopped by
pid after every job is cancelled.
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CRED_EXPIRE_S = 10
"""Job credential lifetime. A requeued job that starts again sooner is refused by slurmd ("Job credential
revoked") and FAILS, so :meth:`SlurmCluster.restart_requeued` waits this long before forcing a start."""
REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun", "sinfo")


def program(name: str) -> str | None:
    """Absolute path of a Slurm/munge program; daemons live in /usr/sbin, often not on a user's PATH."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def unavailable_reason() -> str | None:
    """Why a cluster cannot start on this machine (``None`` if it can)."""
    missing = [name for name in REQUIRED_PROGRAMS if program(name) is None]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing from PATH); install it with "
            f"`apt-get install slurmctld slurmd slurm-client munge` (.ci/run does)"
        )
    return None


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SlurmStartError(RuntimeError):
    pass


@dataclass
class SlurmCluster:
    root: Path
    nodes: tuple[str, ...]
    cpus_per_node: int
    memory_mb: int
    ray_tmp_root: Path | None = None
    """Short private parent of the jobs' Ray temp dirs (SPIKESWEEP_RAY_TMP_ROOT; Unix sockets need short
    paths, and two test sessions must not share /tmp/ray-<jobid>-<node>)."""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment for Slurm commands and for jobs (sbatch exports it to the job)."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        if self.ray_tmp_root is not None:
            env["SPIKESWEEP_RAY_TMP_ROOT"] = str(self.ray_tmp_root)
        for key in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_")) and k != "SLURM_CONF"]:
            del env[key]  # a test run inside a Slurm job must not leak that job's settings
        env.pop("RAY_ADDRESS", None)  # nor a Ray cluster another test started in this process
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    # --- jobs ---------------------------------------------------------------------------------------------
    def job_fields(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (``JobState``, ``Reason``, ``Restarts``, ``ExitCode``, ...)."""
        out = self.run("scontrol", "show", "job", "-o", job_id, check=False).stdout
        fields = {}
        for token in out.split():
            key, sep, value = token.partition("=")
            if sep and key not in fields:
                fields[key] = value
        return fields

    def job_state(self, job_id: str) -> str:
        return self.job_fields(job_id).get("JobState", "UNKNOWN")

    def wait_for(self, job_id: str, predicate, timeout: float, poll: float = 0.5, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        fields = self.job_fields(job_id)
        while not predicate(fields):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id}: timed out after {timeout:g} s waiting for {what}: {fields}"
                )
            time.sleep(poll)
            fields = self.job_fields(job_id)
        return fields

    def wait_for_state(self, job_id: str, states: Sequence[str], timeout: float) -> dict:
        return self.wait_for(
            job_id, lambda f: f.get("JobState") in states, timeout, what=f"state in {list(states)}"
        )

    def restart_requeued(self, job_id: str, restarts: int = 1, timeout: float = 90) -> None:
        """Wait until the job has been requeued ``restarts`` times, then let it start again at once.

        Slurm holds a requeued job back (begin time ~2 min later); ``StartTime=now`` skips that, but only
        after the old credential has expired (``CRED_EXPIRE_S``), or slurmd refuses the new start.
        """
        self.wait_for(
            job_id,
            lambda f: f.get("Restarts") == str(restarts) and f.get("JobState") == "PENDING",
            timeout,
            what=f"requeue #{restarts}",
        )
        time.sleep(CRED_EXPIRE_S + 1)
        result = self.run("scontrol", "update", f"jobid={job_id}", "StartTime=now", check=False)
        # Slurm may have started the job by itself while we waited (the scheduler's own begin time, or
        # a backfill pass): it is running again, which is all this asks for.
        if result.returncode != 0 and "no longer pending" not in result.stderr:
            raise RuntimeError(f"scontrol update jobid={job_id} StartTime=now: {result.stderr.strip()}")

    def cancel_all(self, timeout: float = 30) -> None:
        ids = self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
        if ids:
            self.run("scancel", *ids, check=False)
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)

    # --- lifecycle ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (by pid, in that order)."""
        try:
            if self.processes and self.processes[0].poll() is None:
                self.cancel_all()
        finally:
            for proc in reversed(self.processes):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in reversed(self.processes):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            self.processes.clear()
            if self.ray_tmp_root is not None:
                shutil.rmtree(self.ray_tmp_root, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for log in sorted(self.root.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _write_conf(cluster: SlurmCluster, ctld_port: int, node_ports: Sequence[int]) -> None:
    root = cluster.root
    node_lines = [
        f"NodeName={node} NodeAddr=127.0.0.1 NodeHostname=localhost Port={port} "
        f"CPUs={cluster.cpus_per_node} RealMemory={cluster.memory_mb}"
        for node, port in zip(cluster.nodes, node_ports, strict=True)
    ]
    nodelist = ",".join(cluster.nodes)
    cluster.conf.write_text(
        "\n".join(
            [
                "ClusterName=spiketest",
                "SlurmctldHost=localhost(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={node_ports[0]}",
                # The daemons run as whoever runs the tests (root or not): jobs run as that same user.
                f"SlurmUser={getpass.getuser()}",
                f"SlurmdUser={getpass.getuser()}",
                "AuthType=auth/munge",
                f"AuthInfo=socket={root / 'munge.socket'},cred_expire={CRED_EXPIRE_S}",
                "CredType=cred/munge",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}/%n",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd'}.%n.pid",
                f"SlurmctldLogFile={root / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'slurmd'}.%n.log",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "SlurmdParameters=config_overrides",
                "DefMemPerCPU=500",
                "MpiDefault=none",
                "MailProg=/bin/true",
                "JobRequeue=1",
                "PreemptType=preempt/partition_prio",
                "PreemptMode=REQUEUE",
                "ReturnToService=2",
                "KillWait=5",
                "MinJobAge=600",
                # Backfill every second: a requeued job starts as soon as it is eligible, not 30 s later.
                "SchedulerParameters=bf_interval=1",
                # Job ids (hence the jobs' Ray ports) differ between test sessions sharing a machine.
                f"FirstJobId={random.randint(1000, 4000)}",
                *node_lines,
                f"PartitionName=debug Nodes={nodelist} Default=YES MaxTime=INFINITE State=UP "
                "PriorityTier=1 PreemptMode=REQUEUE",
                f"PartitionName=urgent Nodes={nodelist} MaxTime=INFINITE State=UP PriorityTier=10 "
                "PreemptMode=OFF",
                f"PartitionName=short Nodes={cluster.nodes[0]} MaxTime=00:05:00 State=UP PriorityTier=1",
                "",
            ]
        )
    )


def start_cluster(
    root: Path,
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    cpus_per_node: int = 2,
    memory_mb: int = 4000,
    timeout: float = 30,
) -> SlurmCluster:
    """Start munged, slurmctld and one slurmd per node under ``root``; wait until every node is idle.

    Raises:
        SlurmStartError: with the daemons' log tails, if the cluster does not come up.
    """
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged insists that its socket directory is not writable by others
    for sub in ["state", "spool", *(f"spool/{node}" for node in nodes)]:
        (root / sub).mkdir(exist_ok=True)
    cluster = SlurmCluster(
        root=root,
        nodes=tuple(nodes),
        cpus_per_node=cpus_per_node,
        memory_mb=memory_mb,
        ray_tmp_root=Path(tempfile.mkdtemp(prefix="ss", dir="/tmp")),
    )
    try:
        ports = _free_ports(1 + len(nodes))
        _write_conf(cluster, ports[0], ports[1:])

        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "start_new_session": True}
        cluster.processes.append(
            subprocess.Popen(
                [
                    program("munged"), "--foreground", "--force", f"--socket={root / 'munge.socket'}",
                    f"--key-file={key}", f"--log-file={root / 'munged.log'}",
                    f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}",
                ],
                **quiet,
            )
        )  # fmt: skip
        _wait_until(lambda: (root / "munge.socket").exists(), 10, "munged's socket")
        cluster.processes.append(
            subprocess.Popen(
                [program("slurmctld"), "-D", "-c", "-f", str(cluster.conf)], env=cluster.env, **quiet
            )
        )
        for node in nodes:
            cluster.processes.append(
                subprocess.Popen(
                    [program("slurmd"), "-D", "-N", node, "-f", str(cluster.conf)], env=cluster.env, **quiet
                )
            )

        def all_idle() -> bool:
            out = cluster.run("sinfo", "-h", "-N", "-p", "debug", "-o", "%N %t", check=False).stdout.split(
                "\n"
            )
            states = dict(line.split() for line in out if line.strip())
            return all(states.get(node) == "idle" for node in nodes)

        _wait_until(all_idle, timeout, "every node to be idle")
    except (OSError, TimeoutError, RuntimeError, subprocess.SubprocessError) as exc:
        # the daemons would not come up here: a reason to skip, with their logs
        tail = cluster.log_tail()
        cluster.stop()
        raise SlurmStartError(f"the one-machine Slurm cluster did not start: {exc}\n{tail}") from exc
    except BaseException:  # a bug in this module: an error, not a skip
        cluster.stop()
        raise
    return cluster


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)
