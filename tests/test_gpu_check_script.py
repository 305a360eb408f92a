"""``bench/gpu_check.py`` runs end to end where there is no GPU: a CPU smoke test of the script the GPU
figures will come from (its new variants — Triton neurons under the interpreter, 1-byte spikes — the
FLOP count, packed trials), and ``bench/gpu_table.py`` makes the README's table from its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_gpu_check_smoke_on_cpu_and_table(tmp_path):
    pytest.importorskip("triton")
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu_check.py"),
            "--device=cpu",
            "--quick",
            "--skip-checks",
            "--workloads=vgg (quick)",
            "--only=s/autograd/nchw/fp32,m/triton/cl/lean/fp32",
            "--iters=1",
            "--warmup=1",
            "--pack=2",
            "--pack-variant=s/autograd/nchw/fp32",
            f"--json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    timed = {t["variant"]: t for t in report["timings"] if "ms_per_iter" in t}
    assert set(timed) == {"s/autograd/nchw/fp32", "m/triton/cl/lean/fp32"}
    for row in timed.values():
        # the quick VGG's convolutions and matmuls per sample, forward and backward, both streams
        assert row["gflop_per_sample"] == pytest.approx(0.774634752)
        assert row["tflops"] == pytest.approx(row["gflop_per_sample"] * row["samples_per_s"] / 1e3)
    packed = [t for t in report["timings"] if "trials" in t]
    assert [t["trials"] for t in packed] == [2] and len(packed[0]["per_trial"]) == 2
    table = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_table.py"), str(out)], capture_output=True, text=True
    )
    assert table.returncode == 0, table.stderr
    assert "| m/triton/cl/lean/fp32 |" in table.stdout and "2 packed trial(s)" in table.stdout
