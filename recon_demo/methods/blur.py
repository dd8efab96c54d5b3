"""Classical deconvolution baselines: what a network has to beat.

Wiener and Richardson-Lucy are scikit-image's; Wiener is written out from its ``restoration.wiener`` with
numpy's FFT and RL imported on first use, since ``skimage.restoration`` imports ``scipy.signal`` and
``scipy.fft`` (0.9 s of the app's start; ``tests/test_methods_blur.py`` checks Wiener against it). They convolve
(``scipy.signal.convolve`` semantics), while our ``K`` correlates, so they receive the kernel flipped in both
axes. Both assume a blur without borders (Wiener is periodic), so the measurement is first extended by
replicating its edge over two kernel widths and the result cropped back: measured on camera at the lecture
setting, this lifts Wiener from 21.3 to 25.2 dB and Richardson-Lucy from 17.1 to 24.8 dB. TV deconvolution is
a proximal-gradient (FISTA) loop on our own operator ``K`` (``Blur.for_solver``: scipy's FFT) with scikit-image's
Chambolle TV denoiser as the proximal step (``tv_denoise``, the same numpy operations, checked equal): 52 ms
instead of 80 ms at 256² here. Wiener and the Chambolle step stay written out: importing ``skimage.restoration``
(it imports ``scipy.signal``) made the app's first reconstruction 0.7-1.0 s slower even when loaded in the
background as the server starts (``docs/performance.md``), over the 0.3 s this project allows. ``input`` is the measurement itself, clamped to [0, 1], as the lecture's tables
show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recon_demo.physics.blur import Blur, SceneBlur


def measurement(y_delta: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The measurement, clamped to [0, 1]: the 'no reconstruction' row of a results table."""
    return np.clip(y_delta, 0, 1)


def _edge_padded(y_delta: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, slice]:
    pad = 2 * kernel.shape[0]
    return np.pad(y_delta.astype(np.float64), pad, mode="edge"), slice(pad, -pad)


def wiener_deconvolution(y_delta: np.ndarray, kernel: np.ndarray, balance: float = 0.02) -> np.ndarray:
    """Wiener-Hunt deconvolution; ``balance`` trades noise amplification against sharpness."""
    padded, inner = _edge_padded(y_delta, kernel)
    return wiener_hunt(padded, np.ascontiguousarray(kernel[::-1, ::-1]), balance)[inner, inner]


LAPLACIAN = np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])  # Wiener-Hunt's regulariser


