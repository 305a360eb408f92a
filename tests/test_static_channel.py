"""Static channel (spec §6): HSV value, blue, grey luma; the static stream as a zero-copy expand."""

import pytest
import torch

from engine.static_channel import STATIC_CHANNELS, static_stream, to_static_channel


def pixel(r, g, b):
    return torch.tensor([r, g, b], dtype=torch.float64).view(3, 1, 1)


def test_registry_names():
    assert STATIC_CHANNELS.names() == ["blue", "gray", "v"]


def test_channels_on_one_pixel():
    rgb = pixel(0.2, 0.6, 0.4)
    assert to_static_channel(rgb, "v").item() == pytest.approx(0.6)  # max(R, G, B)
    assert to_static_channel(rgb, "blue").item() == pytest.approx(0.4)  # channel 2
    assert to_static_channel(rgb, "gray").item() == pytest.approx(0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 0.4)
    assert to_static_channel(pixel(0.9, 0.1, 0.3), "v").item() == pytest.approx(0.9)


def test_v_equals_opencv_value_of_uint8_images():
    # OpenCV's uint8 HSV V channel is max(R, G, B); ToTensor divides by 255.
    rgb8 = torch.randint(0, 256, (3, 5, 7), generator=torch.Generator().manual_seed(0))
    expected = rgb8.max(dim=0).values.double() / 255
    torch.testing.assert_close(to_static_channel(rgb8.double() / 255, "v"), expected)


def test_grey_images_give_the_same_value_everywhere():
    grey = torch.rand(2, 1, 6, 6).expand(2, 3, 6, 6)
    for name in ("v", "blue", "gray"):
        torch.testing.assert_close(to_static_channel(grey, name), grey[:, 0], rtol=1e-6, atol=1e-6)


def test_leading_dimensions_are_kept():
    assert to_static_channel(torch.rand(4, 2, 3, 8, 9), "gray").shape == (4, 2, 8, 9)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, H, W\]; got shape \(4, 8, 8\)"):
        to_static_channel(torch.rand(4, 8, 8), "v")
    with pytest.raises(ValueError, match="valid static channel names: blue, gray, v"):
        to_static_channel(torch.rand(3, 8, 8), "hsv")
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        static_stream(torch.rand(2, 1, 8, 8), 4)


def test_static_stream_is_an_expand_without_copy():
    img = torch.rand(3, 5, 6)
    stream = static_stream(img, 4)
    assert stream.shape == (3, 4, 2, 5, 6)
    assert stream.data_ptr() == img.data_ptr()
    assert stream.stride()[1] == 0 and stream.stride()[2] == 0
    for t in range(4):
        for c in range(2):
            assert torch.equal(stream[:, t, c], img)
