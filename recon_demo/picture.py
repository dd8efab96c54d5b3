"""A picture at its own size, as ``restore`` takes it: read as a measurement, grey or colour, and written back.

``images`` turns any picture into the lecture's grey input at 256²; here a picture keeps its size and its colour
(``Picture``): ``read_picture`` refuses what cannot be restored (not an image, empty, flat, smaller than the blur
estimator's ``MIN_SIDE`` or over ``MAX_PIXELS``) with a message saying what is allowed, ``fitted`` scales a larger
one down for the app, and ``write_picture`` writes a result as PNG (colour as 8-bit RGB, grey as 16-bit). An RGB file
whose three channels are equal is a grey picture; transparency is composited on white.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from recon_demo import images
from recon_demo.errors import RestoreError
from recon_demo.methods.estimate import MIN_SIDE

MAX_PIXELS = 1024 * 1024  # the largest picture restored at its own size (the app scales a larger one down to it)


@dataclass
class Picture:
    """A measurement as read: grey (H, W) or colour (H, W, 3) float32 in [0, 1], and how to write it back."""

    pixels: np.ndarray

    @property
    def colour(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def grey(self) -> np.ndarray:
        """The plane that is restored: the picture itself, or its luminance."""
        return images.luminance(self.pixels) if self.colour else self.pixels


def read_picture(source: str | Path | bytes | Image.Image | np.ndarray, max_pixels: int = MAX_PIXELS) -> Picture:
    """A picture as a measurement: ``RestoreError`` for a non-image, an empty, flat or tiny one, or one over
    ``max_pixels`` (the limit named)."""
    try:
        img = images.from_array(source) if isinstance(source, np.ndarray) else images.open_image(source)
    except (ValueError, OSError) as err:
        raise RestoreError(str(err)) from None
    img = ImageOps.exif_transpose(img) or img
    w, h = img.size
    if w * h > max_pixels:
        raise RestoreError(f"the image is {w}×{h} = {w * h:,} pixels; restore takes at most {max_pixels:,} "
                           f"(for example 1024×1024): scale it down first")  # fmt: skip
    if min(w, h) < MIN_SIDE:
        raise RestoreError(f"the image is {w}×{h} pixels; restoring needs at least {MIN_SIDE} pixels a side")
    if img.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LAB", "HSV") and not _is_grey_rgb(img):
        rgb = np.asarray(_composited(img).convert("RGB"), dtype=np.float32) / 255
        picture = Picture(rgb)
    else:
        picture = Picture(images.to_grayscale(img))
    if picture.pixels.max() - picture.pixels.min() < 1e-4:
        raise RestoreError("the image is flat (one value everywhere): there is nothing to restore")
    return picture


def fitted(source, max_pixels: int = MAX_PIXELS) -> tuple[Picture, str]:
    """A picture for the app, scaled down (keeping its shape) when it has more than ``max_pixels``, and a note
    saying so: the blur is then estimated and restored at the smaller size."""
    try:
        img = images.open_image(source) if not isinstance(source, np.ndarray) else images.from_array(source)
    except (ValueError, OSError) as err:
        raise RestoreError(str(err)) from None
    img = ImageOps.exif_transpose(img) or img
    w, h = img.size
    note = ""
    if w * h > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        img = _composited(img)  # transparency on white first, as read_picture does
        mode = "L" if img.mode in ("L", "1", "LA") else "F" if img.mode.startswith("I") or img.mode == "F" else "RGB"
        img = img.convert(mode).resize(size, Image.Resampling.LANCZOS)
        note = f"scaled down from {w}×{h} to {size[0]}×{size[1]} (the blur is estimated at this size)"
    return read_picture(img, max_pixels), note


def _composited(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img


def _is_grey_rgb(img: Image.Image) -> bool:
    """An RGB file whose three channels are equal is a grey picture."""
    rgb = np.asarray(_composited(img).convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def write_picture(path, pixels: np.ndarray) -> None:
    """A result as PNG (to a path or a binary file): colour as 8-bit RGB, grey as 16-bit."""
    if pixels.ndim == 3:
        Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="RGB").save(path, format="PNG")
    else:
        Image.fromarray(np.round(np.clip(pixels, 0, 1) * 65535).astype(np.uint16)).save(path, format="PNG")
