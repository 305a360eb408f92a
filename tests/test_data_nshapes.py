"""The built-in nshapes pair: real N-Caltech101 files, deterministic, and the ``spikesweep data`` command."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from tonic.io import events_struct, read_mnist_file

from engine.data.binfile import MAX_TIMESTAMP_US
from engine.data.nshapes import class_names, generate_nshapes
from engine.data.saccade import SaccadeConfig, simulate_saccades
from orchestrator import cli


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_generated_files_are_real_ncaltech101_files(tmp_path) -> None:
    summary = generate_nshapes(tmp_path, classes=3, per_class=4, seed=1)
    assert summary.class_names == ["disk", "square", "triangle"]
    for cls in summary.class_names:
        bins = sorted((tmp_path / "Caltech101" / cls).glob("*.bin"))
        jpgs = sorted((tmp_path / "101_ObjectCategories" / cls).glob("*.jpg"))
        assert [p.stem for p in bins] == [p.stem for p in jpgs] == [f"image_{i:04d}" for i in range(1, 5)]
        for path in bins:
            raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
            events = read_mnist_file(str(path), dtype=events_struct)  # tonic's own N-Caltech101 reader
            assert len(events) == len(raw) > 1000  # no overflow markers: every record is an event
            np.testing.assert_array_equal(events["x"], raw[:, 0])
            np.testing.assert_array_equal(events["y"], raw[:, 1])
            np.testing.assert_array_equal(
                events["t"], ((raw[:, 2] & 127) << 16) | (raw[:, 3] << 8) | raw[:, 4]
            )
            assert np.all(np.diff(events["t"]) >= 0) and events["t"].max() < MAX_TIMESTAMP_US
            assert events["p"].any() and (~events["p"]).any()
        with Image.open(jpgs[0]) as image:
            assert image.size == (64, 64) and image.mode == "RGB"


def test_writer_and_reader_agree_event_for_event(tmp_path) -> None:
    rng = [np.random.default_rng(0)]
    image = np.zeros((1, 32, 32))
    image[0, 8:24, 8:24] = 1.0
    (events,) = simulate_saccades(image, rng, SaccadeConfig(background_rate_hz=(1.0, 1.0)))
    from engine.data.binfile import write_bin_events

    write_bin_events(tmp_path / "a.bin", events[:, 0], events[:, 1], events[:, 2], events[:, 3])
    back = read_mnist_file(str(tmp_path / "a.bin"), dtype=events_struct)
    np.testing.assert_array_equal(np.stack([back["x"], back["y"], back["t"], back["p"]], 1), events)
    # a bright square on black moved along a triangle: both polarities, all inside the image
    assert 0 < events[:, 3].mean() < 1 and events[:, 0].max() < 32 and events[:, 2].max() <= 300_000


def test_generation_is_deterministic_and_stable_under_growth(tmp_path) -> None:
    generate_nshapes(tmp_path / "a", classes=2, per_class=3, seed=4)
    generate_nshapes(tmp_path / "b", classes=2, per_class=3, seed=4)
    generate_nshapes(tmp_path / "c", classes=3, per_class=5, seed=4)
    generate_nshapes(tmp_path / "d", classes=2, per_class=3, seed=5)
    a, b, c, d = (_digest(tmp_path / x) for x in "abcd")
    assert a == b
    assert all(c[k] == v for k, v in a.items())  # image i of class k depends on (seed, k, i) only
    assert a != d


def test_class_names_beyond_ten_combine_shape_and_fill() -> None:
    names = class_names(12)
    assert names[:2] == ["disk", "square"] and names[10:] == ["disk_striped", "square_striped"]
    with pytest.raises(ValueError, match="2 to 40"):
        class_names(41)


def test_cli_writes_the_dataset_and_checks_it(tmp_path, capsys, monkeypatch) -> None:
    # the real dispatcher, with only this subcommand loaded (independent of the other commands' state)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("orchestrator.commands.data",))
    main = cli.main
    out = tmp_path / "ns"
    assert (
        main(["data", "nshapes", "--out", str(out), "--classes", "2", "--per-class", "6", "--seed", "3"]) == 0
    )
    assert "wrote 2 classes × 6" in capsys.readouterr().out
    assert len(list((out / "Caltech101" / "square").glob("*.bin"))) == 6
    assert main(["data", "check", "--pair", "ncaltech101", "--root", str(out)]) == 0
    assert "train recordings: 10   test recordings: 2" in capsys.readouterr().out
    # refusing to overwrite, and a missing dataset, are user errors (exit 2 with a message)
    assert main(["data", "nshapes", "--out", str(out)]) == 2
    assert main(["data", "check", "--pair", "cepdvs", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "pathFile.csv" in err and str(tmp_path / "none") in err
