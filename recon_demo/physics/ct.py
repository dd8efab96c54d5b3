"""Computed tomography: the parallel-beam Radon transform ``A``, its adjoint, FBP and SIRT, in torch.

The measurement is a sinogram: for each of ``n_angles`` angles θ_k = k π / n_angles in [0, π), the line
integrals of the n×n image along parallel rays, read on a detector of ``2·ceil(diag/2)`` bins of one pixel
(the lecture's crossdomain example). The geometry is scikit-image's: the rotation centre is the pixel
``(n // 2, n // 2)``, a pixel at column offset x and row offset y lands at detector position
``t = x cos θ − y sin θ``, and ``radon(image, theta_degrees, circle=False)`` agrees with ours to 0.1 % on
Shepp-Logan (both put the centre at bin ``bins // 2``; at 256² scikit-image has one bin fewer, at the front).

``A`` is pixel-driven: each pixel is a unit square whose projection (a trapezoid) is shared among the
detector bins it overlaps. It is computed on the fly (``ct_projector``: numba kernels on the CPU, torch
elsewhere), never stored, so an operator costs a few tables of ``n_angles`` numbers and memory stays O(n²) per
image at any size and number of angles; the adjoint ``Aᵀ`` is then exact (``<A x, y> = <x, Aᵀ y>`` to rounding)
and is a back-projection that averages each projection over the pixel's footprint, which is what filtered
back-projection needs. Batched ``(N, 1, n, n) ↔ (N, 1, n_angles, bins)``, differentiable (the backward of ``A``
is ``Aᵀ`` and vice versa), on the input's device and dtype.

Noise on a sinogram is the blur's: ``operators.add_relative_noise`` (relative to the sinogram's norm).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from recon_demo.cache import BoundedCache
from recon_demo.physics import ct_projector
from recon_demo.physics.spec import param, validated

FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")  # FBP windows, as scikit-image names them
MAX_SIZE = 1024  # image side: memory O(size²) per image (a 1024² sinogram at 360 angles is 2 MB)
MAX_ANGLES = 360
LECTURE_ANGLES = 60  # the lecture's crossdomain example
CT_NOISE = 0.01  # relative Gaussian noise on the sinogram, as for blur


def detector_bins(size: int) -> int:
    """The lecture's detector: ``2 · ceil(diag / 2)`` bins for an image of side ``size`` (364 for 256)."""
    return 2 * math.ceil(math.sqrt(2) * size / 2)


def projection_angles(n_angles: int) -> torch.Tensor:
    """``n_angles`` equally spaced angles in [0, π), in radians (float64)."""
    return torch.arange(n_angles, dtype=torch.float64) * math.pi / n_angles


def check_geometry(size: int, n_angles: int) -> tuple[int, int]:
    """Validated ``(size, n_angles)``; ``ValueError`` with what is allowed otherwise."""
    for name, value, lo, hi in (("image size", size, 8, MAX_SIZE), ("number of angles", n_angles, 1, MAX_ANGLES)):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(as_float) or not as_float.is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if not lo <= as_float <= hi:
            raise ValueError(f"{name} must be between {lo} and {hi}, got {int(as_float)}")
    return int(size), int(n_angles)


class _Project(torch.autograd.Function):
    """``A x`` (or ``Aᵀ y`` with ``transpose``), whose backward is the other one: each is the other's exact adjoint."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, geometry: ct_projector.Geometry, transpose: bool) -> torch.Tensor:
        ctx.geometry, ctx.transpose = geometry, transpose
        return (ct_projector.backproject if transpose else ct_projector.project)(t, geometry)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _Project.apply(grad, ctx.geometry, not ctx.transpose), None, None  # differentiable again


class Radon:
    """The parallel-beam Radon transform ``A`` of ``size``² images over ``n_angles`` angles in [0, π).

    ``forward`` (``A x``): ``(N, 1, size, size)`` → sinogram ``(N, 1, n_angles, bins)``;
    ``adjoint`` (``Aᵀ y``, back-projection) the other way; ``fbp`` filtered back-projection.
    """

    def __init__(self, size: int, n_angles: int = LECTURE_ANGLES):
        self.size, self.n_angles = check_geometry(size, n_angles)
        self.bins = detector_bins(self.size)
        # a few float64 tables of length n_angles: nothing grows with size² × angles (ct_projector)
        self.geometry = ct_projector.Geometry(projection_angles(self.n_angles).numpy(), self.size, self.bins)

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        return self.n_angles, self.bins

    def _check(self, t: torch.Tensor, shape: tuple[int, int], what: str) -> None:
        if t.ndim != 4 or t.shape[1] != 1 or tuple(t.shape[2:]) != shape:
            raise ValueError(f"expected {what} of shape (N, 1, {shape[0]}, {shape[1]}), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"expected a floating-point {what}, got {t.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: the sinogram of a batch of images."""
        self._check(x, (self.size, self.size), "a batch of images")
        return _Project.apply(x[:, 0], self.geometry, False)[:, None]  # (N, 1, n_angles, bins)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᵀ y``: the (unfiltered) back-projection of a batch of sinograms."""
        self._check(y, self.sinogram_shape, "a batch of sinograms")
        return _Project.apply(y[:, 0], self.geometry, True)[:, None]  # (N, 1, size, size)

    __call__ = forward

    def fbp(self, y: torch.Tensor, filter: str = "ramp") -> torch.Tensor:
        """Filtered back-projection: each projection filtered by the (windowed) ramp, back-projected, scaled
        by ``π / (2 · n_angles)``, as scikit-image's ``iradon`` does."""
        self._check(y, self.sinogram_shape, "a batch of sinograms")
        return self.adjoint(ramp_filtered(y, filter)) * (math.pi / (2 * self.n_angles))

    def describe(self) -> str:
        return f"parallel beam, {self.n_angles} angles, {self.bins} bins, {self.size}²"


