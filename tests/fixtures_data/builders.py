"""Tiny dataset trees in the real on-disk formats of the three supported pairs, written in milliseconds.

Each builder writes random events and small images in exactly the layout the real release uses, so
the readers under test run unchanged on them. Images encode their class in their mean colour and
their stem in a pixel, so tests can check what was drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from engine.data.aedat4 import write_aedat4_events
from engine.data.binfile import write_bin_events


def random_events(rng: np.random.Generator, n: int, width: int, height: int, duration_us: int = 300_000):
    t = np.sort(rng.integers(0, duration_us, n))
    return rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)


def write_image(path: Path, value: int, size: tuple[int, int] = (20, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(array).save(path)


def make_ncaltech101(
    root: Path,
    counts: dict[str, int],
    seed: int = 0,
    static_extra_classes: tuple[str, ...] = ("Faces",),
    drop_static: tuple[str, ...] = (),
) -> Path:
    """``root/Caltech101/<class>/image_XXXX.bin`` + ``root/101_ObjectCategories/<class>/image_XXXX.jpg``."""
    rng = np.random.default_rng(seed)
    for label, (cls, n) in enumerate(sorted(counts.items())):
        (root / "Caltech101" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            x, y, t, p = random_events(rng, int(rng.integers(50, 200)), 40, 30)
            write_bin_events(root / "Caltech101" / cls / f"image_{i:04d}.bin", x + 5, y + 3, t, p)
            if cls not in drop_static:
                write_image(root / "101_ObjectCategories" / cls / f"image_{i:04d}.jpg", 20 * label + 10)
    for cls in static_extra_classes:
        for i in range(1, 4):
            write_image(root / "101_ObjectCategories" / cls / f"image_{i:04d}.jpg", 250)
    return root


CEPDVS_CLASSES = ("aquatic_mammals", "fish", "flowers")


def make_cepdvs(root: Path, labels: list[str], seed: int = 0, pad: int = 0) -> Path:
    """``pathFile.csv`` + ``data/MAT/img/<i>.mat`` + ``data/img/<i>.jpg`` for recordings 0..len-1."""
    rng = np.random.default_rng(seed)
    (root / "data" / "MAT" / "img").mkdir(parents=True, exist_ok=True)
    (root / "data" / "img").mkdir(parents=True, exist_ok=True)
    lines = ["index path1 path2 path3 label"]
    for i, label in enumerate(labels):
        lines.append(f"{i} a/{i}.png b/{i} c {label}")
        x, y, t, p = random_events(rng, int(rng.integers(50, 200)), 60, 45)
        scipy.io.savemat(
            root / "data" / "MAT" / "img" / f"{i:0{pad}d}.mat",
            {
                "x": x.reshape(-1, 1),
                "y": y.reshape(-1, 1),
                "ts": t.reshape(-1, 1),
                "p": (2 * p - 1).reshape(-1, 1),
            },
        )
        write_image(root / "data" / "img" / f"{i:0{pad}d}.jpg", 30 * sorted(set(labels)).index(label) + 10)
    (root / "pathFile.csv").write_text("\n".join(lines) + "\n")
    return root


def make_nomniglot(
    root: Path,
    characters: dict[str, dict[str, int]],
    seed: int = 0,
    events_per_sample: tuple[int, int] = (40, 80),
    region: tuple[int, int, int, int] = (0, 0, 346, 260),
) -> Path:
    """``dvs_<set>/<alphabet>/characterNN/<XXXX>.aedat4 + .csv`` and ``images_<set>/.../<XXXX>_<DD>.png``.

    ``characters`` maps ``"background"``/``"evaluation"`` to ``{alphabet: number of characters}``.
    Each sample has a random number of events in ``events_per_sample``, spread uniformly over the
    ``region = (x0, y0, width, height)`` of the 346×260 sensor (a small region stacks events per pixel).
    """
    x0, y0, region_width, region_height = region
    rng = np.random.default_rng(seed)
    number = 0
    for kind, alphabets in characters.items():
        for alphabet, n_chars in alphabets.items():
            for c in range(1, n_chars + 1):
                number += 1
                stem = f"{number:04d}"
                event_dir = root / f"dvs_{kind}" / alphabet / f"character{c:02d}"
                image_dir = root / f"images_{kind}" / alphabet / f"character{c:02d}"
                event_dir.mkdir(parents=True, exist_ok=True)
                chunks, rows, clock = [], ["sample,start,end"], 1_000
                for drawer in range(1, 21):
                    x, y, t, p = random_events(
                        rng, int(rng.integers(*events_per_sample)), region_width, region_height, 50_000
                    )
                    x, y, t = x + x0, y + y0, t + clock
                    chunks.append(np.stack([t, x, y, p], 1))
                    rows.append(f"{drawer},{t[0]},{t[-1] + 1}")
                    clock = int(t[-1]) + 10_000
                    write_image(image_dir / f"{stem}_{drawer:02d}.png", (number * 7) % 250, (24, 24))
                events = np.concatenate(chunks)
                write_aedat4_events(
                    event_dir / f"{stem}.aedat4", events[:, 0], events[:, 1], events[:, 2], events[:, 3]
                )
                (event_dir / f"{stem}.csv").write_text("\n".join(rows) + "\n")
    return root
