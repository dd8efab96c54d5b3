"""CT step by step: from the plain back-projection to FBP, the sinogram linked to the image, and window/level.

Four pictures make filtered back-projection: the sinogram ``y_delta``; its back-projection ``Aᵀ y_delta`` without a
filter (every point smeared into a star of lines: blurred as ``1/r``); each projection filtered by the ramp
``|ω|`` (the window chosen) in the frequency domain; the back-projection of that, FBP. ``steps`` computes them from a
``CTResult``, ``filter_figure`` draws the windows' responses. The geometry links the two domains: a point of the
sinogram (an angle, a detector bin) is a ray through the image (``physics.ct.ray``), a pixel of the image is a
sinusoid in the sinogram (``physics.ct.sinusoid``). The images are in [0, 1]; the CT tab reads them as Hounsfield
units on a fixed scale (``to_hu``) so that the usual windows apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from recon_demo.cache import BoundedCache
from recon_demo.lab.ct import CTResult, CTSetting, sinogram_picture
from recon_demo.physics.ct import FILTERS, filter_length, fourier_filter, radon_operator, ramp_filtered, ray, sinusoid

SINOGRAM_WIDTH = 360  # the sinogram picture's width (angles stretched across), as the CT tab draws it
AIR_HU, HU_PER_UNIT = -1000.0, 2000.0  # the tab's scale: 0 is air (−1000 HU), 1 is dense bone (+1000 HU)
PRESETS = {  # name → (width, level) in HU: the usual CT windows
    "Lung": (1500.0, -600.0),
    "Soft tissue": (400.0, 40.0),
    "Bone": (1800.0, 400.0),
    "Full range": (2000.0, 0.0),
}
STEP_SENTENCES = (
    ("Sinogram", "What the scanner measures: each column one angle, each row one detector bin, a line integral per point."),
    ("Back-projection Aᵀy", "Each projection smeared back along its rays: every point becomes a star, the image blurred as 1/r."),
    ("Filtered sinogram", "Each projection convolved with the ramp |ω| (the chosen window): the low frequencies the smearing "
                          "over-counts are taken down."),
    ("FBP", "The filtered projections smeared back: the stars' arms cancel, the image comes out sharp (and the noise with it)."),
)  # fmt: skip


def to_hu(x: np.ndarray) -> np.ndarray:
    """The tab's images on the Hounsfield scale (``AIR_HU + HU_PER_UNIT · x``)."""
    return AIR_HU + HU_PER_UNIT * np.asarray(x, dtype=np.float64)


def window(x: np.ndarray, width: float, level: float) -> np.ndarray:
    """Window/level: the HU range ``level ± width / 2`` stretched to black…white, outside it clipped; (H, W) in [0, 1]."""
    if not (math.isfinite(width) and math.isfinite(level)) or width <= 0:
        raise ValueError(f"a window needs a positive width and a finite level, got width {width}, level {level}")
    return np.clip((to_hu(x) - (level - width / 2)) / width, 0, 1).astype(np.float32)


def _scaled(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)).astype(np.float32)


@dataclass
class Steps:
    """The pictures of filtered back-projection for one sinogram, from the measurement to the image."""

    sinogram: np.ndarray  # (angles, bins) y_delta
    backprojection: np.ndarray  # (n, n) Aᵀ y_delta, scaled to [0, 1] for display
    filtered: np.ndarray  # (angles, bins) the ramp-filtered sinogram
    fbp: np.ndarray  # (n, n) in [0, 1]: the FBP, clamped
    filter: str


def steps(result: CTResult) -> Steps:
    """The four pictures of FBP for a CT tab result (its sinogram, its window)."""
    y = torch.from_numpy(result.sinogram)[None, None]  # (1, 1, angles, bins), the sinogram's own float32
    radon = radon_operator(result.x_true.shape[-1], y.shape[-2])
    with torch.no_grad():
        plain = radon.adjoint(y)[0, 0].numpy()
        filtered = ramp_filtered(y, result.setting.filter)[0, 0].numpy()
        fbp = radon.fbp(y, result.setting.filter)[0, 0].numpy()
    return Steps(result.sinogram, _scaled(plain), filtered, np.clip(fbp, 0, 1).astype(np.float32), result.setting.filter)


class StepsCache:
    """``steps`` of the last few CT settings: a click, a window or a preset redraws without projecting again."""

    def __init__(self, size: int = 8):
        self._steps: BoundedCache[CTSetting, Steps] = BoundedCache(size)

    def get(self, result: CTResult) -> Steps:
        return self._steps.get_or_compute(result.setting, lambda: steps(result))


def step_pictures(s: Steps) -> list[tuple[np.ndarray, str]]:
    """The row of pictures, each captioned with its title (its sentence is in ``STEP_SENTENCES``, said above the row)."""
    pictures = (sinogram_picture(s.sinogram, SINOGRAM_WIDTH), s.backprojection, sinogram_picture(s.filtered, SINOGRAM_WIDTH), s.fbp)
    return [(p, f"{i}. {title}") for i, (p, (title, _)) in enumerate(zip(pictures, STEP_SENTENCES), start=1)]


