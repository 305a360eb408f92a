"""Readers on tiny trees in the real layouts: splits, class pairing without test leakage, legacy switches,
and the errors a user sees for a missing or broken dataset."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from fixtures_data.builders import CEPDVS_CLASSES, make_cepdvs, make_ncaltech101, make_nomniglot

from engine.config import RunConfig
from engine.data import PAIRS, build_data, load_catalog
from engine.data.cache import ArrayCache
from engine.data.loaders import BalancedSampler
from engine.data.pipeline import build_static_pool
from engine.errors import DatasetError


def _config(pair: str, root, cache, **data) -> RunConfig:
    overrides = {"data.pair": pair, "data.root": str(root), "data.cache_root": str(cache)}
    overrides.update({f"data.{k}": v for k, v in data.items()})
    return RunConfig().with_overrides(overrides)


def _assert_pairing_never_leaks(catalog, pool, draws: int = 4000) -> None:
    """Every drawn static image has the event label and the stem of a *training* recording."""
    train_part = {(r.label, r.key) for r in catalog.static}
    test_keys = {(r.label, r.key) for r in catalog.test}
    labels = torch.randint(0, catalog.num_classes, (draws,), generator=torch.Generator().manual_seed(0))
    index = pool.sample_indices(labels, torch.Generator().manual_seed(1))
    assert torch.equal(pool.labels[index], labels)  # same class as the event sample
    drawn = {(int(label), pool.keys[i]) for label, i in zip(labels.tolist(), index.tolist(), strict=True)}
    assert drawn and not drawn & test_keys  # never the counterpart of a test recording
    assert drawn <= train_part
    for c in range(catalog.num_classes):  # uniform over the whole class pool, not one fixed image
        drawn_c = {i for label, i in zip(labels.tolist(), index.tolist(), strict=True) if label == c}
        assert len(drawn_c) == len(catalog.static_pools[c])


# ----------------------------------------------------------------------------------------------------
# N-Caltech101


COUNTS = {"BACKGROUND_Google": 12, "Faces_easy": 10, "accordion": 7, "ant": 21}


def test_ncaltech101_split_and_pairing(tmp_path) -> None:
    root = make_ncaltech101(tmp_path / "nc", COUNTS)
    catalog = load_catalog(_config("ncaltech101", root, tmp_path / "cache"))
    assert catalog.class_names == ["BACKGROUND_Google", "Faces_easy", "accordion", "ant"]  # Faces ignored
    # round(0.9·n) with Python rounding: 12→11, 10→9, 7→6, 21→19 (18.9)
    per_class = np.bincount([r.label for r in catalog.train]).tolist()
    assert per_class == [11, 9, 6, 19]
    assert np.bincount([r.label for r in catalog.test]).tolist() == [1, 1, 1, 2]
    assert [r.key for r in catalog.test if r.label == 3] == ["image_0020", "image_0021"]
    pool = build_static_pool(catalog, "ncaltech101", 16, "v", ArrayCache(tmp_path / "cache"))
    assert pool.images.shape == (45, 16, 16) and pool.images.dtype == torch.float32
    _assert_pairing_never_leaks(catalog, pool)
    # the V channel of the uniform fixture images encodes the class: 20·label + 10
    values = (pool.images.mean(dim=(1, 2)) * 255).round()
    assert torch.allclose(values, (20 * pool.labels + 10).float(), atol=2)


def test_traindata_ratio_shrinks_events_but_not_the_static_pool(tmp_path) -> None:
    root = make_ncaltech101(tmp_path / "nc", COUNTS)
    full = load_catalog(_config("ncaltech101", root, tmp_path / "c"))
    half = load_catalog(_config("ncaltech101", root, tmp_path / "c", traindata_ratio=0.5))
    assert np.bincount([r.label for r in half.train]).tolist() == [5, 4, 3, 9]  # int(n_train·0.5)
    assert [r.key for r in half.test] == [r.key for r in full.test]  # the test split never moves
    assert [r.key for r in half.static] == [r.key for r in full.static]
    rgb = load_catalog(_config("ncaltech101", root, tmp_path / "c", rgbdata_ratio=0.5))
    assert [len(p) for p in rgb.static_pools] == [5, 4, 3, 9]


def test_legacy_sampler_weights_are_the_original_1_over_class_size(tmp_path) -> None:
    root = make_ncaltech101(tmp_path / "nc", COUNTS)
    config = _config("ncaltech101", root, tmp_path / "c", traindata_ratio=0.5)
    catalog = load_catalog(config)
    assert catalog.class_sizes == [12, 10, 7, 21]
    labels = np.array([r.label for r in catalog.train])  # kept: 5, 4, 3, 9
    legacy = BalancedSampler(labels, 0, catalog.class_sizes)
    balanced = BalancedSampler(labels, 0)
    share = [float(legacy.weights[labels == c].sum() / legacy.weights.sum()) for c in range(4)]
    # the original: class c drawn ∝ kept_c / size_c = 5/12, 4/10, 3/7, 9/21 — not equal
    expected = np.array([5 / 12, 4 / 10, 3 / 7, 9 / 21])
    np.testing.assert_allclose(share, expected / expected.sum())
    share = [float(balanced.weights[labels == c].sum() / balanced.weights.sum()) for c in range(4)]
    np.testing.assert_allclose(share, [0.25] * 4)  # ours: exactly balanced
    # build_data picks the weights by the switch
    for switch, sampler in ((True, legacy), (False, balanced)):
        bundle = build_data(
            config.with_overrides({"data.legacy_sampler_class_size_weights": switch, "batch_size": 4})
        )
        torch.testing.assert_close(bundle._samplers[0].weights, sampler.weights)


def test_legacy_static_pool_off_by_one_reaches_the_first_test_image(tmp_path) -> None:
    root = make_ncaltech101(tmp_path / "nc", COUNTS)
    catalog = load_catalog(_config("ncaltech101", root, tmp_path / "c", legacy_static_pool_off_by_one=True))
    assert [len(p) for p in catalog.static_pools] == [12, 10, 7, 20]
    test_keys = {(r.label, r.key) for r in catalog.test}
    static_keys = {(r.label, r.key) for r in catalog.static}
    assert static_keys & test_keys == {
        (0, "image_0012"),
        (1, "image_0010"),
        (2, "image_0007"),
        (3, "image_0020"),
    }


def test_ncaltech101_class_mismatch_lists_the_classes(tmp_path) -> None:
    root = make_ncaltech101(
        tmp_path / "nc", COUNTS, drop_static=("ant", "accordion"), static_extra_classes=("Faces", "zebra")
    )
    with pytest.raises(DatasetError) as info:
        load_catalog(_config("ncaltech101", root, tmp_path / "c"))
    message = str(info.value)
    assert "accordion, ant" in message and "zebra" in message and "Faces," not in message


def test_missing_root_and_wrong_layout_explain_the_expected_layout(tmp_path) -> None:
    with pytest.raises(DatasetError) as info:
        load_catalog(_config("ncaltech101", tmp_path / "nowhere", tmp_path / "c"))
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "Caltech101/<class>/image_XXXX.bin" in str(info.value) and "garrickorchard" in str(info.value)
    (tmp_path / "wrong" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="has no Caltech101/ .*and no 101_ObjectCategories/"):
        load_catalog(_config("ncaltech101", tmp_path / "wrong", tmp_path / "c"))
    with pytest.raises(DatasetError, match="data.root is not set"):
        load_catalog(RunConfig().with_overrides({"data.pair": "ncaltech101"}))


def test_unpaired_files_are_reported_not_silently_skipped(tmp_path) -> None:
    root = make_ncaltech101(tmp_path / "nc", COUNTS)
    (root / "101_ObjectCategories" / "ant" / "image_0003.jpg").unlink()
    catalog = load_catalog(_config("ncaltech101", root, tmp_path / "c"))
    assert any("'ant': 1 recording(s) without a same-stem image" in w for w in catalog.warnings)
    assert "image_0003" not in [r.key for r in catalog.static if r.label == 3]


# ----------------------------------------------------------------------------------------------------
# CEP-DVS


def _cepdvs_labels(per_class: int = 10) -> list[str]:
    # interleaved, so position-based blocks would be wrong: labels come from the csv per file
    return [CEPDVS_CLASSES[i % 3] for i in range(3 * per_class)]


def test_cepdvs_labels_by_file_numeric_order_and_fixed_test_split(tmp_path) -> None:
    labels = _cepdvs_labels()
    root = make_cepdvs(tmp_path / "cep", labels)
    catalog = load_catalog(_config("cepdvs", root, tmp_path / "c", train_portion=0.5))
    assert catalog.class_names == list(CEPDVS_CLASSES)
    for record in catalog.train + catalog.test:
        assert labels[int(record.key)] == catalog.class_names[record.label]
    fish = [int(r.key) for r in catalog.train if r.label == 1]
    assert fish == [1, 4, 7, 10, 13]  # numeric order: 10 after 7, not after 1
    fish_test = [int(r.key) for r in catalog.test if r.label == 1]
    assert fish_test == [16, 19]  # the n − round(0.8·n) = 2 after the train part
    shrunk = load_catalog(_config("cepdvs", root, tmp_path / "c", train_portion=0.5, traindata_ratio=0.4))
    assert [int(r.key) for r in shrunk.train if r.label == 1] == [1, 4]
    assert [r.key for r in shrunk.test] == [r.key for r in catalog.test]  # fixed (§11 item 11)
    moving = load_catalog(
        _config(
            "cepdvs",
            root,
            tmp_path / "c",
            train_portion=0.5,
            traindata_ratio=0.4,
            legacy_cepdvs_moving_test_split=True,
        )
    )
    assert [int(r.key) for r in moving.test if r.label == 1] == [7, 10]


def test_cepdvs_pairing_and_legacy_position_pairing(tmp_path) -> None:
    root = make_cepdvs(tmp_path / "cep", _cepdvs_labels(), pad=5)  # zero-padded names 00001.mat
    catalog = load_catalog(_config("cepdvs", root, tmp_path / "c", train_portion=0.5))
    pool = build_static_pool(catalog, "cepdvs", 12, "blue", ArrayCache(tmp_path / "c"))
    _assert_pairing_never_leaks(catalog, pool)
    legacy = load_catalog(
        _config("cepdvs", root, tmp_path / "c", train_portion=0.5, legacy_cepdvs_position_pairing=True)
    )
    # the original's static training list: the first round(0.5·10) = 5 indices of each block of 30/3 = 10,
    # [0..4] ∪ [10..14] ∪ [20..24]; with labels i mod 3, class 1 sits at positions 1, 4, 5, 8, 12 of it,
    # which are then used as image numbers: images 1, 4, 5, 8, 12 (classes 1, 1, 2, 2, 0)
    assert legacy.static_pools[1].tolist() == [1, 4, 5, 8, 12]
    drawn_labels = [legacy.static[i].label for i in legacy.static_pools[1]]
    assert drawn_labels == [1, 1, 2, 2, 0]


FOUR_CLASSES = ("aquatic_mammals", "fish", "flowers", "food_containers")


def test_legacy_cepdvs_pairing_gives_event_class_c_the_images_of_class_c_over_2(tmp_path) -> None:
    """Spec §11 item 8: class-contiguous blocks and train_portion 0.5 pair event class c with static ⌊c/2⌋."""
    labels = [name for name in FOUR_CLASSES for _ in range(10)]  # recordings 10c … 10c+9 are class c
    root = make_cepdvs(tmp_path / "cep", labels, pad=5)
    legacy = _config("cepdvs", root, tmp_path / "c", train_portion=0.5, legacy_cepdvs_position_pairing=True)
    catalog = load_catalog(legacy)
    # positions 5c … 5c+4 of the list [0..4] ∪ [10..14] ∪ [20..24] ∪ [30..34], used as image numbers
    assert [pool.tolist() for pool in catalog.static_pools] == [
        list(range(5 * c, 5 * c + 5)) for c in range(4)
    ]
    pool = build_static_pool(catalog, "cepdvs", 8, "v", ArrayCache(tmp_path / "c"))
    event_labels = torch.arange(4).repeat(500)
    drawn = pool.sample_indices(event_labels, torch.Generator().manual_seed(3))
    assert torch.equal(pool.labels[drawn], event_labels // 2)
    # and the pixels say so too: the fixture paints class k's images with V = 30·k + 10
    values = (pool.images[drawn].mean(dim=(1, 2)) * 255).round()
    assert torch.allclose(values, (30 * (event_labels // 2) + 10).float(), atol=2)
    # the original's static loader got neither ratio: traindata_ratio leaves the pool alone, rgbdata_ratio
    # is ignored with a warning
    shrunk = load_catalog(legacy.with_overrides({"data.traindata_ratio": 0.4, "data.rgbdata_ratio": 0.5}))
    assert [p.tolist() for p in shrunk.static_pools] == [p.tolist() for p in catalog.static_pools]
    assert any("rgbdata_ratio = 0.5 is ignored" in w for w in shrunk.warnings)
    # the fixed pairing on the same data: every class draws its own train-part images
    fixed = load_catalog(legacy.with_overrides({"data.legacy_cepdvs_position_pairing": False}))
    assert [[int(fixed.static[i].key) for i in p] for p in fixed.static_pools] == [
        list(range(10 * c, 10 * c + 5)) for c in range(4)
    ]


def test_legacy_cepdvs_pairing_follows_the_original_string_order_of_event_files(tmp_path) -> None:
    """Its targets.pkl lists recordings in ``files.sort()`` order: 0, 1, 10, 11, 2, … when not zero-padded."""
    labels = [name for name in CEPDVS_CLASSES for _ in range(4)]  # numbers 4c … 4c+3 are class c
    root = make_cepdvs(tmp_path / "cep", labels)  # 0.mat … 11.mat
    catalog = load_catalog(
        _config("cepdvs", root, tmp_path / "c", train_portion=0.75, legacy_cepdvs_position_pairing=True)
    )
    # string order 0,1,10,11,2,3,4,5,6,7,8,9 → classes 0,0,2,2,0,0,1,1,1,1,2,2; blocks of 4, first 3 of
    # each: dataset indices 0,1,2 | 4,5,6 | 8,9,10 → classes 0,0,2 | 0,0,1 | 1,1,2
    assert [p.tolist() for p in catalog.static_pools] == [[0, 1, 3, 4], [5, 6, 7], [2, 8]]


def test_legacy_cepdvs_pairing_needs_equal_class_blocks(tmp_path) -> None:
    root = make_cepdvs(tmp_path / "cep", [CEPDVS_CLASSES[i % 3] for i in range(31)])
    config = _config("cepdvs", root, tmp_path / "c", train_portion=0.5, legacy_cepdvs_position_pairing=True)
    with pytest.raises(DatasetError, match="31 recordings do not divide into 3 blocks"):
        load_catalog(config)


def test_cepdvs_errors_name_the_file(tmp_path) -> None:
    root = make_cepdvs(tmp_path / "cep", _cepdvs_labels())
    (root / "data" / "MAT" / "img" / "4.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage")
    catalog = load_catalog(_config("cepdvs", root, tmp_path / "c", train_portion=0.5))
    with pytest.raises(DatasetError, match="4.mat"):
        [catalog.load_events(r) for r in catalog.train]
    scipy.io.savemat(root / "data" / "MAT" / "img" / "4.mat", {"x": np.arange(3)})
    with pytest.raises(DatasetError, match="4.mat lacks the arrays y, ts, p"):
        [catalog.load_events(r) for r in catalog.train]
    (root / "pathFile.csv").unlink()
    with pytest.raises(DatasetError, match="pathFile.csv"):
        load_catalog(_config("cepdvs", root, tmp_path / "c"))


# ----------------------------------------------------------------------------------------------------
# N-Omniglot


CHARACTERS = {"evaluation": {"Angelic": 1}, "background": {"Greek": 2, "Braille": 1}}


def test_nomniglot_sorted_alphabets_and_drawer_split(tmp_path) -> None:
    root = make_nomniglot(tmp_path / "no", CHARACTERS)
    catalog = load_catalog(_config("nomniglot", root, tmp_path / "c"))
    assert catalog.class_names == [
        "background/Braille/character01",
        "background/Greek/character01",
        "background/Greek/character02",
        "evaluation/Angelic/character01",
    ]
    assert np.bincount([r.label for r in catalog.train]).tolist() == [15] * 4
    assert np.bincount([r.label for r in catalog.test]).tolist() == [5] * 4
    assert [r.key[-2:] for r in catalog.test if r.label == 0] == ["16", "17", "18", "19", "20"]
    pool = build_static_pool(catalog, "nomniglot", 10, "gray", ArrayCache(tmp_path / "c"))
    _assert_pairing_never_leaks(catalog, pool)
    # the events of a sample are those between its csv timestamps, read through tonic's AEDAT4 reader
    events = catalog.load_events(catalog.test[0])
    assert 40 <= len(events) < 80 and np.all(np.diff(events["t"]) >= 0)


def test_nomniglot_character_mismatch_is_listed(tmp_path) -> None:
    root = make_nomniglot(tmp_path / "no", {"background": {"Greek": 2}})
    import shutil

    shutil.rmtree(root / "images_background" / "Greek" / "character02")
    with pytest.raises(DatasetError, match="events but no images: background/Greek/character02"):
        load_catalog(_config("nomniglot", root, tmp_path / "c"))


def test_nomniglot_corrupt_aedat4_names_the_file(tmp_path) -> None:
    root = make_nomniglot(tmp_path / "no", {"background": {"Greek": 1}})
    path = root / "dvs_background" / "Greek" / "character01" / "0001.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n\x00\x00")
    catalog = load_catalog(_config("nomniglot", root, tmp_path / "c"))
    with pytest.raises(DatasetError, match="0001.aedat4"):
        catalog.load_events(catalog.train[0])


def test_every_pair_is_registered() -> None:
    assert PAIRS.names() == ["cepdvs", "ncaltech101", "nomniglot", "nshapes"]
