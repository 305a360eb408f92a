"""N-Omniglot events (AEDAT4, via tonic) + Omniglot images, paired by character and drawer.

Layout (``data.root``; the raw N-Omniglot release next to the Omniglot images)::

    <root>/dvs_background/<alphabet>/character<NN>/<XXXX>.aedat4   one DAVIS346 recording (346×260)
    <root>/dvs_background/<alphabet>/character<NN>/<XXXX>.csv      one header line, then one row per
                                                                   drawer: <sample>, <start_ts>, <end_ts>
    <root>/dvs_evaluation/...                                      the same for the evaluation alphabets
    <root>/images_background/<alphabet>/character<NN>/<XXXX>_<DD>.png   Omniglot (or under
    <root>/images_evaluation/...                                         <root>/omniglot-py/, torchvision's)

Where it comes from: N-Omniglot (Li et al., Scientific Data 2022), figshare
https://doi.org/10.6084/m9.figshare.16821427 (``dvs_background``/``dvs_evaluation``); Omniglot
(Lake et al. 2015), https://github.com/brendenlake/omniglot (``images_background.zip``,
``images_evaluation.zip``).

Rules (spec §7.3, fixes of §11 items 13 and 14):
- Classes: background characters then evaluation characters (964 + 659 in the full set), alphabets
  **sorted** and characters in numeric order in *both* modalities, so class ``k`` is the same
  character on both sides (the original listed N-Omniglot alphabets unsorted).
- Sample ``DD`` of a character is the events between row ``DD``'s start and end timestamps (the
  first event at or after each, as the authors' converter), keyed ``<XXXX>_<DD>`` like the Omniglot
  file of the same drawer. Drawers 1–15 train, 16–20 test (N-Omniglot's fixed split;
  ``train_portion`` does not apply); ``traindata_ratio`` keeps the first ``int(15·r)`` drawers.
- Static pool: the Omniglot images of the training drawers (same stems), the first
  ``max(1, int(15·rgbdata_ratio))``. Images are **inverted** (``1 − x`` after the static channel) so
  that strokes are bright on black, as they are in the event frames; the original fed them as stored
  (dark strokes on white), which ``legacy_omniglot_no_invert`` reproduces (spec §11 item 14).
- Frames: the original's representation by default (``data.frame_mode = auto``): "frequency" frames
  (counts ÷ slice duration, each frame and polarity divided by its own max → [0, 1], spec §7.3) over
  the whole 346×260 sensor, cropped to ``[4:254, 54:304]`` (250×250), then torchvision's
  ``Resize((28, 28))`` on tensors = bilinear with ``align_corners=False``, no antialias.
  ``data.frame_mode = counts`` gives raw counts with the same crop and resize. ``T`` is configurable
  (the original hard-coded 12).
- The original applies no random crop to N-Omniglot (its training transform is the resize only):
  set ``data.crop_padding = 0`` for a faithful run (the ``nomniglot`` preset does).
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
from tonic.io import read_aedat4

from engine.config import DataConfig
from engine.data.binfile import Events
from engine.data.catalog import Catalog, EventRecord, StaticRecord, natural_key, pools_by_label
from engine.errors import DatasetError

__all__ = ["LAYOUT", "SENSOR", "nomniglot_catalog"]

LAYOUT = (
    "expected layout:\n"
    "  <root>/dvs_background/<alphabet>/character<NN>/<XXXX>.aedat4 and <XXXX>.csv   (N-Omniglot)\n"
    "  <root>/dvs_evaluation/<alphabet>/character<NN>/...\n"
    "  <root>/images_background/<alphabet>/character<NN>/<XXXX>_<DD>.png             (Omniglot)\n"
    "  <root>/images_evaluation/<alphabet>/character<NN>/...\n"
    "where to get it: N-Omniglot from https://doi.org/10.6084/m9.figshare.16821427, "
    "Omniglot from https://github.com/brendenlake/omniglot (images_background.zip, images_evaluation.zip)"
)
SENSOR = (346, 260)
CROP = (4, 254, 54, 304)
TRAIN_DRAWERS = 15


def read_sample_bounds(csv_path: Path) -> list[tuple[int, int]]:
    """``(start_ts, end_ts)`` of each drawer's sample, in file order."""
    try:
        rows = list(csv.reader(csv_path.read_text().splitlines()))
    except OSError as exc:
        raise DatasetError(f"cannot read {csv_path}: {exc}") from None
    bounds = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            bounds.append((int(float(row[1])), int(float(row[2]))))
        except (IndexError, ValueError):
            raise DatasetError(
                f"{csv_path}:{number}: expected <sample>,<start_ts>,<end_ts>, got {row}"
            ) from None
    return bounds


@functools.lru_cache(maxsize=2)
def _recording(path: Path) -> np.ndarray:
    try:
        raw = read_aedat4(str(path))
    except ImportError:
        raise DatasetError(
            "reading N-Omniglot's AEDAT4 files needs the `aedat` package (tonic.io.read_aedat4 uses it): "
            "pip install aedat"
        ) from None
    except Exception as exc:  # the aedat decoder raises plain RuntimeErrors on damaged files
        raise DatasetError(f"corrupt or unreadable AEDAT4 file {path}: {exc}") from None
    events = np.empty(len(raw), dtype=Events)
    events["t"], events["x"], events["y"] = raw["t"], raw["x"], raw["y"]
    events["p"] = raw["on"]
    return events


