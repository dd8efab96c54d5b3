"""The pixel-driven parallel-beam projector, matrix-free: ``A x`` and ``Aᵀ y`` computed on the fly, angle by angle.

Each pixel is a unit square; seen at angle θ its projection is a trapezoid (two boxes of widths ``|cos θ|`` and
``|sin θ|`` convolved), shared among the three detector bins around the point where its centre lands,
``t = x cos θ − y sin θ`` (``x``, ``y`` the pixel's offsets from the centre pixel ``(n // 2, n // 2)``). With
``f`` the centre's offset from the nearest bin, the two outer bins get the footprint's tails beyond ±½ of that
bin, ``T(½ ± f)``, and the middle one the rest: ``T(v) = (max(s − v, 0)² − max(|d| − v, 0)²) / (2ab)``,
``s = (a+b)/2``, ``d = (a−b)/2`` for the box widths ``a``, ``b`` (the exact strip integral of a square pixel;
a plain two-bin linear splat aliases, and the ramp filter amplifies it: 2.5 dB of FBP lost at 60 angles).

Nothing is stored per geometry: the weights of one image row at one angle are computed (vectorised), used and
dropped, so memory is O(n²) per image whatever the number of angles, where the stored sparse matrix grew as
n²·angles (464 MB at 256², 180 angles; about 1.8 GB at 512²). The forward and the adjoint compute the weights by
the same float32 expression, so ``Aᵀ`` is the exact adjoint of ``A`` (``<A x, y> = <x, Aᵀ y>`` to rounding in
float64). On the CPU the loops are numba kernels (parallel over angles for ``A``, over image rows for ``Aᵀ``:
no two threads write the same value); on other devices the same expression in torch, a chunk of angles at a time.
``system_matrices`` builds the old stored form, for tests and ``bench`` to compare against.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import threading
import warnings

import numpy as np
import torch

# numba is a requirement; without it (a platform with no wheel) the torch path runs on the CPU too. Its kernels
# (``ct_kernels``) are imported on first use: the app starts without importing numba.
HAS_NUMBA = importlib.util.find_spec("numba") is not None  # found; ``_kernels`` also checks that it imports

MIN_WIDTH = 1e-2  # a footprint box is never narrower (at 0° and 90° the trapezoid is 1.01 wide, not 1)
# A projection row holds ``bins`` detector bins between guard bins: one below and two above, because a corner
# pixel's footprint can reach one bin past the last (at angles near 3π/4 for some even sizes); the guards are
# dropped, as the stored matrix dropped those entries.
ROW = 3  # guard bins per row: a row is bins + ROW long and bin b sits at b + 1
TORCH_CHUNK_ELEMENTS = 1 << 22  # the torch path's working set: angles × pixels per chunk (16 MB per float32 array)

# One kernel call at a time: numba's fallback threading layer (workqueue, where no OpenMP or TBB is found) is not
# safe for calls from two threads at once, and each call already uses every core.
_KERNEL_LOCK = threading.Lock()


def footprint_widths(cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per angle, the trapezoid's ``s = (a+b)/2``, ``|d| = |a−b|/2`` and ``1 / (2ab)`` (float64), from the box
    widths ``a = |cos θ|`` and ``b = |sin θ|``."""
    a = np.maximum(np.abs(cos), MIN_WIDTH)
    b = np.maximum(np.abs(sin), MIN_WIDTH)
    return (a + b) / 2, np.abs(a - b) / 2, 1 / (2 * a * b)


