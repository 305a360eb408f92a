"""Per-arm means over seeds of a sweep's per-epoch records, at chosen epochs (counted from 1).

Reproduces the README's "Why" numbers (event train vs test accuracy, sliding P, α_0 by epoch):

    python docs/epoch_means.py sweeps/nshapes_paper_ablation --epochs 10 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq

COLUMNS = ["train_top1", "test_top1", "sliding_p", "alpha_0"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5, 10, 15, 20])
    args = parser.parse_args()
    epochs = pq.read_table(args.sweep / "epochs.parquet").to_pandas()
    trials = pq.read_table(args.sweep / "trials.parquet", columns=["plan_key", "seed", "arm"]).to_pandas()
    merged = epochs.merge(trials.drop_duplicates(), on=["plan_key", "seed"])
    merged["epoch"] += 1
    table = merged[merged["epoch"].isin(args.epochs)].groupby(["arm", "epoch"])[COLUMNS].mean().round(1)
    print(table.to_string())


if __name__ == "__main__":
    main()
