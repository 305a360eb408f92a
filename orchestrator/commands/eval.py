"""``spikesweep eval CHECKPOINT``: evaluate a checkpoint's event branch on the event test split.

CHECKPOINT is one of:

- a run directory (its best checkpoint, or its last when there is no best);
- a checkpoint directory (``runs/x/checkpoints/last``);
- the authors' released BrainCog/timm file (``model_best.pth.tar``): the original state-dict keys are
  mapped onto ours and the configuration is rebuilt from the file's saved arguments. Give the dataset
  location with ``--set data.root=/path``; any other key can be overridden the same way.

Prints test loss, top-1 and top-5, and the spike activity, synaptic operations and energy per inference
layer by layer (``engine.activity``); ``--json FILE`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator.commands import add_overrides_argument, parse_time_steps

NAME = "eval"
HELP = "Evaluate a checkpoint (ours or the authors' BrainCog file) on the event test split."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", type=Path, metavar="CHECKPOINT", help="run dir, checkpoint dir or .pth file"
    )
    add_overrides_argument(parser, "override config keys, e.g. data.root=/data device=cpu batch_size=64")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the metrics to FILE as JSON")
    parser.add_argument(
        "--recalibrate-bn",
        type=int,
        default=0,
        metavar="N",
        help="diagnostic: first re-estimate BatchNorm running statistics on N event training batches "
        "(a transfer model's are partly static-image statistics); default 0 = as trained",
    )
    parser.add_argument(
        "--time-steps",
        type=parse_time_steps,
        metavar="T1,T2,…",
        help="also evaluate with inference stopped after each of these many time steps (1…T): a table "
        "and a plot of accuracy and energy vs T' (time_steps.md/.parquet/.png)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where --time-steps writes (default: CHECKPOINT/time_steps, or beside a checkpoint file)",
    )


def run(args: argparse.Namespace) -> int:
    from engine.training.evaluation import evaluate_checkpoint

    if args.recalibrate_bn < 0:
        from engine.errors import ConfigError

        raise ConfigError(f"--recalibrate-bn {args.recalibrate_bn} must be ≥ 0 (batches)")
    if args.time_steps is not None:
        return _run_time_steps(args)
    metrics = evaluate_checkpoint(args.checkpoint, args.overrides, recalibrate_bn=args.recalibrate_bn)
    activity = metrics.pop("activity")
    recalibrated = metrics["bn_recalibration_batches"]
    if recalibrated:
        print(f"BatchNorm running statistics re-estimated on {recalibrated} event training batches")
    print(
        f"{metrics['checkpoint']} ({metrics['source']}, {metrics['model']}): "
        f"test top-1 {metrics['test_top1']:.2f}%  top-5 {metrics['test_top5']:.2f}%  "
        f"loss {metrics['test_loss']:.4f}  on {metrics['test_samples']} {metrics['pair']} test recordings"
    )
    print(activity.describe())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**metrics, "activity": activity.as_dict()}, indent=2) + "\n")
    sys.stdout.flush()
    return 0


def _run_time_steps(args: argparse.Namespace) -> int:
    from engine.training.evaluation import evaluate_time_steps
    from orchestrator.report.time_steps import time_steps_table, write_time_steps

    if args.recalibrate_bn:
        from engine.errors import ConfigError

        raise ConfigError("--time-steps evaluates the model as trained: leave out --recalibrate-bn")
    evaluable, rows = evaluate_time_steps(args.checkpoint, args.time_steps, args.overrides)
    checkpoint = Path(evaluable.loaded.path)
    given = Path(args.checkpoint)
    out = args.out or (given if given.is_dir() else given.parent) / "time_steps"
    title = f"{evaluable.config.model.name} (T = {evaluable.config.T}) on {evaluable.config.data.pair}"
    print(f"{checkpoint}: {title}, inference stopped after T' time steps")
    print(time_steps_table(rows).to_text())
    paths = write_time_steps(rows, out, title)
    print(f"wrote {out}/: " + ", ".join(p.name for p in paths.values()))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0
