"""Look at a sweep's MLflow experiment in a real browser: ``docs/mlflow_runs.png`` in the README.

Serves the sweep's own store (``<sweep>/mlflow.db``) with ``mlflow server`` on a local port, opens the
experiment's page in headless Chromium (Debian's ``chromium``) and saves a screenshot, then stops the
server. The page is MLflow's JavaScript app, so Chromium is given time to run it
(``--virtual-time-budget``).

    python docs/mlflow_screenshot.py sweeps/smoke docs/mlflow_runs.png
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow import MlflowClient

from orchestrator.tune.mlflow_logger import TRAINING_RUNS_VIEW


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"mlflow server at {url} did not answer within {timeout_s:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1500,950", help="browser window WIDTH,HEIGHT")
    parser.add_argument("--chart", action="store_true", help="the chart view instead of the runs table")
    args = parser.parse_args()
    args.query = "&compareRunsMode=CHART" if args.chart else ""
    store = f"sqlite:///{(args.sweep_dir / 'mlflow.db').resolve()}"
    experiment = MlflowClient(store).get_experiment_by_name(args.sweep_dir.name)
    if experiment is None:
        raise SystemExit(f"{store} has no experiment {args.sweep_dir.name!r}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(url)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={args.size}",
                "--virtual-time-budget=20000",
                f"--screenshot={args.out.resolve()}",
                f"{url}/#/experiments/{experiment.experiment_id}/runs?{TRAINING_RUNS_VIEW}{args.query}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