class Geometry:
    """What the kernels need for the angles ``theta`` and ``size``² images: float64 tables of the angles (tiny).

    An angle θ whose mirror π − θ is also in ``theta`` gets the exact negation of its cosine and the same sine
    (one rounding away from ``np.cos``): pixel (r, 2·c0 − c) then lands at π − θ bit for bit where (r, c) lands at
    θ, and the CPU kernels compute one row of weights for both (``leaders``, ``partners``).
    """

    def __init__(self, theta: np.ndarray, size: int, bins: int):
        self.size, self.bins, self.n_angles = size, bins, len(theta)
        self.cos = np.cos(theta)
        self.sin = np.sin(theta)
        self.partners = np.full(len(theta), -1, dtype=np.int64)  # k → the index of π − θ_k, or −1
        index = {round(float(t), 9): k for k, t in enumerate(theta)}
        for k, t in enumerate(theta):
            j = index.get(round(math.pi - float(t), 9), -1)
            if j > k and j not in self.partners and self.partners[k] < 0:  # each angle paired once (repeats stay single)
                self.partners[k] = j
                self.cos[j], self.sin[j] = -self.cos[k], self.sin[k]
        led = set(self.partners[self.partners >= 0].tolist())
        self.leaders = np.array([k for k in range(len(theta)) if k not in led], dtype=np.int64)
        self.s, self.d, self.inv = footprint_widths(self.cos, self.sin)  # the same bits for θ and π − θ
        self.centre = size // 2
        self.centre_bin = bins // 2

    @property
    def nbytes(self) -> int:
        """What the geometry holds: its tables of the angles (what an operator costs in memory)."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


_KERNELS: list = []  # the imported ``ct_kernels`` module, or None where numba is found but does not import


def _kernels():
    if not _KERNELS:
        try:
            _KERNELS.append(importlib.import_module("recon_demo.physics.ct_kernels"))
        except ImportError as err:  # a broken numba install: the torch path serves the CPU too
            warnings.warn(f"numba does not import ({err}); the CT projector runs in torch", RuntimeWarning, stacklevel=2)
            _KERNELS.append(None)
    return _KERNELS[0]


def _numba_project(x: np.ndarray, g: Geometry) -> np.ndarray:
    out = np.zeros((x.shape[0], g.n_angles, g.bins + ROW), dtype=x.dtype)
    with _KERNEL_LOCK:
        _kernels().project(x, g.cos, g.sin, g.s, g.d, g.inv, g.centre, g.centre_bin, g.leaders, g.partners, out)
    return out[..., 1 : g.bins + 1]


def _numba_backproject(y: np.ndarray, g: Geometry) -> np.ndarray:
    padded = np.zeros((y.shape[0], g.n_angles, g.bins + ROW), dtype=y.dtype)
    padded[..., 1 : g.bins + 1] = y
    out = np.zeros((y.shape[0], g.size, g.size), dtype=y.dtype)
    with _KERNEL_LOCK:
        _kernels().backproject(padded, g.cos, g.sin, g.s, g.d, g.inv, g.centre, g.centre_bin, g.leaders, g.partners, out)
    return out


def _torch_weights(g: Geometry, angles: slice, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The kernels' expression for a chunk of angles: flat sinogram indices ``(3, k, n, n)`` (into rows of
    ``bins + ROW``) and the weights of the bins below, at and above each pixel's."""
    n, c0 = g.size, g.centre
    ct = torch.from_numpy(g.cos[angles]).to(device)
    st = torch.from_numpy(g.sin[angles]).to(device)
    offsets = torch.arange(n, device=device, dtype=torch.float64) - c0
    base = (-offsets[None, :] * st[:, None]).float()[:, :, None]  # (k, n, 1): the row's term, rounded once
    p = offsets.float()[None, None, :] * ct.float()[:, None, None] + base  # (k, n, n)
    m = torch.floor(p + 0.5)
    f = p - m
    s, d, inv = (torch.from_numpy(t[angles]).to(device).float()[:, None, None] for t in (g.s, g.d, g.inv))
    a1, b1 = (s - (0.5 + f)).clamp_min(0), (d - (0.5 + f)).clamp_min(0)
    a2, b2 = (s - (0.5 - f)).clamp_min(0), (d - (0.5 - f)).clamp_min(0)
    lo = (a1 * a1 - b1 * b1) * inv
    hi = (a2 * a2 - b2 * b2) * inv
    row = (torch.arange(ct.shape[0], device=device) * (g.bins + ROW))[:, None, None]
    centre = m.long() + g.centre_bin + 1 + row  # (k, n, n)
    return torch.stack((centre - 1, centre, centre + 1)), [lo, 1 - lo - hi, hi]


def _chunks(g: Geometry) -> list[slice]:
    per = max(1, TORCH_CHUNK_ELEMENTS // (g.size * g.size))
    return [slice(k, min(k + per, g.n_angles)) for k in range(0, g.n_angles, per)]


def _torch_project(x: torch.Tensor, g: Geometry) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)  # (N, n²)
    rows = []
    for angles in _chunks(g):
        index, weights = _torch_weights(g, angles, x.device)
        k = index.shape[1]
        out = torch.zeros(x.shape[0], k * (g.bins + ROW), device=x.device, dtype=x.dtype)
        for j, w in zip(index, weights):
            contrib = flat[:, None, :] * w.reshape(k, -1).to(x.dtype)  # (N, k, n²)
            out.scatter_add_(1, j.reshape(1, -1).expand(x.shape[0], -1), contrib.reshape(x.shape[0], -1))
        rows.append(out.reshape(x.shape[0], k, g.bins + ROW))
    return torch.cat(rows, 1)[..., 1 : g.bins + 1]


def _torch_backproject(y: torch.Tensor, g: Geometry) -> torch.Tensor:
    padded = torch.nn.functional.pad(y, (1, ROW - 1)).reshape(y.shape[0], -1)  # (N, A · (bins + ROW))
    out = torch.zeros(y.shape[0], g.size * g.size, device=y.device, dtype=y.dtype)
    for angles in _chunks(g):
        index, weights = _torch_weights(g, angles, y.device)
        part = padded[:, angles.start * (g.bins + ROW) : angles.stop * (g.bins + ROW)]
        k = index.shape[1]
        for j, w in zip(index, weights):
            gathered = part[:, j.reshape(-1)].reshape(y.shape[0], k, -1)  # (N, k, n²)
            out += (gathered * w.reshape(k, -1).to(y.dtype)).sum(1)
    return out.reshape(y.shape[0], g.size, g.size)


