"""Blur kernels, and the table of blur kinds: what a blur is, in one place.

Kernel builders are pure functions (``motion_kernel``, ``gaussian_kernel``, ``shake_kernel``, the drawn PSF's
``drawn_kernel``), each returning an odd square float32 tensor summing to one. ``BLUR_KINDS`` is the table of the
blurs a person can pick: one ``BlurKind`` row per kind, with its kernel builder, its caption, the fields of its text
form (``motion:9:20:ippy``) and whether the kernel estimate searches it. Everything that asks "which blurs exist"
(the spec's validation, the widgets, the URL, the API, the CLIs, ``restore --kernel``, the "trained for" badge, the
reproduce command) reads the table; a new kind is its builder and its row (``register``), plus a spec field if it
needs a new number (``physics.spec.Param``, ``applies_to`` naming the kind).
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recon_demo.validation import check_finite

KERNEL_STYLES = ("ippy", "centered")
MAX_KERNEL_SIZE = 63  # the kernel builders' largest side
MAX_APP_KERNEL = 31  # what a person may ask for (app, API, CLIs): beyond 31 a 256² image is mostly border


def check_kernel_size(size: int) -> int:
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
    size = check_kernel_size(size)
    angle_deg = check_finite("angle", angle_deg)
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
    size = check_kernel_size(size)
    variance = check_finite("variance", variance)
    if variance <= 0:
        raise ValueError(f"variance must be positive, got {variance}")
    ax = torch.linspace(-(size - 1) / 2, (size - 1) / 2, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    kernel = torch.exp(-(xx**2 + yy**2) / (2 * variance))
    return (kernel / kernel.sum()).float()


def defocus_kernel(size: int, radius: float) -> torch.Tensor:
    """An out-of-focus lens's PSF: a uniform disk of ``radius`` pixels centred on an odd ``size`` × ``size`` grid,
    its edge anti-aliased (each pixel weighted by the share of its 8 × 8 sub-samples inside), summing to one."""
    size = check_kernel_size(size)
    radius = check_finite("defocus radius", radius)
    if radius <= 0:
        raise ValueError(f"a defocus radius must be positive, got {radius:g}")
    if size < defocus_size(radius):
        raise ValueError(f"a defocus of radius {radius:g} needs a kernel of at least {defocus_size(radius)} px, got {size}")
    sub = (torch.arange(size * 8, dtype=torch.float64) + 0.5) / 8 - size / 2  # sub-sample centres, the kernel's centre 0
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2 <= radius**2).double()
    kernel = inside.reshape(size, 8, size, 8).mean(dim=(1, 3))
    return (kernel / kernel.sum()).float()


def defocus_size(radius: float) -> int:
    """The smallest odd side that holds a disk of ``radius`` around the centre pixel's centre: 2 ⌈radius − ½⌉ + 1."""
    return 2 * math.ceil(radius - 0.5) + 1


def shake_kernel(size: int, seed: int, length: float | None = None) -> torch.Tensor:
    """A curved camera-shake PSF: a random trajectory with inertia (a hand's tremor during the exposure), of
    extent ``length`` pixels (default ``0.8 size``), splatted bilinearly on a ``size`` × ``size`` grid with its
    centroid at the centre, summing to one. ``seed`` fixes the trajectory."""
    size = check_kernel_size(size)
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
    size = check_kernel_size(size)
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
    size = check_kernel_size(size)
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


# ------------------------------------------------------------------------------------------------ the blur kinds


