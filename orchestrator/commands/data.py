"""``spikesweep data``: write the built-in dataset, check a dataset layout, pre-build the frame cache.

- ``spikesweep data nshapes --out DIR [--classes K] [--per-class N] [--seed S]`` writes the built-in
  pair in the N-Caltech101 layout, so it can be inspected, copied, or read with tonic.
- ``spikesweep data check --pair P [--root DIR]`` lists and splits a dataset without decoding it and
  prints per-split counts and any pairing warnings; a wrong layout fails with the expected one.
- ``spikesweep data build [CONFIG.yaml | --preset NAME] [--set KEY=VALUE ...]`` builds the frame and
  static-image caches for a run configuration once, e.g. before launching a sweep on a cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.commands import add_overrides_argument

NAME = "data"
HELP = "Write the built-in nshapes dataset, check a dataset layout, or pre-build the frame cache."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    nshapes = sub.add_parser("nshapes", help="write the built-in static/event dataset (N-Caltech101 layout)")
    nshapes.add_argument("--out", type=Path, required=True, help="output directory")
    nshapes.add_argument("--classes", type=int, default=10, help="number of classes (2–40, default 10)")
    nshapes.add_argument("--per-class", type=int, default=40, help="images/recordings per class (default 40)")
    nshapes.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")

    check = sub.add_parser("check", help="validate a dataset layout and print split sizes")
    check.add_argument("--pair", required=True, help="dataset pair (nshapes, ncaltech101, cepdvs, nomniglot)")
    check.add_argument("--root", type=Path, help="dataset root (nshapes: omit to use the generated copy)")
    check.add_argument(
        "--contents",
        action="store_true",
        help="also read every event file and check it is a plausible recording (coordinates within the "
        "sensor, ordered timestamps, polarities, event rate); reads the whole dataset",
    )
    add_overrides_argument(check)

    build = sub.add_parser("build", help="build the frame/static caches of a run configuration")
    build.add_argument("config", nargs="?", type=Path, help="run config YAML (default: class defaults)")
    build.add_argument("--preset", help="start from a preset instead of a YAML file")
    add_overrides_argument(build)


def run(args: argparse.Namespace) -> int:
    return {"nshapes": _nshapes, "check": _check, "build": _build}[args.data_command](args)


def _nshapes(args: argparse.Namespace) -> int:
    from engine.data.nshapes import generate_nshapes
    from engine.errors import ConfigError

    if args.per_class < 2:
        raise ConfigError(f"--per-class {args.per_class} must be ≥ 2 (one train and one test recording)")
    if args.out.exists() and any(args.out.iterdir()):
        raise ConfigError(f"--out {args.out} exists and is not empty; choose a new directory")
    try:
        summary = generate_nshapes(args.out, classes=args.classes, per_class=args.per_class, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(
        f"wrote {len(summary.class_names)} classes × {summary.per_class} to {summary.root}\n"
        f"  events: {summary.root / 'Caltech101'}/<class>/image_XXXX.bin "
        f"({summary.events_min}–{summary.events_max} events per recording)\n"
        f"  images: {summary.root / '101_ObjectCategories'}/<class>/image_XXXX.jpg\n"
        f"  classes: {', '.join(summary.class_names)}\n"
        f"use it with: --set data.pair=ncaltech101 data.root={summary.root}"
    )
    return 0


def _config(args: argparse.Namespace):
    from engine.config import RunConfig

    if getattr(args, "preset", None):
        config = RunConfig.from_preset(args.preset)
    elif getattr(args, "config", None) is not None:
        config = RunConfig.from_yaml(args.config)
    else:
        config = RunConfig()
    return config


def _check(args: argparse.Namespace) -> int:
    from engine.data import load_catalog

    overrides = [f"data.pair={args.pair}", *args.overrides]
    if args.root is not None:
        overrides.append(f"data.root={args.root}")
    config = _config(args).with_overrides(overrides).validate()
    catalog = load_catalog(config)
    print(catalog.description)
    print(
        f"  classes: {catalog.num_classes}   train recordings: {len(catalog.train)}   "
        f"test recordings: {len(catalog.test)}   drawable static images: {len(catalog.static)}"
    )
    for message in catalog.warnings:
        print(f"  warning: {message}")
    if args.contents:
        return _check_contents(catalog)
    return 0


def _check_contents(catalog) -> int:
    """Read every event file through the pair's reader (which checks plausibility); list the bad ones."""
    import sys

    from tqdm.auto import tqdm

    from engine.errors import DatasetError

    records = [*catalog.train, *catalog.test]
    bad: list[str] = []
    for record in tqdm(records, desc="reading event files", unit="file", disable=not sys.stderr.isatty()):
        try:
            catalog.load_events(record)
        except DatasetError as exc:
            bad.append(str(exc))
    if bad:
        print(f"  {len(bad)} of {len(records)} event files are unreadable or implausible:")
        for message in bad[:20]:
            print(f"    - {message}")
        if len(bad) > 20:
            print(f"    … and {len(bad) - 20} more")
        return 1
    print(f"  contents: all {len(records)} event files read and plausible")
    return 0


def _build(args: argparse.Namespace) -> int:
    import time

    from engine.data import build_data

    config = _config(args).with_overrides(args.overrides).validate()
    started = time.perf_counter()
    bundle = build_data(config)
    print(
        f"{config.data.pair}: {bundle.train_size} train / {bundle.test_size} test recordings, "
        f"{bundle.num_classes} classes, T={bundle.T}, {bundle.event_size}px, "
        f"{len(bundle.static_pool)} static images — ready in {time.perf_counter() - started:.1f}s"
    )
    return 0
