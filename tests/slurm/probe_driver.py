"""A Ray driver that stands where ``spikesweep sweep`` stands in the job script, to test the bootstrap.

Called exactly like the sweep driver (``sweep SPACE --name N --storage S --address A``), it connects to
the job's Ray cluster, records what the cluster looks like (nodes by their ``slurm-node`` label, CPUs and
GPUs each node offers, the auth mode) and runs one task on every node. With ``PROBE_WAIT_FOR_USR1=1`` its
first run (``SLURM_RESTART_COUNT`` unset or 0) then waits for SIGUSR1 and exits 75, as an interrupted
sweep does; restarts finish at once. Everything is written to ``<storage>/<name>/probe-<restart>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import ray


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("space")
    parser.add_argument("--name", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    out = Path(args.storage) / args.name / f"probe-{restart}.json"
    received: list[int] = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))

    ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
    nodes = {
        node["Labels"].get("slurm-node"): {
            "cpus": node["Resources"].get("CPU", 0.0),
            "gpus": node["Resources"].get("GPU", 0.0),
        }
        for node in ray.nodes()
        if node["Alive"]
    }

    @ray.remote(num_cpus=1)
    def where() -> dict:
        return {"slurm_node": os.environ.get("SLURMD_NODENAME"), "auth": os.environ.get("RAY_AUTH_MODE")}

    tasks = ray.get([where.options(label_selector={"slurm-node": name}).remote() for name in sorted(nodes)])
    ray.shutdown()
    report = {"pid": os.getpid(), "restart": restart, "nodes": nodes, "tasks": tasks, "signal": None}
    wait = os.environ.get("PROBE_WAIT_FOR_USR1") == "1" and restart == 0
    out.write_text(json.dumps({**report, "waiting": wait}))
    if not wait:
        return 0
    deadline = time.monotonic() + 120
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    out.write_text(json.dumps({**report, "waiting": False, "signal": received[0] if received else None}))
    return 75 if received else 1


if __name__ == "__main__":
    sys.exit(main())