@dataclass(frozen=True)
class BlurKind:
    """One kind of blur: a row of ``BLUR_KINDS``. ``spec`` below is an ``OperatorSpec`` (or a subclass of it)."""

    name: str  # what the spec's ``blur`` field holds, the URL and the CLIs say: "motion"
    build: Callable[[Any], torch.Tensor]  # spec → its kernel (k, k), summing to one
    caption: Callable[[Any], str]  # spec → "motion 9 @ 20° (ippy)"; the identity is said by the spec itself
    text_fields: tuple[str, ...] = ()  # the fields after the size in the text form, in order ("angle", "kernel_style")
    optional: int = 0  # how many of the last text fields may be left out (they take the spec's default, or ``defaults``)
    brief: Callable[[Any], str] | None = None  # a shorter caption for badges ("motion 9 @ 20°"); None: ``caption``
    estimated: bool = False  # whether the kernel estimate (``methods.estimate``) searches this kind
    trained: bool = False  # whether the general regime trains on it by default (``OperatorRanges().blurs``)
    sharp: Callable[[Any], bool] | None = None  # for an estimated kind: whether its kernel is too small to matter
    size_of: Callable[[dict], int] | None = None  # a kind whose side follows from its fields: its text form has no SIZE

    def written(self) -> tuple[str, ...]:
        """The spec's fields its text form writes after the kind, in order: the size (unless ``size_of`` derives it),
        then ``text_fields``."""
        return (*(() if self.size_of else ("kernel_size",)), *self.text_fields)

    def grammar(self) -> str:
        """The kind's text form for messages: ``motion:SIZE:ANGLE[:KERNEL_STYLE]``."""
        names = [{"kernel_size": "SIZE"}.get(f, f.upper()) for f in self.written()]
        required, extra = names[: len(names) - self.optional], names[len(names) - self.optional :]
        return ":".join([self.name, *required]) + "".join(f"[:{n}]" for n in extra)


class _KindNames(Sequence):
    """The names of the registered kinds, read live from the table (a ``Param``'s choices, the widgets' radio)."""

    def __getitem__(self, i):
        return tuple(BLUR_KINDS)[i]

    def __len__(self) -> int:
        return len(BLUR_KINDS)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _KindNames)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self):  # a copy or a pickle is the plain tuple of the names at that moment
        return tuple, (tuple(self),)


BLUR_KINDS: dict[str, BlurKind] = {}
BLUR_NAMES: Sequence[str] = _KindNames()  # every registered kind, in the order registered


def register(kind: BlurKind) -> BlurKind:
    """Add a kind to the table (a new name; a kind is never silently replaced)."""
    if kind.name in BLUR_KINDS:
        raise ValueError(f"a blur kind {kind.name!r} is registered already")
    BLUR_KINDS[kind.name] = kind
    return kind


def blur_kind(name: str) -> BlurKind:
    """The row of ``name``; ``ValueError`` lists the kinds there are."""
    if name not in BLUR_KINDS:
        raise ValueError(f"unknown blur {name!r}; choose one of {', '.join(BLUR_KINDS)}")
    return BLUR_KINDS[name]


def estimated_kinds() -> tuple[str, ...]:
    """The kinds the kernel estimate searches."""
    return tuple(name for name, kind in BLUR_KINDS.items() if kind.estimated)


def text_forms() -> str:
    """Every kind's text form, for messages and help: ``motion:SIZE:ANGLE[:KERNEL_STYLE], gaussian:SIZE:VARIANCE, …``."""
    return ", ".join(kind.grammar() for kind in BLUR_KINDS.values())


def trained_kinds() -> tuple[str, ...]:
    """The kinds the general regime draws from by default."""
    return tuple(name for name, kind in BLUR_KINDS.items() if kind.trained)


def _motion_caption(s) -> str:
    return f"motion {s.kernel_size} @ {s.angle:g}° ({s.kernel_style})"


register(BlurKind("motion", lambda s: motion_kernel(s.kernel_size, s.angle, s.kernel_style), _motion_caption,
                  text_fields=("angle", "kernel_style"), optional=1, brief=lambda s: f"motion {s.kernel_size} @ {s.angle:g}°",
                  estimated=True, trained=True, sharp=lambda s: s.kernel_size <= 3))  # fmt: skip
register(BlurKind("gaussian", lambda s: gaussian_kernel(s.kernel_size, s.variance),
                  lambda s: f"gaussian {s.kernel_size}, variance {s.variance:g}", text_fields=("variance",),
                  estimated=True, trained=True, sharp=lambda s: s.variance < 0.3))  # fmt: skip
register(BlurKind("defocus", lambda s: defocus_kernel(s.kernel_size, s.radius), lambda s: f"defocus, radius {s.radius:g} px",
                  text_fields=("radius",), size_of=lambda values: defocus_size(float(values["radius"]))))  # fmt: skip
register(BlurKind("drawn", lambda s: drawn_kernel(s.drawn, s.kernel_size), lambda s: f"drawn {s.kernel_size}×{s.kernel_size}",
                  text_fields=("drawn",)))  # fmt: skip
DRAWN = "drawn"  # a PSF a person drew, carried as a compact code (``encode_drawn``)