def _uses_numba(t: torch.Tensor, backend: str) -> bool:
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be auto, numba or torch, not {backend!r}")
    available = t.device.type == "cpu" and HAS_NUMBA and _kernels() is not None
    if backend == "numba" and not available:
        raise ValueError("the numba projector runs on the CPU, with numba installed")
    return available and backend != "torch"


def _as_kernel_input(t: torch.Tensor) -> torch.Tensor:
    """float32 or float64 (half precisions computed in float32), detached and contiguous."""
    t = t.detach()
    return (t if t.dtype in (torch.float32, torch.float64) else t.float()).contiguous()


def _run(t: torch.Tensor, g: Geometry, backend: str, by_numba, by_torch) -> torch.Tensor:
    """One direction on the path ``backend`` names, in ``t``'s dtype and on its device."""
    kernel_input = _as_kernel_input(t)
    if _uses_numba(kernel_input, backend):
        return torch.from_numpy(by_numba(kernel_input.numpy(), g)).to(t.dtype)
    return by_torch(kernel_input, g).to(t.dtype)


def project(x: torch.Tensor, g: Geometry, backend: str = "auto") -> torch.Tensor:
    """``A x`` for images ``(N, n, n)`` → sinograms ``(N, angles, bins)``, in ``x``'s dtype and on its device."""
    return _run(x, g, backend, _numba_project, _torch_project)


def backproject(y: torch.Tensor, g: Geometry, backend: str = "auto") -> torch.Tensor:
    """``Aᵀ y`` for sinograms ``(N, angles, bins)`` → images ``(N, n, n)``, in ``y``'s dtype and on its device."""
    return _run(y, g, backend, _numba_backproject, _torch_backproject)


def ready() -> bool:
    """Whether the CPU kernels are compiled (or loaded from numba's disk cache) in this process."""
    if not HAS_NUMBA or _KERNELS == [None]:  # the torch path: nothing to compile
        return True
    return bool(_KERNELS) and all(k.signatures for k in (_KERNELS[0].project, _KERNELS[0].backproject))


def warm_up() -> None:
    """Compile the CPU kernels for float32 and float64 now (a few seconds, once: numba caches them on disk)."""
    if not HAS_NUMBA or _kernels() is None:
        return
    g = Geometry(np.arange(2) * math.pi / 2, 8, 12)
    for dtype in (np.float32, np.float64):
        _numba_backproject(_numba_project(np.zeros((1, 8, 8), dtype), g), g)


def system_matrices(theta: np.ndarray, size: int, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ``A`` stored, as the lab did before: float32 CSR matrices ``(angles · bins, size²)`` and its
    transpose, from the trapezoid's CDF in float64 geometry. For comparison only (tests, ``bench``): it takes
    size² · angles · 2.4 entries of 8 bytes, twice."""

    def cdf(u: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # the footprint's mass below u
        s, d = (a + b) / 2, (a - b) / 2
        return sum(sign * (u + o).clamp_min(0) ** 2 for sign, o in ((1, s), (-1, d), (-1, -d), (1, -s))) / (2 * a * b)

    theta_t = torch.from_numpy(np.asarray(theta, dtype=np.float64))
    c = size // 2
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    x = (cols - c).flatten().double()  # (size²,) column offset
    y = (rows - c).flatten().double()  # (size²,) row offset
    p = x[:, None] * torch.cos(theta_t)[None] - y[:, None] * torch.sin(theta_t)[None] + bins // 2  # (size², A)
    a = torch.cos(theta_t).abs().clamp_min(MIN_WIDTH).float()[None, :, None]  # (1, A, 1)
    b = torch.sin(theta_t).abs().clamp_min(MIN_WIDTH).float()[None, :, None]
    k = torch.floor(p + 0.5)[..., None] + torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)  # (size², A, 3)
    u = (k - p[..., None]).float()
    w = cdf(u + 0.5, a, b) - cdf(u - 0.5, a, b)
    k = k.long()
    keep = (w > 0) & (k >= 0) & (k < bins)
    col = (torch.arange(len(theta_t))[None, :, None] * bins + k)[keep]
    crow = torch.zeros(size * size + 1, dtype=torch.long)
    crow[1:] = keep.flatten(1).sum(1).cumsum(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        at = torch.sparse_csr_tensor(crow.int(), col.int(), w[keep], (size * size, len(theta_t) * bins))
        return at.t().to_sparse_csr(), at
