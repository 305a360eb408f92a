"""The README's GPU table, regenerated from a ``bench/gpu_check.py`` JSON file.

    python bench/gpu_table.py bench/results/gpu_check_h200.json

One Markdown table per workload: every timed variant with ms/iteration, samples/s, speed against the
reference step (``s/autograd/nchw/fp32``), achieved TFLOP/s and % of the device's dense peak (when the
file has them: files from before they were measured show "—"), peak memory; then the packed-trial
rows (``--pack``) and the run's device, torch version and check count. Numbers are printed as measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REFERENCE = "s/autograd/nchw/fp32"  # bench/gpu_check.py's REFERENCE (not imported: that imports torch)


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def tables(report: dict[str, Any]) -> list[str]:
    timed = [t for t in report["timings"] if "ms_per_iter" in t and "variant" in t]
    lines = []
    env = report.get("env", {})
    checks = report.get("checks", [])
    ok = sum(1 for c in checks if c.get("ok"))
    lines.append(
        f"Device: {env.get('device', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}; "
        f"checks {ok}/{len(checks)} ok; {env.get('iters', '?')} timed steps per variant."
    )
    for workload in dict.fromkeys(t["workload"] for t in timed):
        rows = [t for t in timed if t["workload"] == workload]
        base = next((t for t in rows if t["variant"] == REFERENCE), None)
        lines += [
            "",
            f"**{workload}**",
            "",
            "| variant | ms/iter | samples/s | × reference | TFLOP/s | % of peak | peak GiB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for t in rows:
            speed = base["ms_per_iter"] / t["ms_per_iter"] if base else None
            lines.append(
                f"| {t['variant']} | {t['ms_per_iter']:.1f} | {t['samples_per_s']:.0f} | "
                f"{_fmt(speed, '.2f')} | "
                f"{_fmt(t.get('tflops'), '.1f')} | {_fmt(t.get('pct_of_peak'), '.1f')} | "
                f"{t['peak_mib'] / 1024:.1f} |"
            )
        packed = [t for t in report["timings"] if t["workload"] == workload and "trials" in t]
        for t in packed:
            slowest = max(r["ms_per_iter"] for r in t["per_trial"])
            lines.append(
                f"\n{t['trials']} packed trial(s) of {t['variant'].split('/', 1)[1]}: "
                f"{t['samples_per_s']:.0f} samples/s together, slowest trial {slowest:.1f} ms/iter."
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", type=Path, help="a bench/gpu_check.py --json file")
    args = p.parse_args(argv)
    report = json.loads(args.json.read_text())
    print("\n".join(tables(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
