"""N-Caltech101 events + Caltech101 images, paired by class name and file stem.

Layout (``data.root``)::

    <root>/Caltech101/<class>/image_0001.bin             N-Caltech101 events (tonic's NCALTECH101
                                                         download; also <root>/NCALTECH101/Caltech101/)
    <root>/101_ObjectCategories/<class>/image_0001.jpg   Caltech101 images (also torchvision's
                                                         <root>/caltech101/101_ObjectCategories/)

Where it comes from: N-Caltech101 (Orchard et al. 2015, https://www.garrickorchard.com/datasets/n-caltech101,
the ``Caltech101.zip`` that tonic's ``NCALTECH101`` downloads); Caltech101 (Fei-Fei et al. 2004,
``101_ObjectCategories.tar.gz`` from https://data.caltech.edu/records/mzrjq-6wc02).

Rules (spec §7.1, §11 items 5, 10, 19, 20):
- Classes are the event class directories in sorted order (``BACKGROUND_Google`` = 0, ``Faces_easy`` = 1,
  ``Leopards``, ``Motorbikes``, ``accordion``, ...). The static release also has ``Faces`` (the
  non-easy crop of the same photos), which N-Caltech101 does not: it is ignored, by name. Any other
  class present in one modality only is an error that lists them.
- Within a class, files are sorted by name (numbers compared numerically). The first
  ``round(train_portion·n)`` event stems are the train part, the rest the test part; both
  modalities use these stems, so no static counterpart of a test recording can be drawn.
  ``traindata_ratio`` keeps the first ``int(n_train·r)`` train recordings; the test part never moves.
- Static pool of a class: the static images whose stem is in the event train part (all of it:
  ``traindata_ratio`` does not shrink the pool), the first ``max(1, int(n_train·rgbdata_ratio))``.
  ``legacy_static_pool_off_by_one`` reproduces the original instead: the first
  ``int(n_train·rgbdata_ratio) + 1`` static images of the class in name order, whatever their stems.
- Per-sample sensor size: x and y shifted to start at 0, size = max + 1 (tonic's ``sensor_size=None``).
- Train sampling is class-balanced with replacement (``WeightedRandomSampler``), as the original;
  ``legacy_sampler_class_size_weights`` also reproduces its weights, 1/(recordings of the class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.config import DataConfig
from engine.data.binfile import read_bin_events
from engine.data.catalog import Catalog, EventRecord, StaticRecord, natural_key, pools_by_label, split_counts
from engine.errors import DatasetError

__all__ = ["LAYOUT", "ncaltech101_catalog", "shifted_geometry"]

LAYOUT = (
    "expected layout:\n"
    "  <root>/Caltech101/<class>/image_XXXX.bin            N-Caltech101 events\n"
    "      (or <root>/NCALTECH101/Caltech101/, tonic's download)\n"
    "  <root>/101_ObjectCategories/<class>/image_XXXX.jpg  Caltech101 images\n"
    "      (or <root>/caltech101/101_ObjectCategories/, torchvision's download)\n"
    "where to get it: N-Caltech101 from https://www.garrickorchard.com/datasets/n-caltech101 "
    "(Caltech101.zip), "
    "Caltech101 from https://data.caltech.edu/records/mzrjq-6wc02 (101_ObjectCategories.tar.gz); "
    "or run `spikesweep data nshapes --out DIR` for the built-in dataset in this layout"
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: Static-only classes that N-Caltech101 leaves out on purpose (it converted ``Faces_easy`` only).
KNOWN_STATIC_ONLY = {"Faces"}


def _first_dir(root: Path, candidates: list[str]) -> Path | None:
    for candidate in candidates:
        if (root / candidate).is_dir():
            return root / candidate
    return None


def _class_dirs(path: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    return sorted(files, key=lambda p: natural_key(p.name))


def shifted_geometry(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """x/y shifted to start at 0; per-sample sensor size = max + 1 (the original NCALTECH101)."""
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    x -= x.min()
    y -= y.min()
    return x, y, (int(x.max()) + 1, int(y.max()) + 1)


def ncaltech101_catalog(root: Path, cfg: DataConfig, name: str = "N-Caltech101 + Caltech101") -> Catalog:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name}: dataset root {root} does not exist\n{LAYOUT}")
    event_dir = _first_dir(root, ["Caltech101", "NCALTECH101/Caltech101"])
    static_dir = _first_dir(root, ["101_ObjectCategories", "caltech101/101_ObjectCategories"])
    missing = [
        what
        for what, found in (
            ("Caltech101/ (events)", event_dir),
            ("101_ObjectCategories/ (images)", static_dir),
        )
        if found is None
    ]
    if missing:
        raise DatasetError(f"{name}: {root} has no {' and no '.join(missing)}\n{LAYOUT}")
    assert event_dir is not None and static_dir is not None
    event_classes = _class_dirs(event_dir)
    static_classes = _class_dirs(static_dir)
    if not event_classes:
        raise DatasetError(f"{name}: {event_dir} has no class directories\n{LAYOUT}")
    only_events = sorted(set(event_classes) - set(static_classes))
    only_static = sorted(set(static_classes) - set(event_classes) - KNOWN_STATIC_ONLY)
    if only_events or only_static:
        lines = []
        if only_events:
            lines.append(f"classes with events but no images in {static_dir}: {', '.join(only_events)}")
        if only_static:
            lines.append(f"classes with images but no events in {event_dir}: {', '.join(only_static)}")
        raise DatasetError(
            f"{name}: the two modalities do not have the same classes:\n  " + "\n  ".join(lines)
        )

    class_names = sorted(event_classes)
    train: list[EventRecord] = []
    test: list[EventRecord] = []
    static: list[StaticRecord] = []
    warnings: list[str] = []
    class_sizes: list[int] = []
    for label, cls in enumerate(class_names):
        events = _files(event_classes[cls], (".bin",))
        class_sizes.append(len(events))
        images = _files(static_classes[cls], IMAGE_SUFFIXES)
        if not events:
            raise DatasetError(
                f"{name}: class directory {event_classes[cls]} holds no .bin event files\n{LAYOUT}"
            )
        if not images:
            raise DatasetError(f"{name}: class directory {static_classes[cls]} holds no images\n{LAYOUT}")
        image_by_stem = {p.stem: p for p in images}
        n_train, n_kept = split_counts(len(events), cfg.train_portion, cfg.traindata_ratio)
        if n_train < 1 or n_train >= len(events):
            raise DatasetError(
                f"{name}: class {cls!r} has {len(events)} recordings; train_portion={cfg.train_portion} "
                f"leaves {n_train} for training and {len(events) - n_train} for testing (both must be ≥ 1)"
            )
        train_part = events[:n_train]
        train += [EventRecord(p, label, p.stem) for p in train_part[: max(n_kept, 1)]]
        test += [EventRecord(p, label, p.stem) for p in events[n_train:]]

        unpaired = [p.stem for p in events if p.stem not in image_by_stem]
        if unpaired:
            warnings.append(
                f"class {cls!r}: {len(unpaired)} recording(s) without a same-stem image "
                f"(e.g. {', '.join(unpaired[:3])}); they train normally but add no static image"
            )
        event_stems = {p.stem for p in events}
        orphans = [p.stem for p in images if p.stem not in event_stems]
        if orphans:
            warnings.append(
                f"class {cls!r}: {len(orphans)} image(s) without a same-stem recording "
                f"(e.g. {', '.join(orphans[:3])}); they are not in any split and never drawn"
            )
        pool_size = int(n_train * cfg.rgbdata_ratio)
        if cfg.legacy_static_pool_off_by_one:
            chosen = images[: pool_size + 1]
        else:
            chosen = [image_by_stem[p.stem] for p in train_part if p.stem in image_by_stem][
                : max(pool_size, 1)
            ]
        if not chosen:
            raise DatasetError(
                f"{name}: class {cls!r} has no image whose stem matches a training recording "
                f"(train stems {train_part[0].stem} … {train_part[-1].stem}; images in {static_classes[cls]})"
            )
        static += [StaticRecord(p, label, p.stem) for p in chosen]

    return Catalog(
        class_names=class_names,
        train=train,
        test=test,
        static=static,
        static_pools=pools_by_label(static, len(class_names)),
        load_events=lambda record: read_bin_events(record.path),
        frame_geometry=shifted_geometry,
        description=f"{name} at {root}",
        balanced_sampling=True,
        warnings=warnings,
        class_sizes=class_sizes,
    )