def _load_sample(record: EventRecord) -> np.ndarray:
    events = _recording(record.path)
    start, end = read_sample_bounds(record.path.with_suffix(".csv"))[record.part]
    first, last = np.searchsorted(events["t"], [start, end])
    if last <= first:
        raise DatasetError(f"{record.path}: sample {record.part + 1} ({start}–{end} µs) holds no events")
    return events[first:last]


def _sensor_geometry(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    return events["x"].astype(np.int64), events["y"].astype(np.int64), SENSOR


def _characters(base: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for alphabet in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for character in sorted(
            (p for p in alphabet.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        ):
            out[f"{base.name.split('_', 1)[1]}/{alphabet.name}/{character.name}"] = character
    return out


def nomniglot_catalog(root: Path, cfg: DataConfig) -> Catalog:
    name = "N-Omniglot + Omniglot"
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name}: dataset root {root} does not exist\n{LAYOUT}")
    image_root = root / "omniglot-py" if (root / "omniglot-py").is_dir() else root
    event_chars: dict[str, Path] = {}
    image_chars: dict[str, Path] = {}
    for kind in ("background", "evaluation"):
        if (root / f"dvs_{kind}").is_dir():
            event_chars.update(_characters(root / f"dvs_{kind}"))
        if (image_root / f"images_{kind}").is_dir():
            image_chars.update(_characters(image_root / f"images_{kind}"))
    if not event_chars or not image_chars:
        what = (
            "dvs_background/ or dvs_evaluation/"
            if not event_chars
            else "images_background/ or images_evaluation/"
        )
        raise DatasetError(f"{name}: no {what} with characters under {root}\n{LAYOUT}")
    only_events = sorted(set(event_chars) - set(image_chars))
    only_images = sorted(set(image_chars) - set(event_chars))
    if only_events or only_images:
        lines = []
        if only_events:
            lines.append(f"characters with events but no images: {', '.join(only_events[:20])}")
        if only_images:
            lines.append(f"characters with images but no events: {', '.join(only_images[:20])}")
        raise DatasetError(
            f"{name}: the two modalities do not have the same characters:\n  " + "\n  ".join(lines)
        )

    class_names = sorted(event_chars, key=lambda c: (c.split("/")[0] != "background", natural_key(c)))
    train: list[EventRecord] = []
    test: list[EventRecord] = []
    static: list[StaticRecord] = []
    warnings: list[str] = []
    for label, cls in enumerate(class_names):
        directory = event_chars[cls]
        recordings = sorted(directory.glob("*.aedat4"))
        tables = sorted(directory.glob("*.csv"))
        if len(recordings) != 1 or len(tables) != 1 or recordings[0].stem != tables[0].stem:
            raise DatasetError(
                f"{name}: {directory} must hold one <XXXX>.aedat4 and its <XXXX>.csv, found "
                f"{[p.name for p in recordings + tables]}\n{LAYOUT}"
            )
        bounds = read_sample_bounds(tables[0])
        if len(bounds) <= TRAIN_DRAWERS:
            raise DatasetError(
                f"{name}: {tables[0]} lists {len(bounds)} samples; N-Omniglot has 20 per character "
                f"(drawers 1–{TRAIN_DRAWERS} train, the rest test)"
            )
        number = recordings[0].stem
        records = [
            EventRecord(recordings[0], label, f"{number}_{i + 1:02d}", part=i) for i in range(len(bounds))
        ]
        kept = max(1, int(TRAIN_DRAWERS * cfg.traindata_ratio))
        train += records[:kept]
        test += records[TRAIN_DRAWERS:]
        images = {p.stem: p for p in image_chars[cls].iterdir() if p.suffix.lower() == ".png"}
        paired = [images[r.key] for r in records[:TRAIN_DRAWERS] if r.key in images]
        missing = [r.key for r in records if r.key not in images]
        if missing:
            warnings.append(f"{cls}: {len(missing)} sample(s) without a same-stem image (e.g. {missing[0]})")
        paired = paired[: max(1, int(TRAIN_DRAWERS * cfg.rgbdata_ratio))]
        if not paired:
            raise DatasetError(
                f"{name}: no Omniglot image in {image_chars[cls]} matches a training drawer of {cls}"
            )
        static += [StaticRecord(p, label, p.stem) for p in paired]

    return Catalog(
        class_names=class_names,
        train=train,
        test=test,
        static=static,
        static_pools=pools_by_label(static, len(class_names)),
        load_events=_load_sample,
        frame_geometry=_sensor_geometry,
        description=f"{name} at {root}",
        balanced_sampling=False,
        warnings=warnings,
        frame_crop=CROP,
        frame_mode="frequency",
        frame_align_corners=False,
        static_invert=not cfg.legacy_omniglot_no_invert,
    )
