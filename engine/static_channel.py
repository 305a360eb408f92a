"""Which single channel of a static RGB image feeds the network, and how it becomes a spike-train input.

An event camera is colour-blind and sees intensity changes, so the original feeds one intensity-like
channel of the static image, copied onto both polarity channels and repeated over all T steps (spec §6):

=========  =========================================================================================
``v``      HSV value ``max(R, G, B)`` — the paper's default (OpenCV's uint8 V channel ÷ 255 is exactly
           this maximum)
``blue``   the blue channel — what the original's "without HSV" ablation actually fed (spec §11 item 17)
``gray``   ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``, a proper grey level for comparison
=========  =========================================================================================

Grey source images tiled to three channels give the same value under all three choices.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from engine.registry import Registry

__all__ = ["STATIC_CHANNELS", "static_stream", "to_static_channel"]

STATIC_CHANNELS: Registry[Callable[[Tensor], Tensor]] = Registry("static channel")

LUMA_601 = (0.299, 0.587, 0.114)


@STATIC_CHANNELS.register("v")
def value(rgb: Tensor) -> Tensor:
    return rgb.amax(dim=-3)


@STATIC_CHANNELS.register("blue")
def blue(rgb: Tensor) -> Tensor:
    return rgb[..., 2, :, :]


@STATIC_CHANNELS.register("gray")
def gray(rgb: Tensor) -> Tensor:
    r, g, b = rgb.unbind(dim=-3)
    return LUMA_601[0] * r + LUMA_601[1] * g + LUMA_601[2] * b


def to_static_channel(rgb: Tensor, name: str) -> Tensor:
    """``rgb [..., 3, H, W]`` in [0, 1] → the chosen channel ``[..., H, W]``."""
    fn = STATIC_CHANNELS.get(name)
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"expected an RGB tensor [..., 3, H, W]; got shape {tuple(rgb.shape)}")
    return fn(rgb)


def static_stream(img: Tensor, T: int) -> Tensor:
    """``img [B, H, W]`` → ``[B, T, 2, H, W]``: both polarity channels, every step, as a view.

    The result is an ``expand`` (stride 0 over T and the channel), so it costs no memory; the model
    materialises it only where its first layer needs contiguous input.
    """
    if img.dim() != 3:
        raise ValueError(f"expected a batch of single-channel images [B, H, W]; got shape {tuple(img.shape)}")
    if T < 1:
        raise ValueError(f"T must be ≥ 1, got {T}")
    B, H, W = img.shape
    return img[:, None, None].expand(B, T, 2, H, W)
