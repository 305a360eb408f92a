"""CEP-DVS events + its RGB images, labelled per file from ``pathFile.csv``.

Layout (``data.root``; the release used by the authors' ``cepdvs.py``)::

    <root>/pathFile.csv            one header line, then one line per recording: data line i (0-based)
                                   describes recording i; the class name is the 5th whitespace-separated
                                   token (the original's regex ``(?:\\S*\\s){4}(\\S+)``), one of the 20
                                   CIFAR-100 superclasses (aquatic_mammals … vehicles_2)
    <root>/data/MAT/img/<i>.mat    events of recording i: MATLAB arrays x, y, ts (µs), p (−1 = OFF, 1 = ON)
    <root>/data/img/<i>.jpg        the RGB image shown for recording i (.png/.jpeg/.bmp also accepted)

``<i>`` may be zero-padded (``01891.mat``); files are matched by the *number*, not the string.
Where it comes from: the CEP-DVS release of the BrainCog team (Brain-Cog-Lab); see the
Transfer-for-DVS README for the download link.

Rules (spec §7.2, fixes of §11 items 8, 11, 12):
- Labels come from ``pathFile.csv`` per file number; files are ordered **numerically** in both
  modalities (the original sorted event files lexicographically, so "10.mat" came before "2.mat").
- Per class, in numeric order: train part = the first ``round(train_portion·n)``; ``traindata_ratio``
  keeps the first ``round(train_portion·n·r)`` of it; test = the next ``n − round(0.8·n)`` recordings
  after the *full* train part (clipped at n), so it does not move when ``traindata_ratio`` changes.
  ``legacy_cepdvs_moving_test_split`` starts it right after the kept train recordings instead.
  (With the published ``train_portion = 0.5`` that is 250 train / 100 test per class of 500; the rest
  is unused, as in the original.)
- Static pool of class c: the images of c's train-part recordings, the first
  ``max(1, int(n_train·rgbdata_ratio))`` (the original ignored ``rgbdata_ratio`` on CEP-DVS; here it
  works as on every pair). ``legacy_cepdvs_position_pairing`` reproduces the original's construction
  and its bug instead (:func:`legacy_position_pools`): positions inside its static training-index
  list are used as indices into all images, so class c draws images of other classes (⌊c/2⌋ with
  class-contiguous blocks and ``train_portion = 0.5``).
- Per-sample sensor size = max + 1 of x and y, without shifting (tonic's ``sensor_size=None``).
- Train sampling is a plain shuffle (``SubsetRandomSampler``), not class-balanced.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from engine.config import DataConfig
from engine.data.binfile import Events
from engine.data.catalog import Catalog, EventRecord, StaticRecord, natural_key, pools_by_label
from engine.errors import DatasetError

__all__ = ["LAYOUT", "cepdvs_catalog", "legacy_position_pools", "read_mat_events", "unshifted_geometry"]

LAYOUT = (
    "expected layout:\n"
    "  <root>/pathFile.csv          header + one line per recording (5th whitespace token = class)\n"
    "  <root>/data/MAT/img/<i>.mat  events of recording i (x, y, ts, p with p in {-1, 1})\n"
    "  <root>/data/img/<i>.jpg      RGB image of recording i\n"
    "where to get it: the CEP-DVS release of the BrainCog team "
    "(see the Brain-Cog-Lab/Transfer-for-DVS README)"
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_LABEL = re.compile(r"(?:\S*\s){4}(\S+)")


def read_labels(csv_path: Path) -> list[str]:
    """Class name of each recording, by data line (0-based, header skipped, blank lines ignored)."""
    try:
        lines = csv_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {csv_path}: {exc}\n{LAYOUT}") from None
    labels = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        match = _LABEL.search(line)
        if match is None:
            raise DatasetError(
                f"{csv_path}:{number}: no class name (5th whitespace-separated token) in {line!r}\n{LAYOUT}"
            )
        labels.append(match.group(1))
    if not labels:
        raise DatasetError(f"{csv_path} lists no recordings\n{LAYOUT}")
    return labels


def read_mat_events(path: Path) -> np.ndarray:
    """Events of one CEP-DVS ``.mat`` file (polarity −1 → 0), in file order."""
    try:
        mat = scipy.io.loadmat(str(path), verify_compressed_data_integrity=True)
    except Exception as exc:  # scipy raises many kinds (MatReadError, IndexError, ...) on damaged files
        raise DatasetError(f"corrupt or unreadable event file {path}: {exc}") from None
    missing = [k for k in ("x", "y", "ts", "p") if k not in mat]
    if missing:
        raise DatasetError(f"event file {path} lacks the arrays {', '.join(missing)} (has {sorted(mat)})")
    columns = {k: np.asarray(mat[k]).reshape(-1).astype(np.int64) for k in ("x", "y", "ts", "p")}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise DatasetError(f"event file {path}: x, y, ts, p must be non-empty and of equal length")
    events = np.empty(len(columns["x"]), dtype=Events)
    events["x"], events["y"], events["t"] = columns["x"], columns["y"], columns["ts"]
    events["p"] = columns["p"] > 0
    return events


def unshifted_geometry(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    return x, y, (int(x.max()) + 1, int(y.max()) + 1)


def _numbered(directory: Path, suffixes: tuple[str, ...]) -> dict[int, Path]:
    files: dict[int, Path] = {}
    for path in sorted(directory.iterdir(), key=lambda p: natural_key(p.name)):
        if path.is_file() and path.suffix.lower() in suffixes:
            if not path.stem.isdigit():
                raise DatasetError(
                    f"{path}: CEP-DVS files must be named by their number (e.g. 123{path.suffix})"
                )
            files[int(path.stem)] = path
    return files


def legacy_position_pools(
    events: dict[int, Path],
    images: dict[int, Path],
    label_names: list[str],
    class_names: list[str],
    portion: float,
) -> tuple[list[StaticRecord], list[np.ndarray]]:
    """The original CEP-DVS static pool, index arithmetic and bug included (spec §4.2, §11 item 8).

    ``get_transfer_RGBCEPDVS_data`` does, step by step:

    1. dataset index ``i`` = the ``i``-th event file in *string* order (its ``targets.pkl`` follows
       ``files.sort()``), so ``targets[i]`` is that recording's class;
    2. training-index list = the first ``round(portion·B)`` indices of each of the K equal blocks of
       ``B = N/K`` dataset indices (it hard-codes K = 20 blocks of 500), in order — the static loader
       is given neither ``traindata_ratio`` nor ``rgbdata_ratio``;
    3. ``CEPDVS_list[c]`` = the *positions* ``p`` in that list whose target is ``c``;
    4. the trainer draws ``images[p]`` from all images sorted numerically — a position used as a
       dataset index.

    Returns the images that positions can reach (numeric order, each with its own class) and, per
    class, the drawable positions.
    """
    index = {c: i for i, c in enumerate(class_names)}
    n, k = len(events), len(class_names)
    if n % k:
        raise DatasetError(
            f"CEP-DVS: legacy_cepdvs_position_pairing reproduces the original's index arithmetic, which "
            f"assumes {k} equal class blocks (20 × 500 in the release); {n} recordings do not divide into "
            f"{k} blocks"
        )
    block = n // k
    dataset_order = sorted(events, key=lambda number: events[number].name)
    train_index = [b * block + j for b in range(k) for j in range(round(portion * block))]
    targets = np.array([index[label_names[dataset_order[i]]] for i in train_index], dtype=np.int64)
    numbered_images = sorted(images)
    if len(numbered_images) < len(train_index):
        raise DatasetError(
            f"CEP-DVS: legacy_cepdvs_position_pairing draws images by position in a training list of "
            f"{len(train_index)}, but there are only {len(numbered_images)} images"
        )
    static = [
        StaticRecord(
            images[number],
            index.get(label_names[number], -1) if number < len(label_names) else -1,
            str(number),
        )
        for number in numbered_images[: len(train_index)]
    ]
    return static, [np.flatnonzero(targets == c) for c in range(k)]


def cepdvs_catalog(root: Path, cfg: DataConfig) -> Catalog:
    name = "CEP-DVS"
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name}: dataset root {root} does not exist\n{LAYOUT}")
    csv_path, event_dir, image_dir = (
        root / "pathFile.csv",
        root / "data" / "MAT" / "img",
        root / "data" / "img",
    )
    missing = [str(p) for p in (csv_path, event_dir, image_dir) if not p.exists()]
    if missing:
        raise DatasetError(f"{name}: missing {', '.join(missing)}\n{LAYOUT}")
    label_names = read_labels(csv_path)
    events = _numbered(event_dir, (".mat",))
    images = _numbered(image_dir, IMAGE_SUFFIXES)
    if not events:
        raise DatasetError(f"{name}: {event_dir} holds no .mat files\n{LAYOUT}")
    beyond = [n for n in events if n >= len(label_names)]
    if beyond:
        raise DatasetError(
            f"{name}: {len(beyond)} event file(s) have no line in {csv_path} "
            f"(e.g. {events[beyond[0]].name}; the csv lists {len(label_names)} recordings)"
        )
    class_names = sorted({label_names[n] for n in events})
    image_classes = {label_names[n] for n in images if n < len(label_names)}
    no_images = sorted(set(class_names) - image_classes)
    if no_images:
        raise DatasetError(
            f"{name}: classes with events but no images in {image_dir}: {', '.join(no_images)}"
        )
    warnings = []
    unpaired = sorted(set(events) - set(images))
    if unpaired:
        warnings.append(f"{len(unpaired)} recording(s) without an image (e.g. {events[unpaired[0]].name})")
    orphans = sorted(set(images) - set(events))
    if orphans:
        warnings.append(
            f"{len(orphans)} image(s) without a recording (e.g. {images[orphans[0]].name}); never drawn"
        )

    train: list[EventRecord] = []
    test: list[EventRecord] = []
    train_parts: list[list[int]] = []
    for label, cls in enumerate(class_names):
        numbers = [n for n in events if label_names[n] == cls]  # already in numeric order
        n = len(numbers)
        n_train = round(cfg.train_portion * n)
        n_kept = max(1, round(cfg.train_portion * n * cfg.traindata_ratio))
        start = n_kept if cfg.legacy_cepdvs_moving_test_split else n_train
        test_numbers = numbers[start : min(n, start + n - round(0.8 * n))]
        if n_train < 1 or not test_numbers:
            raise DatasetError(
                f"{name}: class {cls!r} has {n} recordings; train_portion={cfg.train_portion} leaves "
                f"{n_train} for training and {len(test_numbers)} for testing (both must be ≥ 1)"
            )
        train += [EventRecord(events[k], label, str(k)) for k in numbers[:n_kept]]
        test += [EventRecord(events[k], label, str(k)) for k in test_numbers]
        train_parts.append(numbers[:n_train])

    static: list[StaticRecord] = []
    if cfg.legacy_cepdvs_position_pairing:
        static, pools = legacy_position_pools(events, images, label_names, class_names, cfg.train_portion)
        if cfg.rgbdata_ratio != 1.0:
            warnings.append(
                f"rgbdata_ratio = {cfg.rgbdata_ratio} is ignored with legacy_cepdvs_position_pairing "
                "(the original's CEP-DVS static pool never used it)"
            )
    else:
        for label, part in enumerate(train_parts):
            paired = [k for k in part if k in images][: max(1, int(len(part) * cfg.rgbdata_ratio))]
            static += [StaticRecord(images[k], label, str(k)) for k in paired]
        pools = pools_by_label(static, len(class_names))
    empty = [class_names[c] for c, pool in enumerate(pools) if len(pool) == 0]
    if empty:
        raise DatasetError(f"{name}: no drawable training image for classes {', '.join(empty)}")

    return Catalog(
        class_names=class_names,
        train=train,
        test=test,
        static=static,
        static_pools=pools,
        load_events=lambda record: read_mat_events(record.path),
        frame_geometry=unshifted_geometry,
        description=f"{name} at {root}",
        balanced_sampling=False,
        warnings=warnings,
    )