def sinusoid(size: int, n_angles: int, row: float, col: float) -> np.ndarray:
    """Where pixel ``(row, col)`` of a ``size``² image lands on the detector at each of the ``n_angles`` angles:
    the bin (a float, bin centres at integers) ``bins // 2 + x cos θ − y sin θ``, a sinusoid in θ (x, y the pixel's
    column and row offsets from the centre pixel). Shape ``(n_angles,)``."""
    theta = projection_angles(n_angles).numpy()
    x, y = col - size // 2, row - size // 2
    return detector_bins(size) // 2 + x * np.cos(theta) - y * np.sin(theta)


def ray(size: int, n_angles: int, angle_index: int, bin: float) -> tuple[np.ndarray, np.ndarray]:
    """The line of pixels that detector ``bin`` sums at angle ``angle_index``: two end points ``(row, col)``
    where it crosses the image's border square (the ray may miss the image: then both are ``nan``).

    The ray is the set of ``(x, y)`` offsets with ``x cos θ − y sin θ = t`` (``t = bin − bins // 2``): the point
    ``t (cos θ, −sin θ)`` plus any multiple of the direction ``(sin θ, cos θ)``.
    """
    theta = float(projection_angles(n_angles)[angle_index])
    t = bin - detector_bins(size) // 2
    c, s = math.cos(theta), math.sin(theta)
    base, direction = np.array([t * c, -t * s]), np.array([s, c])  # (x, y)
    lo, hi = -(size // 2) - 0.5, size - size // 2 - 0.5  # the image's border, in offsets from the centre pixel
    enter, leave = -np.inf, np.inf
    for k in range(2):  # clip the line to the square, one axis at a time (Liang-Barsky)
        if abs(direction[k]) < 1e-12:
            if not lo <= base[k] <= hi:
                return np.full(2, np.nan), np.full(2, np.nan)
            continue
        a, b = sorted(((lo - base[k]) / direction[k], (hi - base[k]) / direction[k]))
        enter, leave = max(enter, a), min(leave, b)
    if enter > leave:
        return np.full(2, np.nan), np.full(2, np.nan)
    centre = np.array([size // 2, size // 2])
    ends = [base + u * direction for u in (enter, leave)]
    return tuple(np.array([centre[0] + e[1], centre[1] + e[0]]) for e in ends)  # (row, col) each


def fourier_filter(length: int, name: str) -> np.ndarray:
    """The ramp filter of a zero-padded projection of ``length`` samples, with a window (Kak & Slaney).

    Built from the ramp's exact spatial-domain samples rather than ``|ω|`` directly, which avoids the DC
    offset a sampled ``|ω|`` gives; then windowed as scikit-image's ``iradon`` names them.
    """
    if name not in FILTERS:
        raise ValueError(f"unknown FBP filter {name!r}; choose one of {', '.join(FILTERS)}")
    k = np.concatenate([np.arange(1, length // 2 + 1, 2), np.arange(length // 2 - 1, 0, -2)])
    h = np.zeros(length)
    h[0] = 0.25
    h[1::2] = -1 / (np.pi * k) ** 2
    ramp = 2 * np.real(np.fft.fft(h))
    if name == "shepp-logan":
        omega = np.pi * np.fft.fftfreq(length)[1:]
        ramp[1:] *= np.sin(omega) / omega
    elif name == "cosine":
        ramp *= np.fft.fftshift(np.sin(np.linspace(0, np.pi, length, endpoint=False)))
    elif name == "hamming":
        ramp *= np.fft.fftshift(np.hamming(length))
    elif name == "hann":
        ramp *= np.fft.fftshift(np.hanning(length))
    return ramp


def filter_length(bins: int) -> int:
    """The FFT length a projection of ``bins`` samples is zero-padded to before filtering: a power of two ≥ 2 bins."""
    return max(64, 1 << math.ceil(math.log2(2 * bins)))


def ramp_filtered(y: torch.Tensor, filter: str = "ramp") -> torch.Tensor:
    """Each projection (last axis) convolved with the windowed ramp, zero-padded to avoid wrap-around."""
    bins = y.shape[-1]
    length = filter_length(bins)
    response = torch.from_numpy(fourier_filter(length, filter)).to(device=y.device, dtype=y.dtype)
    spectrum = torch.fft.fft(y, n=length, dim=-1) * response
    return torch.fft.ifft(spectrum, dim=-1).real[..., :bins].to(y.dtype)


def sirt_iterates(radon: Radon, y: torch.Tensor, box: tuple[float, float] | None = (0.0, 1.0)) -> Iterator[torch.Tensor]:
    """SIRT's iterates without end: ``x ← x + C Aᵀ R (y − A x)`` with ``R``, ``C`` the inverse row and column sums
    of ``A``, from zero; ``box`` clamps every iterate (the images live in [0, 1])."""
    ones = torch.ones(1, 1, radon.size, radon.size, device=y.device, dtype=y.dtype)
    row_sums = radon.forward(ones)
    col_sums = radon.adjoint(torch.ones_like(row_sums))
    r = torch.where(row_sums > 1e-6, 1 / row_sums.clamp_min(1e-6), torch.zeros(()))
    c = torch.where(col_sums > 1e-6, 1 / col_sums.clamp_min(1e-6), torch.zeros(()))
    x = torch.zeros(y.shape[0], 1, radon.size, radon.size, device=y.device, dtype=y.dtype)
    with torch.no_grad():
        while True:
            x = x + c * radon.adjoint(r * (y - radon.forward(x)))
            if box is not None:
                x = x.clamp(*box)
            yield x


def sirt(radon: Radon, y: torch.Tensor, iterations: int = 100, box: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """SIRT stopped after ``iterations`` (``sirt_iterates``). Stopping after a few hundred iterations is itself the
    regulariser: more iterations fit the noise."""
    x = torch.zeros(y.shape[0], 1, radon.size, radon.size, device=y.device, dtype=y.dtype)
    for _, iterate in zip(range(iterations), sirt_iterates(radon, y, box)):
        x = iterate
    return x


@dataclass(frozen=True)
class CTSpec:
    """A CT acquisition described by plain values, as the CLI flags and the UI controls give it. Each field says what
    it is (``spec.Param``), as ``OperatorSpec``'s do: validation, the CLI flags and the CT tab's widgets follow."""

    angles: int = param(LECTURE_ANGLES, "Number of angles (over 180°)", int, low=1, high=MAX_ANGLES, step=1, slider_high=180,
                        words="number of angles")  # fmt: skip  (projections in [0, π); the slider stops at one a degree)
    size: int = param(256, "Image size", int, low=8, high=MAX_SIZE, unit="pixels a side", words="image size")
    filter: str = param("ramp", "FBP filter", str, choices=FILTERS, flags=("--fbp-filter",), words="FBP filter",
                        info="ramp: sharpest and noisiest; the windows trade detail for less noise")  # fmt: skip

    def validated(self) -> CTSpec:
        """A checked copy (each field by its ``Param``); ``ValueError`` says what is allowed."""
        return validated(self)

    def build(self) -> Radon:
        """The operator ``A`` (shared per geometry)."""
        if self.filter not in FILTERS:
            raise ValueError(f"unknown FBP filter {self.filter!r}; choose one of {', '.join(FILTERS)}")
        return radon_operator(self.size, self.angles)

    def describe(self) -> str:
        return f"parallel beam, {self.angles} angles, {detector_bins(self.size)} bins, FBP {self.filter}"

    def to_dict(self) -> dict:
        return asdict(self) | {"geometry": "parallel", "bins": detector_bins(self.size)}


# The explicit operator cache: each holds a few tables of n_angles numbers, kept for sharing, not for memory.
_OPERATORS: BoundedCache[tuple[int, int], Radon] = BoundedCache(64)


def radon_operator(size: int, n_angles: int) -> Radon:
    """The shared ``Radon(size, n_angles)`` (nothing to build: the projector is matrix-free)."""
    key = check_geometry(size, n_angles)
    return _OPERATORS.get_or_compute(key, lambda: Radon(*key))
