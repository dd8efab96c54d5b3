"""Forward operators and noise: how a measurement ``y_delta = K x_true + e`` is made.

Kernel builders are pure functions (``motion_kernel``, ``gaussian_kernel``); ``Blur`` turns a kernel into
the operator ``K`` with ``forward`` and ``adjoint``; noise is a separate step applied to ``K x``. The
conventions are the course library's (IPPy): ``K`` is a cross-correlation with zero padding
(``conv2d(x, kernel, padding="same")``), and the lecture's noise is relative to the norm of ``K x``.
``OperatorSpec`` is the plain description of a blur that the CLI, the engine and the UI pass around; its fields
describe themselves (``physics.spec``). Noise lives in ``physics.noise``.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from recon_demo.physics.spec import param, validated

KERNEL_STYLES = ("ippy", "centered")
BLUR_TYPES = ("motion", "gaussian")  # the parametric blurs (training draws from these)
DRAWN = "drawn"  # a PSF a person drew, carried as a compact code (``encode_drawn``)
ALL_BLURS = (*BLUR_TYPES, DRAWN)
MAX_KERNEL_SIZE = 63  # the kernel builders' largest side
MAX_APP_KERNEL = 31  # what a person may ask for (app, API, CLIs): beyond 31 a 256² image is mostly border
# From this kernel side on, K and Kᵀ run by FFT (the same zero-padded correlation, equal to 1e-6): measured on a
# 2-core CPU, a batch of 8 96² crops with one 25×25 kernel each took 24 ms as a grouped convolution, 1.5 ms by
# FFT; at 9×9 the convolution was faster. The lecture's 9×9 operator keeps the course's exact conv2d.
FFT_MIN_SIDE = 15


def _check_kernel_size(size: int) -> int:
    try:
        as_float = float(size)
    except (TypeError, ValueError):
        raise ValueError(f"kernel size must be an odd integer, got {size!r}") from None
    if isinstance(size, bool) or not math.isfinite(as_float) or not as_float.is_integer():
        raise ValueError(f"kernel size must be an odd integer, got {size!r}")
    size = int(as_float)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be an odd integer >= 1, got {size}")
    if size > MAX_KERNEL_SIZE:
        raise ValueError(f"kernel size must be at most {MAX_KERNEL_SIZE}, got {size}")
    return size


def _check_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def motion_kernel(size: int, angle_deg: float, style: str = "ippy") -> torch.Tensor:
    """A motion-blur kernel of odd ``size`` along ``angle_deg`` degrees, summing to one.

    Args:
        size: odd kernel side ``k``.
        angle_deg: direction of the motion, counter-clockwise from the x axis (rows grow downwards,
            so the course's kernel at 20° rises to the lower right).
        style: ``"ippy"`` reproduces the course library pixel for pixel: ``k`` taps placed at
            ``(int(c + (i - c) sin θ), int(c + (i - c) cos θ))`` with Python truncation, which puts the
            line off-centre for most angles. ``"centered"`` is an anti-aliased segment of length ``k``
            through the centre: its centroid is exactly the centre and it is the same for θ and θ + 180°.

    Returns:
        A float32 tensor of shape ``(size, size)``.
    """
    size = _check_kernel_size(size)
    angle_deg = _check_finite("angle", angle_deg)
    if style == "ippy":
        return _motion_kernel_ippy(size, angle_deg)
    if style == "centered":
        return _motion_kernel_centered(size, angle_deg)
    raise ValueError(f"unknown kernel style {style!r}; choose one of {', '.join(KERNEL_STYLES)}")


def _motion_kernel_ippy(k: int, angle_deg: float) -> torch.Tensor:
    kernel = torch.zeros(k, k, dtype=torch.float64)
    c = k // 2
    theta = math.radians(angle_deg)
    for i in range(k):
        x = int(c + (i - c) * math.cos(theta))
        y = int(c + (i - c) * math.sin(theta))
        if 0 <= x < k and 0 <= y < k:
            kernel[y, x] = 1.0
    return (kernel / kernel.sum()).float()


def _motion_kernel_centered(k: int, angle_deg: float) -> torch.Tensor:
    # Reduce the angle to [0, 180) first so that θ and θ + 180° give bit-identical kernels.
    theta = math.radians(angle_deg % 180.0)
    c = (k - 1) / 2
    # Point samples at the midpoints of n equal pieces of the segment [-k/2, k/2]: symmetric about 0,
    # so the splatted mass is point-symmetric about the centre and its centroid is the centre.
    n = 32 * k
    t = (torch.arange(n, dtype=torch.float64) + 0.5) * (k / n) - k / 2
    xs = c + t * math.cos(theta)
    ys = c + t * math.sin(theta)
    kernel = torch.zeros(k, k, dtype=torch.float64)
    x0, y0 = torch.floor(xs), torch.floor(ys)
    fx, fy = xs - x0, ys - y0
    # Bilinear splat: each sample shares its unit mass among its four neighbouring pixels.
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).long(), (y0 + dy).long()
        inside = (xi >= 0) & (xi < k) & (yi >= 0) & (yi < k)  # mass beyond the kernel is dropped symmetrically
        kernel.index_put_((yi[inside], xi[inside]), w[inside], accumulate=True)
    return (kernel / kernel.sum()).float()


def gaussian_kernel(size: int, variance: float) -> torch.Tensor:
    """The course's Gaussian blur: ``exp(-(x² + y²) / (2 variance))`` on a centred odd grid, summing to one."""
    size = _check_kernel_size(size)
    variance = _check_finite("variance", variance)
    if variance <= 0:
        raise ValueError(f"variance must be positive, got {variance}")
    ax = torch.linspace(-(size - 1) / 2, (size - 1) / 2, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    kernel = torch.exp(-(xx**2 + yy**2) / (2 * variance))
    return (kernel / kernel.sum()).float()


def shake_kernel(size: int, seed: int, length: float | None = None) -> torch.Tensor:
    """A curved camera-shake PSF: a random trajectory with inertia (a hand's tremor during the exposure), of
    extent ``length`` pixels (default ``0.8 size``), splatted bilinearly on a ``size`` × ``size`` grid with its
    centroid at the centre, summing to one. ``seed`` fixes the trajectory."""
    size = _check_kernel_size(size)
    rng = np.random.default_rng(seed)
    steps = 64
    velocity = rng.normal(size=2)
    points = [np.zeros(2)]
    for _ in range(steps - 1):  # the direction drifts: a smooth, curved path (Boracchi and Foi's model, simplified)
        velocity = velocity / max(np.linalg.norm(velocity), 1e-9) + 0.25 * rng.normal(size=2)
        points.append(points[-1] + velocity / max(np.linalg.norm(velocity), 1e-9))
    path = np.array(points)
    extent = max(np.ptp(path, axis=0).max(), 1e-9)
    target = 0.8 * size if length is None else float(length)
    path = path * min(target, size - 2) / extent  # as wide as asked, inside the kernel
    path = path - path.mean(axis=0) + (size - 1) / 2
    kernel = np.zeros((size, size))
    dense = np.concatenate([np.linspace(a, b, 8, endpoint=False) for a, b in zip(path[:-1], path[1:])])
    x0, y0 = np.floor(dense[:, 0]).astype(int), np.floor(dense[:, 1]).astype(int)
    fx, fy = dense[:, 0] - x0, dense[:, 1] - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = np.clip(x0 + dx, 0, size - 1), np.clip(y0 + dy, 0, size - 1)
        np.add.at(kernel, (yi, xi), w)
    return torch.from_numpy(kernel / kernel.sum()).float()


def drawing_to_kernel(drawing: np.ndarray, size: int) -> np.ndarray:
    """A drawing (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, dark or opaque strokes on a light or transparent
    ground, as a ``size`` × ``size`` PSF of its ink (area-averaged; not yet normalised)."""
    size = _check_kernel_size(size)
    a = np.asarray(drawing, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"a drawing is a grey, RGB or RGBA image, got shape {tuple(np.shape(drawing))}")
    scale = 255.0 if a.max() > 1 else 1.0
    grey = a[..., :3].mean(axis=2) / scale if a.shape[2] >= 3 else a[..., 0] / scale
    alpha = a[..., 3] / scale if a.shape[2] == 4 else np.ones(a.shape[:2])
    ink = np.clip(alpha * (1.0 - grey), 0.0, 1.0)  # dark and opaque is ink; white or transparent is not
    h, w = ink.shape
    rows = np.minimum((np.arange(h) * size) // h, size - 1)  # each pixel's cell in the size × size grid
    cols = np.minimum((np.arange(w) * size) // w, size - 1)
    out = np.zeros((size, size))
    np.add.at(out, (rows[:, None], cols[None, :]), ink)
    counts = np.zeros((size, size))
    np.add.at(counts, (rows[:, None], cols[None, :]), 1.0)
    return out / np.maximum(counts, 1.0)


def encode_drawn(kernel: np.ndarray) -> str:
    """A PSF (k, k) ≥ 0 as a short URL-safe code: 8-bit levels (relative to its peak), zlib, base64url."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or not np.isfinite(k).all() or (k < 0).any():
        raise ValueError("a drawn kernel is a square, odd-sided array of non-negative numbers")
    if k.max() <= 0:
        raise ValueError("the drawn kernel is empty: draw on the pad")
    levels = np.round(k / k.max() * 255).astype(np.uint8)
    return base64.urlsafe_b64encode(zlib.compress(levels.tobytes(), 9)).decode().rstrip("=")


def drawn_kernel(code: str, size: int) -> torch.Tensor:
    """The PSF of a code from ``encode_drawn`` with side ``size``, summing to one; ``ValueError`` says what is wrong."""
    size = _check_kernel_size(size)
    if not isinstance(code, str) or not code:
        raise ValueError("no drawn kernel yet: draw one on the pad")
    if len(code) > 4 * MAX_KERNEL_SIZE**2:
        raise ValueError("the drawn kernel's code is too long")
    try:
        packed = base64.b64decode(code + "=" * (-len(code) % 4), altchars=b"-_", validate=True)
        raw = zlib.decompressobj().decompress(packed, size * size + 1)
    except (ValueError, zlib.error):  # (at most one value more than needed is ever inflated)
        raise ValueError("the drawn kernel's code cannot be read; draw the kernel again") from None
    if len(raw) != size * size:
        raise ValueError(f"the drawn kernel has {len(raw)} values, not {size}×{size}: draw it again at this size")
    kernel = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).reshape(size, size).astype(np.float64))
    if kernel.sum() <= 0:
        raise ValueError("the drawn kernel is empty: draw on the pad")
    return (kernel / kernel.sum()).float()


class Blur:
    """The blur operator ``K``: zero-padded cross-correlation with a fixed odd kernel.

    ``forward`` is the course's ``conv2d(x, kernel, padding="same")``; ``adjoint`` correlates with the
    kernel flipped in both axes, so ``<K x, y> = <x, Kᵀ y>`` holds exactly. Inputs are batches
    ``(N, 1, H, W)``; the result follows the input's device and dtype. ``Blur.per_image`` stacks several
    operators into one that blurs image ``i`` of a batch with kernel ``i`` (a training batch of the general
    regime, handed to a network that knows ``K``).
    """

    def __init__(self, kernel: torch.Tensor, solver: bool = False):
        if kernel.ndim not in (2, 3) or kernel.shape[-1] != kernel.shape[-2] or kernel.shape[-1] % 2 == 0:
            raise ValueError(f"a blur kernel must be square with an odd side, got shape {tuple(kernel.shape)}")
        self.kernel = kernel.detach().clone()  # (k, k), or (N, k, k): one per image
        self.solver = solver  # see ``for_solver``
        self._transfers: dict[tuple, np.ndarray] = {}  # for_solver's kernel transforms, per (image size, flip, dtype)

    def for_solver(self) -> Blur:
        """The same operator for a solver that applies K and Kᵀ dozens of times in one call (the unrolled network's
        data steps): on the CPU, where no gradient is asked of its input, it runs by scipy's single-threaded FFT
        (equal to 1e-5) and keeps the kernel's transform. Measured on a 2-core CPU at 256²: the unrolled network
        cost the same either way on a quiet machine, and less by FFT on a loaded one (1.42 against 1.91 times the
        UNet) and with two requests at once; torch's own FFT was as fast alone, but its thread teams contend when
        two requests run it (2.3 times the time)."""
        return self if self.solver else Blur(self.kernel, solver=True)

    @classmethod
    def per_image(cls, blurs: list[Blur]) -> Blur:
        """One operator for a batch: image ``i`` blurred by ``blurs[i]`` (kernels zero-padded to the largest
        side, which leaves a centred odd kernel's correlation unchanged)."""
        side = max(b.kernel.shape[-1] for b in blurs)
        kernels = []
        for b in blurs:
            pad = (side - b.kernel.shape[-1]) // 2
            kernels.append(F.pad(b.kernel, (pad, pad, pad, pad)))
        return cls(torch.stack(kernels))  # (N, k, k)

    def _weight(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        k = self.kernel.flip(-2, -1) if flip else self.kernel
        k = k.to(device=x.device, dtype=x.dtype)
        return k[:, None] if k.ndim == 3 else k[None, None]  # (N, 1, k, k) or (1, 1, k, k)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected a batch of grey images (N, 1, H, W), got shape {tuple(x.shape)}")
        if self.kernel.ndim == 3 and x.shape[0] != self.kernel.shape[0]:
            raise ValueError(f"this operator has {self.kernel.shape[0]} kernels, one per image; got {x.shape[0]} images")

    def _correlate(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        self._check_input(x)
        if self.kernel.shape[-1] == 1:  # a 1×1 kernel scales: exactly, on every path (the identity stays the identity)
            return x * self._weight(x, flip)
        if self.solver and x.device.type == "cpu" and not x.requires_grad:
            return self._correlate_scipy(x, flip)
        if self.kernel.shape[-1] >= FFT_MIN_SIDE:
            return self._correlate_fft(x, flip)
        weight = self._weight(x, flip)
        if weight.shape[0] == 1:
            return F.conv2d(x, weight, padding="same")
        # One kernel per image: the batch becomes the channels of a grouped correlation.
        n, _, h, w = x.shape
        return F.conv2d(x.reshape(1, n, h, w), weight, padding="same", groups=n).reshape(n, 1, h, w)

    def _correlate_fft(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        # A correlation is a convolution with the flipped kernel; zero-padding both to H + k − 1 makes the circular
        # convolution of the FFT the linear one, whose centre H × W is the "same" correlation.
        n, _, h, w = x.shape
        k = self.kernel.shape[-1]
        kernel = self.kernel if flip else self.kernel.flip(-2, -1)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # no half-precision FFT on the CPU
        kernel = kernel.to(device=x.device, dtype=dtype).reshape(-1, k, k)  # (1 or N, k, k)
        size = (h + k - 1, w + k - 1)
        full = torch.fft.irfft2(torch.fft.rfft2(x[:, 0].to(dtype), s=size) * torch.fft.rfft2(kernel, s=size), s=size)
        c = k // 2
        return full[:, c : c + h, c : c + w].to(x.dtype)[:, None]  # (N, 1, H, W)

    def _correlate_scipy(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        from scipy import fft  # imported on the first solver call, not at the app's start

        n, _, h, w = x.shape
        k = self.kernel.shape[-1]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # as _correlate_fft's
        # any size from H + k − 1 on gives the linear correlation; pocketfft's fast lengths (factors 2, 3, 5)
        # run faster: 270 instead of 264 for 256² and 9×9, 10 % less time
        size = (fft.next_fast_len(h + k - 1, real=True), fft.next_fast_len(w + k - 1, real=True))
        transfer = self._transfers.get((size, flip, dtype))
        if transfer is None:  # the zero-padded product of _correlate_fft, on the larger fast size
            kernels = (self.kernel if flip else self.kernel.flip(-2, -1)).to(dtype).reshape(-1, k, k).numpy()
            transfer = fft.rfft2(kernels, s=size)  # (1 or N, H', W'/2 + 1)
            self._transfers[(size, flip, dtype)] = transfer  # one operator sees one or two image sizes
        full = fft.irfft2(fft.rfft2(x[:, 0].detach().to(dtype).numpy(), s=size) * transfer, s=size)
        c = k // 2
        return torch.from_numpy(np.ascontiguousarray(full[:, c : c + h, c : c + w])).to(x.dtype)[:, None]  # (N, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``K x``."""
        return self._correlate(x, flip=False)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Kᵀ y``."""
        return self._correlate(y, flip=True)

    __call__ = forward


class SceneBlur:
    """``K`` for a scene that goes on past the frame (a photograph): the unknown ``x`` is the scene on a canvas
    ``margin`` pixels larger on each side, and ``K x`` is its blur seen through the frame, the zero-padded blur of
    the canvas cropped to the frame's centre. For ``margin`` ≥ the kernel's half side that crop is exactly what a
    camera records (no zero padding reaches it); ``adjoint`` embeds the frame in the canvas and correlates with
    the flipped kernel, so ``<K x, y> = <x, Kᵀ y>`` holds. A solver starts from ``start(y_delta)``, the measurement
    extended by replicating its edge, and ``crop`` takes the frame back out of its answer."""

    EXTRA = 4  # pixels of canvas beyond the kernel's half side (``around``)

    def __init__(self, blur: Blur, margin: int):
        if margin < blur.kernel.shape[-1] // 2:
            raise ValueError(f"a scene's margin must be at least the kernel's half side ({blur.kernel.shape[-1] // 2})")
        self.blur, self.margin = blur, int(margin)

    @classmethod
    def around(cls, blur: Blur) -> SceneBlur:
        """The scene of ``blur``: a canvas the kernel's half side and ``EXTRA`` pixels wider on each side."""
        return cls(blur, blur.kernel.shape[-1] // 2 + cls.EXTRA)

    @property
    def kernel(self) -> torch.Tensor:
        return self.blur.kernel

    def for_solver(self) -> SceneBlur:
        return SceneBlur(self.blur.for_solver(), self.margin)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The frame (N, 1, H, W) of a canvas (N, 1, H + 2 margin, W + 2 margin)."""
        m = self.margin
        return x[..., m : x.shape[-2] - m, m : x.shape[-1] - m]

    def start(self, y_delta: torch.Tensor) -> torch.Tensor:
        """A first canvas: ``y_delta`` extended by replicating its edge."""
        m = self.margin
        return F.pad(y_delta, (m, m, m, m), mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crop(self.blur.forward(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        m = self.margin
        return self.blur.adjoint(F.pad(y, (m, m, m, m)))

    __call__ = forward


@dataclass(frozen=True)
class OperatorSpec:
    """A blur described by plain values, as the CLI flags and the UI controls give it. Each field says what it is
    (``spec.Param``): validation, the URL, the widgets, the API, the CLI flags and the training ranges follow."""

    blur: str = param("motion", "Blur", str, choices=ALL_BLURS, flags=("--blur", "--operator"), train=BLUR_TYPES,
                      train_name="blurs")  # fmt: skip
    kernel_size: int = param(9, "Kernel size", int, low=1, high=MAX_APP_KERNEL, odd=True, step=2, unit="px", url="size",
                             train=(3, 15), train_flags=("--kernel-sizes",))  # fmt: skip  (odd side of the kernel)
    angle: float = param(20.0, "Motion angle", float, low=-360, high=360, slider_low=0, slider_high=180, step=1, unit="°",
                         applies_to=("motion",), train=(0.0, 180.0), train_flags=("--angles",),
                         info="ippy (the lecture's) changes every few degrees; centered with every degree")  # fmt: skip
    variance: float = param(1.0, "Gaussian variance", float, low=0.05, high=20.0, slider_low=0.1, step=0.1, unit="px²",
                            applies_to=("gaussian",), train=(0.5, 4.0), train_flags=("--variances",))  # fmt: skip
    kernel_style: str = param("ippy", "Kernel style", str, choices=KERNEL_STYLES, url="style", applies_to=("motion",),
                              train=KERNEL_STYLES, train_name="kernel_styles", train_flags=("--kernel-styles", "--styles"),
                              info="ippy: the course library's kernel; centered: a symmetric segment")  # fmt: skip
    drawn: str = param("", "Drawn PSF", str, url="psf", applies_to=(DRAWN,), widget=False)  # encode_drawn's code

    def validated(self) -> OperatorSpec:
        """A checked copy (every field against its ``Param``; a drawing only counts while it is the blur, and must
        decode); ``ValueError`` says what is allowed."""
        spec = replace(validated(self), drawn=self.drawn if self.blur == DRAWN else "")
        if spec.blur == DRAWN:
            spec.kernel()
        return spec

    def kernel(self) -> torch.Tensor:
        """The kernel this spec describes; raises ``ValueError`` with a readable message when invalid."""
        if self.blur == "motion":
            return motion_kernel(self.kernel_size, self.angle, self.kernel_style)
        if self.blur == "gaussian":
            return gaussian_kernel(self.kernel_size, self.variance)
        if self.blur == DRAWN:
            return drawn_kernel(self.drawn, self.kernel_size)
        raise ValueError(f"unknown blur {self.blur!r}; choose one of {', '.join(ALL_BLURS)}")

    def build(self) -> Blur:
        """The operator ``K``."""
        return Blur(self.kernel())

    def describe(self) -> str:
        """A short caption such as ``motion 9 @ 20° (ippy)``; a kernel of size 1 is the identity, whatever its blur."""
        if self.is_identity():
            return "identity (kernel size 1)"
        if self.blur == "gaussian":
            return f"gaussian {self.kernel_size}, variance {self.variance:g}"
        if self.blur == DRAWN:
            return f"drawn {self.kernel_size}×{self.kernel_size}"
        return f"motion {self.kernel_size} @ {self.angle:g}° ({self.kernel_style})"

    def is_identity(self) -> bool:
        """A 1×1 kernel: every blur of size 1 is the single tap 1, the measurement is the image (plus noise)."""
        return self.kernel_size == 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> OperatorSpec:
        """The spec a manifest or URL records (manifests before the rename say ``style`` for ``kernel_style``)."""
        values = dict(values)
        if "style" in values:
            values["kernel_style"] = values.pop("style")
        return cls(**{f: values[f] for f in OPERATOR_FIELDS if f in values})


LECTURE_OPERATOR = OperatorSpec("motion", 9, 20.0, 1.0, "ippy")
LECTURE_NOISE = 0.01


OPERATOR_FIELDS = tuple(f.name for f in fields(OperatorSpec))  # blur, kernel_size, angle, variance, kernel_style, drawn
