"""N-Omniglot + Omniglot as the original fed them: frequency frames cropped to 250×250 and resized the
torchvision way, and Omniglot images inverted so strokes are bright like the events (spec §7.3, §11 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures_data.builders import make_nomniglot
from PIL import Image

from engine.config import RunConfig
from engine.data import build_data, load_catalog
from engine.data.events import events_to_frames, events_to_frequency_frames
from engine.data.readers.nomniglot import CROP, SENSOR

T, SIZE = 3, 12


def _stroke_image(path) -> None:
    """Omniglot style: white background, one black vertical stroke 6 px wide in the middle."""
    array = np.full((24, 24), 255, dtype=np.uint8)
    array[:, 9:15] = 0
    Image.fromarray(array, mode="L").save(path)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> RunConfig:
    # events stacked in a 20×20 patch inside the crop, so pixels count more than one event per slice
    root = make_nomniglot(
        tmp_path_factory.mktemp("nomni"),
        {"background": {"Greek": 2}},
        events_per_sample=(300, 400),
        region=(150, 100, 20, 20),
    )
    for path in (root / "images_background").rglob("*.png"):
        _stroke_image(path)
    return RunConfig().with_overrides(
        {
            "data.pair": "nomniglot",
            "data.root": str(root),
            "data.cache_root": str(tmp_path_factory.mktemp("cache")),
            "data.event_size": SIZE,
            "data.crop_padding": 0,
            "T": T,
            "batch_size": 4,
            "method.static_channel": "v",
        }
    )


def _expected(config: RunConfig, to_frames) -> torch.Tensor:
    """Per test recording: frames over the whole sensor → crop [4:254, 54:304] → Resize((S, S)) (tensor)."""
    catalog = load_catalog(config)
    y0, y1, x0, x1 = CROP
    out = []
    for record in catalog.test:
        events = catalog.load_events(record)
        frames = torch.as_tensor(to_frames(events["x"], events["y"], events["t"], events["p"], SENSOR, T))
        cropped = frames[..., y0:y1, x0:x1].float()
        assert cropped.shape[-2:] == (250, 250)
        out.append(F.interpolate(cropped, size=(SIZE, SIZE), mode="bilinear", align_corners=False))
    return torch.stack(out)


def test_default_frames_are_the_original_frequency_frames(config) -> None:
    bundle = build_data(config)
    assert bundle.frame_mode == "frequency"
    frames = torch.cat([x for x, _ in bundle.test_loader])
    torch.testing.assert_close(frames, _expected(config, events_to_frequency_frames))
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0


def test_counts_stay_available(config) -> None:
    counts_config = config.with_overrides({"data.frame_mode": "counts"})
    bundle = build_data(counts_config)
    assert bundle.frame_mode == "counts"
    frames = torch.cat([x for x, _ in bundle.test_loader])
    torch.testing.assert_close(frames, _expected(counts_config, events_to_frames))
    frequency = torch.cat([x for x, _ in build_data(config).test_loader])
    assert float(frames.max()) > 1.0 and not torch.allclose(frames, frequency)  # raw counts, own cache entry


def test_omniglot_strokes_are_bright_unless_the_legacy_switch_is_on(config) -> None:
    pool = build_data(config).static_pool
    legacy = build_data(config.with_overrides({"data.legacy_omniglot_no_invert": True})).static_pool
    # 24 → 12 px: background columns 0–3 and 8–11, the stroke in columns 5–6 (6 px → 3 px, blurred edges)
    assert torch.all(pool.images[:, :, :4] == 0.0) and torch.all(pool.images[:, :, 8:] == 0.0)
    assert torch.all(pool.images[:, :, 5:7] == 1.0)
    torch.testing.assert_close(legacy.images, 1.0 - pool.images)


def test_nomniglot_preset_is_the_original_pipeline() -> None:
    preset = RunConfig.from_preset("nomniglot")
    assert preset.data.frame_mode == "auto" and preset.data.crop_padding == 0 and preset.T == 12
    assert not preset.data.legacy_omniglot_no_invert and preset.data.snr == 0.0
