"""build_data end to end on the built-in pair: loaders, cached frames, sampling, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import tonic
import torch
from fixtures_data.builders import make_ncaltech101
from tonic.io import events_struct

from engine.config import RunConfig
from engine.data import build_data, load_catalog
from engine.data.augment import FrameAugment, add_noise_at_snr, random_crop, random_rotation
from engine.data.cache import ArrayCache
from engine.data.loaders import BalancedSampler, ShuffleSampler
from engine.data.readers.ncaltech101 import shifted_geometry
from engine.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def nshapes_config(tmp_path_factory) -> RunConfig:
    cache = tmp_path_factory.mktemp("cache")
    return RunConfig().with_overrides(
        {
            "data.pair": "nshapes",
            "data.cache_root": str(cache),
            "data.nshapes_classes": 3,
            "data.nshapes_per_class": 10,
            "batch_size": 4,
            "T": 5,
            "data.event_size": 32,
            "seed": 7,
        }
    )


@pytest.fixture(scope="module")
def bundle(nshapes_config):
    return build_data(nshapes_config)


def test_bundle_shapes_and_splits(bundle, nshapes_config) -> None:
    assert bundle.num_classes == 3 and bundle.class_names == ["disk", "square", "triangle"]
    assert bundle.train_size == 27 and bundle.test_size == 3  # round(0.9·10) = 9 per class
    assert len(bundle.train_loader) == 27 // 4  # drop_last
    frames, labels = next(iter(bundle.train_loader))
    assert frames.shape == (4, 5, 2, 32, 32) and frames.dtype == torch.float32
    assert labels.shape == (4,) and labels.dtype == torch.int64
    test_batches = list(bundle.test_loader)
    assert sum(len(y) for _, y in test_batches) == 3  # every test recording once, no drop_last
    assert bundle.static_pool.images.shape == (27, 32, 32)
    assert float(bundle.static_pool.images.min()) >= 0.0 and float(bundle.static_pool.images.max()) <= 1.0


def test_cached_frames_equal_tonic_to_frame_then_resize(bundle, nshapes_config) -> None:
    catalog = load_catalog(nshapes_config)
    frames = torch.cat([x for x, _ in bundle.test_loader])
    for i, record in enumerate(catalog.test):
        events = catalog.load_events(record)
        x, y, (width, height) = shifted_geometry(events)
        shifted = np.zeros(len(events), dtype=events_struct)
        shifted["x"], shifted["y"], shifted["t"], shifted["p"] = x, y, events["t"], events["p"]
        counts = tonic.transforms.ToFrame(sensor_size=(width, height, 2), n_time_bins=5)(shifted)
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(counts).float(), size=(32, 32), mode="bilinear", align_corners=True
        )
        torch.testing.assert_close(frames[i], expected)


def test_second_build_reads_the_cache(bundle, nshapes_config) -> None:
    log = ArrayCache(nshapes_config.data.cache_root).root / "frames" / "build.log"
    before = log.read_text()
    again = build_data(nshapes_config)
    assert log.read_text() == before
    torch.testing.assert_close(next(iter(again.test_loader))[0], next(iter(bundle.test_loader))[0])


def test_set_epoch_replays_the_same_order(bundle) -> None:
    def labels_of_epoch(epoch: int) -> list[int]:
        bundle.set_epoch(epoch)
        return torch.cat([y for _, y in bundle.train_loader]).tolist()

    first, other, again = labels_of_epoch(3), labels_of_epoch(4), labels_of_epoch(3)
    assert first == again and first != other


def test_workers_give_the_same_batches(nshapes_config) -> None:
    single = build_data(nshapes_config)
    multi = build_data(nshapes_config.with_overrides({"data.num_workers": 1}))
    for data in (single, multi):
        data.set_epoch(2)
    for (xa, ya), (xb, yb) in zip(single.train_loader, multi.train_loader, strict=True):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)


def test_balanced_sampler_equalises_classes() -> None:
    labels = np.array([0] * 100 + [1] * 10 + [2] * 30)
    sampler = BalancedSampler(labels, seed=0)
    counts = np.zeros(3)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(labels)
        counts += np.bincount(labels[drawn], minlength=3)
    shares = counts / counts.sum()
    assert np.all(np.abs(shares - 1 / 3) < 0.03), shares


def test_shuffle_sampler_is_a_permutation_per_epoch() -> None:
    sampler = ShuffleSampler(50, seed=1)
    sampler.set_epoch(0)
    a = list(sampler)
    sampler.set_epoch(1)
    assert sorted(a) == list(range(50)) and a != list(sampler)


def test_too_few_training_samples_for_one_batch(tmp_path) -> None:
    root = make_ncaltech101(tmp_path / "nc", {"a": 6, "b": 6})
    config = RunConfig().with_overrides(
        {
            "data.pair": "ncaltech101",
            "data.root": str(root),
            "data.cache_root": str(tmp_path / "c"),
            "batch_size": 64,
        }
    )
    with pytest.raises(DatasetError, match="fewer than one batch"):
        build_data(config)


# ----------------------------------------------------------------------------------------------------
# augmentation


def test_random_crop_is_one_padded_crop_per_sample() -> None:
    frames = torch.randn(6, 3, 2, 10, 12)
    out = random_crop(frames, 4, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    top = torch.randint(0, 9, (6,), generator=g)
    left = torch.randint(0, 9, (6,), generator=g)
    padded = torch.nn.functional.pad(frames, (4, 4, 4, 4))
    for b in range(6):
        t, lft = int(top[b]), int(left[b])
        # the same window for every time step and polarity of the sample
        torch.testing.assert_close(out[b], padded[b, :, :, t : t + 10, lft : lft + 12])


def test_rotation_by_zero_is_identity_and_dvs_da_is_seeded() -> None:
    frames = torch.rand(4, 2, 2, 16, 16)
    torch.testing.assert_close(random_rotation(frames, 0.0, torch.Generator().manual_seed(0)), frames)
    augment = FrameAugment(padding=4, dvs_da=True)
    a = augment(frames, torch.Generator().manual_seed(9))
    b = augment(frames, torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.shape == frames.shape
    rotated = random_rotation(torch.ones(64, 1, 1, 16, 16), 15.0, torch.Generator().manual_seed(1))
    assert float(rotated.min()) == 0.0  # corners rotated in from outside are filled with 0
    assert set(torch.unique(rotated).tolist()) <= {0.0, 1.0}  # nearest: no blending


def test_static_pool_moves_and_samples_on_its_device(bundle) -> None:
    pool = bundle.static_pool.to("cpu")
    labels = torch.tensor([0, 1, 2, 2, 1])
    images = pool.sample(labels, torch.Generator().manual_seed(0))
    assert images.shape == (5, 32, 32) and images.device == pool.device
    again = pool.sample(labels, torch.Generator().manual_seed(0))
    assert torch.equal(images, again)


# ----------------------------------------------------------------------------------------------------
# the original --snr: Gaussian noise at a per-sample SNR instead of the crop


@pytest.mark.parametrize("snr_db", [3.0, 10.0, 20.0])
def test_snr_noise_power_matches_the_definition(snr_db: float) -> None:
    # samples of very different power: the noise follows each sample's own mean square
    scale = torch.logspace(-1, 2, 64).view(64, 1, 1, 1, 1)
    frames = torch.rand(64, 4, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * scale
    noise = add_noise_at_snr(frames, snr_db, torch.Generator().manual_seed(1)) - frames
    signal_power = frames.pow(2).mean(dim=(1, 2, 3, 4))
    noise_power = noise.pow(2).mean(dim=(1, 2, 3, 4))
    ratio = noise_power / signal_power  # 10^(−snr/10) in expectation, ±3 % per sample of 2048 values
    target = 10 ** (-snr_db / 10)
    assert abs(float(ratio.mean()) / target - 1) < 0.02
    assert torch.all((ratio / target - 1).abs() < 0.15)
    standardised = noise / torch.sqrt(signal_power * target).view(64, 1, 1, 1, 1)
    assert abs(float(standardised.mean())) < 0.01  # zero-mean: ±0.003 for 131 072 unit normals


def test_snr_noise_replaces_the_crop_and_zero_means_off() -> None:
    frames = torch.rand(8, 3, 2, 12, 12)
    frames[0] = 0.0
    noisy = FrameAugment(padding=4, snr=10.0)(frames, torch.Generator().manual_seed(4))
    torch.testing.assert_close(noisy, add_noise_at_snr(frames, 10.0, torch.Generator().manual_seed(4)))
    assert torch.equal(noisy[0], frames[0])  # no signal, no noise (the noise scales with the signal)
    off = FrameAugment(padding=4, snr=0.0)(frames, torch.Generator().manual_seed(4))
    assert torch.equal(off, random_crop(frames, 4, torch.Generator().manual_seed(4)))  # s = 0: crop only
    # with DVS-DA the original ignores --snr; the config refuses the combination, the transform ignores it
    with_da = FrameAugment(padding=4, dvs_da=True, snr=10.0)(frames, torch.Generator().manual_seed(4))
    assert torch.equal(
        with_da, FrameAugment(padding=4, dvs_da=True)(frames, torch.Generator().manual_seed(4))
    )


def test_build_data_passes_snr_to_the_augmentation(nshapes_config) -> None:
    bundle = build_data(nshapes_config.with_overrides({"data.snr": 15.0}))
    assert bundle.augment.snr == 15.0 and not bundle.augment.dvs_da
    assert build_data(nshapes_config).augment.snr == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augmentation_runs_on_the_gpu_with_a_device_generator() -> None:
    frames = torch.rand(16, 4, 2, 24, 24, device="cuda")
    for augment in (FrameAugment(snr=10.0), FrameAugment(dvs_da=True), FrameAugment()):
        a = augment(frames, torch.Generator(device="cuda").manual_seed(2))
        b = augment(frames, torch.Generator(device="cuda").manual_seed(2))
        assert a.device == frames.device and torch.equal(a, b)


def test_config_refuses_bad_snr_and_frame_mode() -> None:
    for overrides, message in (
        ({"data.snr": -3.0}, "data.snr = -3.0 must be ≥ 0"),
        ({"data.snr": 10.0, "data.dvs_da": True}, "needs data.dvs_da = false"),
        ({"data.frame_mode": "spikes"}, "must be auto, counts or frequency"),
    ):
        with pytest.raises(ConfigError, match=message):
            RunConfig().with_overrides(overrides).validate()
