"""The lab's pictures as arrays: grey images as uint8, the kernel enlarged, error maps in a colour map, the
kernel's spectrum, the receptive field laid over an image, the residual, PNG bytes. Pure numpy (matplotlib only
for its colour maps); the UI shows them, the API encodes them."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from recon_demo.lab.setting import WORK_SIZE

ERROR_RANGE = 0.25  # error maps show |x_rec − x_true| from 0 to this value

def to_uint8(image: np.ndarray) -> np.ndarray:
    """A grey float image in [0, 1] (values outside are clipped) as uint8."""
    return (np.clip(np.nan_to_num(image), 0, 1) * 255 + 0.5).astype(np.uint8)


PSF_CONTEXT = 7  # the least number of taps a PSF picture shows


def psf_preview(kernel: np.ndarray, size: int = 96) -> np.ndarray:
    """The kernel enlarged with square pixels, brightest tap white: what the blur does to one point. A kernel smaller
    than ``PSF_CONTEXT`` taps is shown inside a black margin of that size, so that a 1×1 (identity) kernel is a white
    dot on black rather than a picture that is all white."""
    k = kernel / kernel.max() if kernel.max() > 0 else kernel
    if k.shape[0] < PSF_CONTEXT:
        margin = (PSF_CONTEXT - k.shape[0]) // 2
        k = np.pad(k, margin)
    scale = max(1, size // k.shape[0])
    return to_uint8(np.kron(k, np.ones((scale, scale))))


ZOOM = 2  # the Train tab's close-up: the centre 1/ZOOM of the picture, each pixel ZOOM× ZOOM


def centre_zoom(image: np.ndarray, zoom: int = ZOOM) -> np.ndarray:
    """The centre ``1/zoom`` of ``image`` (H, W), each pixel repeated ``zoom`` times each way: the same size again,
    where a 1 dB gain is visible and the zero-padded border (the measurement's dark frame) is not."""
    h, w = image.shape[:2]
    top, left = (h - h // zoom) // 2, (w - w // zoom) // 2
    crop = image[top : top + h // zoom, left : left + w // zoom]
    return np.repeat(np.repeat(crop, zoom, axis=0), zoom, axis=1)


def error_map(x_rec: np.ndarray, x_true: np.ndarray) -> np.ndarray:
    """|x_rec − x_true| in the 'inferno' colour map from 0 (black) to ``ERROR_RANGE`` and above (white-yellow); RGB uint8."""
    from matplotlib import colormaps

    err = np.clip(np.abs(x_rec - x_true) / ERROR_RANGE, 0, 1)
    return (colormaps["inferno"](err)[..., :3] * 255).astype(np.uint8)


def error_colour_bar(width: int = 256, height: int = 24) -> np.ndarray:
    """The error maps' colour scale as an image: 0 (black) on the left to ``ERROR_RANGE`` and above on the right."""
    return error_map(np.tile(np.linspace(0, ERROR_RANGE, width), (height, 1)), np.zeros((height, width)))


def error_scale_colours(n: int = 11) -> list[str]:
    """The error maps' colour scale as ``n`` evenly spaced CSS colours (``#rrggbb``), 0 first: the app draws its
    colour bar from them as a gradient above the maps."""
    return ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in error_colour_bar(width=n, height=1)[0]]


def kernel_spectrum(kernel: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    """log(1 + |FFT|) of the kernel on a size² grid, centred, scaled to [0, 1]: the frequencies the blur kills."""
    padded = np.zeros((size, size))
    k = kernel.shape[0]
    padded[:k, :k] = kernel
    mag = np.fft.fftshift(np.abs(np.fft.fft2(padded)))
    mag = np.log1p(mag / mag.max() * 1000)
    return mag / mag.max()


def measurement_spectrum(y_delta: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    """log |FFT| of the measurement's centre (size² at most, Hann-windowed, centred), stretched to [0, 1]: a motion
    blur draws dark parallel stripes across it, a Gaussian a dark ring, no blur neither."""
    h, w = y_delta.shape
    side = min(size, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    tile = y_delta[top : top + side, left : left + side].astype(np.float64)
    window = np.outer(np.hanning(side), np.hanning(side))
    mag = np.log(np.abs(np.fft.fftshift(np.fft.fft2((tile - tile.mean()) * window))) + 1e-6)
    lo, hi = np.percentile(mag, (5, 99.8))
    return np.clip((mag - lo) / max(hi - lo, 1e-9), 0, 1)


def overlay(image: np.ndarray, heat: np.ndarray, colour: tuple[float, float, float] = (1.0, 0.15, 0.1)) -> np.ndarray:
    """A grey image with ``heat`` in [0, 1] laid over it in ``colour``; RGB uint8 (the receptive-field figure)."""
    grey = np.clip(image, 0, 1)[..., None].repeat(3, axis=2) * 0.7
    alpha = np.clip(heat, 0, 1)[..., None] ** 0.5  # square root: faint dependencies stay visible
    return to_uint8(grey * (1 - alpha) + np.asarray(colour) * alpha)


def draw_box(picture: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 220, 0), width: int = 2) -> np.ndarray:
    """``picture`` (H, W, 3) uint8 with the bounding box of ``mask``'s true pixels outlined in ``colour`` (the receptive
    field's measured extent, drawn to its size); unchanged when the mask is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    out = picture.copy()
    if rows.size == 0:
        return out
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    for t in range(width):  # the outline grows outwards, so the box's inside is the extent itself
        r0, r1 = max(top - 1 - t, 0), min(bottom + 1 + t, out.shape[0] - 1)
        c0, c1 = max(left - 1 - t, 0), min(right + 1 + t, out.shape[1] - 1)
        out[r0, c0 : c1 + 1] = out[r1, c0 : c1 + 1] = colour
        out[r0 : r1 + 1, c0] = out[r0 : r1 + 1, c1] = colour
    return out


def residual_map(x_true: np.ndarray, y_delta: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|x_true − y_delta| × ``gain`` as a grey image in [0, 1]: the residual a ResCNN learns, made visible."""
    return np.clip(np.abs(x_true - y_delta) * gain, 0, 1)


# zlib level 1: a 256² grey PNG in 1.5 ms instead of 4.6 ms at the default 6, for 15 % more bytes (measured here)
PNG_LEVEL = 1


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image if image.dtype == np.uint8 else to_uint8(image)).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()