def _transfer_function(impulse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """scikit-image's ``uft.ir2tf`` in 2-D: the impulse response zero-padded to ``shape``, its centre rolled to the
    origin, and its real FFT."""
    padded = np.zeros(shape)
    h, w = impulse.shape
    padded[:h, :w] = impulse
    padded = np.roll(np.roll(padded, -(h // 2), axis=0), -(w // 2), axis=1)
    return np.fft.rfft2(padded)


def wiener_hunt(image: np.ndarray, psf: np.ndarray, balance: float) -> np.ndarray:
    """scikit-image's ``restoration.wiener(image, psf, balance, clip=False)`` for a real 2-D image (its Laplacian
    prior, unitary FFTs), with numpy's FFT where it uses scipy's: equal to 1e-12 (``tests/test_methods_blur.py``)."""
    image = image.astype(np.float64, copy=False)
    reg = _transfer_function(LAPLACIAN, image.shape).real
    trans_func = _transfer_function(psf.real.astype(np.float64, copy=False), image.shape)
    wiener_filter = np.conj(trans_func) / (np.abs(trans_func) ** 2 + balance * np.abs(reg) ** 2)
    return np.fft.irfft2(wiener_filter * np.fft.rfft2(image, norm="ortho"), s=image.shape, norm="ortho")


def richardson_lucy_deconvolution(y_delta: np.ndarray, kernel: np.ndarray, num_iter: int = 10) -> np.ndarray:
    """Richardson-Lucy iterations (a Poisson maximum-likelihood method; needs a non-negative image)."""
    from skimage.restoration import richardson_lucy

    padded, inner = _edge_padded(y_delta, kernel)
    psf = np.ascontiguousarray(kernel[::-1, ::-1])
    return richardson_lucy(np.clip(padded, 1e-6, None), psf, num_iter=num_iter, clip=False)[inner, inner]


def tv_deconvolution(y_delta: np.ndarray, kernel: np.ndarray, weight: float = 0.002, num_iter: int = 40) -> np.ndarray:
    """``argmin_x ½||K x − y_delta||² + weight · TV(x)`` by FISTA with a Chambolle proximal step (``tv_denoise``),
    ``K`` our zero-padded correlation by scipy's FFT (``Blur.for_solver``); float32 throughout."""
    y = np.asarray(y_delta, dtype=np.float32)
    K = Blur(torch.from_numpy(np.asarray(kernel, dtype=np.float32))).for_solver()
    return _fista_tv(y, K, y.copy(), weight, num_iter)


def tv_scene_deconvolution(y_delta: np.ndarray, kernel: np.ndarray, weight: float = 0.002, num_iter: int = 40) -> np.ndarray:
    """``tv_deconvolution`` for a scene that goes on past the frame: the unknown is a canvas larger than the
    measurement and ``K`` its blur seen through the frame (``physics.blur.SceneBlur``); the frame is returned."""
    y = np.asarray(y_delta, dtype=np.float32)
    blur = Blur(torch.from_numpy(np.asarray(kernel, dtype=np.float32)))
    K = SceneBlur.around(blur).for_solver()
    start = K.start(torch.from_numpy(y)[None, None])[0, 0].numpy()
    x = _fista_tv(y, K, start, weight, num_iter)
    return K.crop(torch.from_numpy(x)[None, None])[0, 0].numpy()


def _fista_tv(y: np.ndarray, K, x: np.ndarray, weight: float, num_iter: int) -> np.ndarray:
    def apply(op, v: np.ndarray) -> np.ndarray:  # (H, W) numpy through the operator's (1, 1, H, W) tensors
        return op(torch.from_numpy(v)[None, None])[0, 0].numpy()

    z, t = x.copy(), 1.0
    step = 1.0  # ||K|| ≤ 1 for a non-negative kernel summing to one, so a unit step is safe
    for _ in range(num_iter):
        grad = apply(K.adjoint, apply(K.forward, z) - y)
        x_next = tv_denoise(z - step * grad, weight=step * weight)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        z = x_next + np.float32((t - 1) / t_next) * (x_next - x)
        x, t = x_next, t_next
    return x


def tv_denoise(image: np.ndarray, weight: float, eps: float = 2e-4, max_num_iter: int = 200) -> np.ndarray:
    """scikit-image's ``denoise_tv_chambolle(image, weight)`` for a 2-D float32 image: Chambolle's projection with
    its energy-based stop, the same numpy operations in the same order (equal to it, ``tests/test_methods_blur.py``),
    written here so that TV does not import ``skimage.restoration`` (and ``scipy.signal``) on its first use."""
    p = np.zeros((2, *image.shape), dtype=image.dtype)
    g = np.zeros_like(p)
    d = np.zeros_like(image)
    out, tau = image, 1.0 / 4  # tau = 1 / (2 · ndim)
    e_init = e_previous = None
    for i in range(max_num_iter):
        if i > 0:
            d = -p.sum(0)  # the (negative) divergence of p
            d[1:, :] += p[0, :-1, :]
            d[:, 1:] += p[1, :, :-1]
            out = image + d
        energy = (d**2).sum()
        g[0, :-1, :] = np.diff(out, axis=0)
        g[1, :, :-1] = np.diff(out, axis=1)
        norm = np.sqrt((g**2).sum(axis=0))[np.newaxis, ...]
        energy += weight * norm.sum()
        norm *= tau / weight
        norm += 1.0
        p -= tau * g
        p /= norm
        energy /= float(image.size)
        if i == 0:
            e_init = e_previous = energy
        elif np.abs(e_previous - energy) < eps * e_init:
            break
        else:
            e_previous = energy
    return out


# -- iterations, one at a time (the Iterations view: semi-convergence) --------------------------------------------
#
# Each yields x_1, x_2, … of an iterative method on our zero-padded ``K`` (``Blur.for_solver``: scipy's FFT, equal
# to the course's conv2d to 1e-6), as (1, 1, H, W) float32 tensors, without end: the caller stops. None regularises
# but by stopping: early iterates are smooth, late ones fit the noise (semi-convergence).


def landweber_iterates(y_delta: torch.Tensor, K, step: float = 1.0) -> Iterator[torch.Tensor]:
    """Landweber: ``x ← x + step · Kᵀ (y_delta − K x)`` from zero (gradient descent on ``½||K x − y_delta||²``;
    ``||K|| ≤ 1`` for a blur summing to one, so a unit step converges)."""
    x = torch.zeros_like(y_delta)
    while True:
        x = x + step * K.adjoint(y_delta - K.forward(x))
        yield x


def cgls_iterates(y_delta: torch.Tensor, K) -> Iterator[torch.Tensor]:
    """CGLS: conjugate gradients on the normal equations ``Kᵀ K x = Kᵀ y_delta`` from zero (Hestenes & Stiefel);
    the fastest of the three to fit the signal, and then the noise."""
    x = torch.zeros_like(y_delta)
    r = y_delta.clone()
    s = K.adjoint(r)
    p, gamma = s.clone(), float((s * s).sum())
    while True:
        if gamma < 1e-30:  # solved to rounding: the iterates stop moving
            yield x
            continue
        q = K.forward(p)
        alpha = gamma / max(float((q * q).sum()), 1e-30)
        x, r = x + alpha * p, r - alpha * q
        s = K.adjoint(r)
        gamma_next = float((s * s).sum())
        p, gamma = s + (gamma_next / gamma) * p, gamma_next
        yield x


def richardson_lucy_iterates(y_delta: torch.Tensor, K, floor: float = 1e-6) -> Iterator[torch.Tensor]:
    """Richardson-Lucy on our ``K``: ``x ← x · Kᵀ(y / K x) / Kᵀ 1`` from the measurement's mean (non-negative
    throughout; ``Kᵀ 1`` is below one near the border, where the zero padding loses light)."""
    y = y_delta.clamp_min(floor)
    norm = K.adjoint(torch.ones_like(y)).clamp_min(floor)
    x = torch.full_like(y, float(y.mean()))
    while True:
        x = x * K.adjoint(y / K.forward(x).clamp_min(floor)) / norm
        yield x


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str
    description: str
    fn: Callable[..., np.ndarray]
    scene: Callable[..., np.ndarray] | None = None  # the same method for a scene past the frame (``methods.edges``)

    def __call__(self, y_delta: np.ndarray, kernel: np.ndarray, scene: bool = False, **params) -> np.ndarray:
        """Reconstruct from a 2-D measurement and the operator's (correlation) kernel; result in [0, 1]. With
        ``scene``, the variant for a scene that goes on past the frame, where the method has one."""
        fn = self.scene if scene and self.scene is not None else self.fn
        out = fn(np.asarray(y_delta, dtype=np.float32), np.asarray(kernel, dtype=np.float64), **params)
        return np.clip(np.asarray(out, dtype=np.float32), 0, 1)


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("input", "Measurement", "The blurred, noisy measurement y_delta itself (clamped to [0, 1]).", measurement),
        Baseline(
            "wiener", "Wiener", "Wiener-Hunt deconvolution: a regularised inverse filter in Fourier space.", wiener_deconvolution
        ),
        Baseline(
            "rl",
            "Richardson-Lucy",
            "Richardson-Lucy: multiplicative iterations, the classic for photon-limited data.",
            richardson_lucy_deconvolution,
        ),
        Baseline(
            "tv",
            "TV",
            "Total-variation regularised deconvolution (FISTA): piecewise-smooth images with sharp edges.",
            tv_deconvolution,
            scene=tv_scene_deconvolution,
        ),
    )
}
