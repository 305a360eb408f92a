"""Wait until every node of the allocation has joined the job's Ray cluster (run inside the job).

Each Ray node of a spikesweep job carries the label ``slurm-node=<Slurm node name>`` (set by
``slurm/ray_node.sh``), so a node that never joins is reported by the name a user can look up in
``squeue``/``sinfo`` and in its log file, not as a missing count.

Usage (from the sbatch script)::

    python -m orchestrator.slurm.join --address IP:PORT --timeout 300 --logs 'DIR/ray-JOB-<node>.log' n1 n2

Exit status 0 when all nodes joined, 1 otherwise; the one-line verdict goes to stdout (the script records
it), everything Ray prints goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["JoinResult", "NODE_LABEL", "joined_nodes", "wait_for_nodes"]

NODE_LABEL = "slurm-node"


@dataclass(frozen=True)
class JoinResult:
    expected: tuple[str, ...]
    joined: tuple[str, ...]
    waited_s: float
    head_reachable: bool = True

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(node for node in self.expected if node not in self.joined)

    @property
    def ok(self) -> bool:
        return self.head_reachable and not self.missing

    def message(self, address: str, timeout_s: float, logs: str | None = None) -> str:
        if not self.head_reachable:
            head = self.expected[0]
            where = f"; see {logs.replace('<node>', head)}" if logs else ""
            return f"the Ray head on {head} did not listen at {address} within {timeout_s:g} s{where}"
        if self.ok:
            return (
                f"ray cluster up at {address}: {len(self.joined)} node(s) joined in {self.waited_s:.0f} s "
                f"({', '.join(self.joined)})"
            )
        where = ""
        if logs:
            where = "; see " + ", ".join(logs.replace("<node>", node) for node in self.missing)
        joined = ", ".join(self.joined) or "none"
        return (
            f"Ray node(s) {', '.join(self.missing)} did not join the cluster at {address} within "
            f"{timeout_s:g} s (joined: {joined}){where}"
        )


def joined_nodes(nodes: Sequence[dict]) -> tuple[str, ...]:
    """Slurm node names of the alive Ray nodes in ``ray.nodes()`` output, sorted."""
    names = {node.get("Labels", {}).get(NODE_LABEL) for node in nodes if node.get("Alive")}
    return tuple(sorted(name for name in names if name))


def _port_open(address: str, timeout_s: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_nodes(
    address: str,
    expected: Sequence[str],
    timeout_s: float,
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> JoinResult:
    """Poll the cluster at ``address`` until every ``expected`` node is alive in it, or time out."""
    start = clock()
    deadline = start + timeout_s
    while not _port_open(address):
        if clock() >= deadline:
            return JoinResult(tuple(expected), (), clock() - start, head_reachable=False)
        time.sleep(poll_s)

    import ray  # noqa: PLC0415 — only the job's head node needs Ray here

    with contextlib.redirect_stdout(sys.stderr):
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        try:
            while True:
                joined = joined_nodes(ray.nodes())
                if set(expected) <= set(joined) or clock() >= deadline:
                    return JoinResult(tuple(expected), joined, clock() - start)
                time.sleep(poll_s)
        finally:
            ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.slurm.join", description=__doc__.split("\n")[0]
    )
    parser.add_argument("nodes", nargs="+", help="Slurm node names that must join (head first)")
    parser.add_argument("--address", required=True, help="the Ray head's IP:PORT")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    parser.add_argument("--logs", help="log file pattern with <node>, named in the error message")
    args = parser.parse_args(argv)
    try:
        result = wait_for_nodes(args.address, args.nodes, args.timeout)
    except Exception as exc:  # noqa: BLE001 — the job script records this one line as the failure
        print(f"could not query the Ray cluster at {args.address}: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(result.message(args.address, args.timeout, args.logs), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