def filter_figure(chosen: str = "ramp", bins: int = 364) -> Figure:
    """The FBP windows' frequency responses ``|H(ω)|`` up to Nyquist, the chosen one bold."""
    length = filter_length(bins)
    omega = np.fft.fftfreq(length)[: length // 2] * 2  # in units of Nyquist
    fig = Figure(figsize=(5.4, 3.4))  # not pyplot: its global state is not safe across the server's threads
    ax = fig.subplots()
    for name in FILTERS:
        response = fourier_filter(length, name)[: length // 2]
        ax.plot(omega, response, lw=3.2 if name == chosen else 1.4, alpha=1 if name == chosen else 0.7,
                label=name + (" (chosen)" if name == chosen else ""))  # fmt: skip
    ax.set_xlabel("frequency (fraction of Nyquist)", fontsize=12)
    ax.set_ylabel("|H(ω)|", fontsize=12)
    ax.set_title("The ramp and its windows", fontsize=13)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=11)
    fig.tight_layout()
    return fig


# -- the two domains linked -----------------------------------------------------------------------------------------

RAY_COLOUR = (234, 88, 12)  # orange-600: one colour for the ray and its point, the pixel and its sinusoid


def sinogram_point(picture_xy: tuple[int, int], n_angles: int, bins: int, width: int = SINOGRAM_WIDTH) -> tuple[int, int]:
    """A click on the sinogram picture (x across, y down) → (angle index, detector bin)."""
    x, y = picture_xy
    return min(max(int(x) * n_angles // width, 0), n_angles - 1), min(max(int(y), 0), bins - 1)


def _rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8)).convert("RGB")


def _sinogram_rgb(sinogram: np.ndarray, width: int) -> Image.Image:
    return Image.fromarray(sinogram_picture(sinogram, width)).convert("RGB")


LINK_SIDE = 512  # the linked image is shown at least this many pixels a side (each pixel repeated), for a projector


def link_scale(size: int) -> int:
    """How many screen pixels a side each image pixel gets in the linked view (2 for 256², 1 from 512² on)."""
    return max(1, LINK_SIDE // size)


def enlarged(picture: np.ndarray, scale: int) -> np.ndarray:
    """``picture`` (H, W) or (H, W, 3) with each pixel repeated ``scale`` × ``scale``: sharp pixels, no smoothing."""
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def ray_misses(size: int, n_angles: int, angle_index: int, bin: float) -> bool:
    """Whether the ray of (angle, bin) passes beside the image (a detector bin beyond the image's corners)."""
    return bool(np.isnan(ray(size, n_angles, angle_index, bin)[0]).any())


def image_with_ray(image: np.ndarray, n_angles: int, angle_index: int, bin: float) -> np.ndarray:
    """The image (H, W in [0, 1]) as RGB with the ray of (angle, bin) drawn across it."""
    size = image.shape[-1]
    picture = _rgb(image)
    start, end = ray(size, n_angles, angle_index, bin)
    if not np.isnan(start).any():
        width = max(1, size // 128)
        ImageDraw.Draw(picture).line([(start[1], start[0]), (end[1], end[0])], fill=RAY_COLOUR, width=width)
    return np.asarray(picture)


def image_with_pixel(image: np.ndarray, row: int, col: int) -> np.ndarray:
    """The image as RGB with a ring around pixel (row, col)."""
    picture = _rgb(image)
    r = max(3, image.shape[-1] // 48)
    ImageDraw.Draw(picture).ellipse([col - r, row - r, col + r, row + r], outline=RAY_COLOUR, width=max(1, r // 2))
    return np.asarray(picture)


def sinogram_with_sinusoid(sinogram: np.ndarray, row: int, col: int, size: int, width: int = SINOGRAM_WIDTH) -> np.ndarray:
    """The sinogram picture as RGB with pixel (row, col)'s sinusoid drawn over it."""
    n_angles = sinogram.shape[0]
    picture = _sinogram_rgb(sinogram, width)
    curve = sinusoid(size, n_angles, row, col)  # (n_angles,) bins
    xs = (np.arange(n_angles) + 0.5) * width / n_angles  # each angle's column centre in the stretched picture
    ImageDraw.Draw(picture).line(list(zip(xs, curve)), fill=RAY_COLOUR, width=2)
    return np.asarray(picture)


def sinogram_with_point(sinogram: np.ndarray, angle_index: int, bin: int, width: int = SINOGRAM_WIDTH) -> np.ndarray:
    """The sinogram picture as RGB with the clicked (angle, bin) ringed."""
    n_angles = sinogram.shape[0]
    picture = _sinogram_rgb(sinogram, width)
    x = (angle_index + 0.5) * width / n_angles
    ImageDraw.Draw(picture).ellipse([x - 5, bin - 5, x + 5, bin + 5], outline=RAY_COLOUR, width=2)
    return np.asarray(picture)
