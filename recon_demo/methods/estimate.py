"""Blind estimation: the blur ``K`` and the noise level δ of a measurement that arrived already blurred.

A real photo comes with no kernel. The noise is read first, from the finest diagonal Haar details (Donoho's
median rule: a blur leaves almost no signal there). The kernel is then the one under which the measurement is most
likely, with the image a Gaussian field of power spectrum ``A / |f|^(2 − β)`` (natural images' law, the slope β
searched) and white noise of the estimated level: the Whittle likelihood of the averaged, windowed periodogram
(Welch) of the measurement's two differences, which whiten the scene,

    P_k(f) = A · |H_k(f)|² · |f|^β + σ² · Σ w² · |D(f)|²,      NLL(k) = mean_f [ I(f) / P_k(f) + log P_k(f) ],

with ``A`` fitted per kernel (``D`` the differences' transfer). This is the "kernel whose model best explains the measurement" of blind
deconvolution in its marginal form (Levin et al., "Efficient marginal likelihood optimization in blind
deconvolution", 2011): unlike a fit of a restored image it does not prefer "no blur". A motion blur's zeros (its
stripes in the spectrum) and a Gaussian's smooth fall-off are both in the model; the search runs over the parametric
kernels of ``physics.blur`` (motion: length, angle, style; Gaussian: variance), coarse then fine; a motion is scored on
a sharp scene and on one as soft as photographs are (``MOTION_SOFTNESS``), a Gaussian reports the blur beyond that
softness (``OWN_SOFTNESS``).

The estimate says how sure it is: ``confidence`` grows with the share of the likelihood gained over "no blur" that no
distant kernel (another family; an angle 15° away; a length 4 px or a quarter of it away; a variance twice or half)
comes close to (``SURE_MARGIN`` of it and more is 100 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.kernels import MAX_APP_KERNEL, blur_kind, estimated_kinds, gaussian_kernel, motion_kernel

MIN_SIDE = 16  # below this an image has too few frequencies to tell a blur by
MOTION_SIZES = tuple(range(3, MAX_APP_KERNEL + 1, 2))  # the lengths searched (odd: the kernel's side)
COARSE_ANGLE_STEP = 3.0  # degrees, before refining at 1°
GAUSSIAN_VARIANCES = tuple(float(v) for v in np.geomspace(0.2, 20.0, 40))
MIN_VARIANCE = 0.1  # the smallest variance the blur controls offer (their slider starts there)
# The margin by which the best kernel beats every distant one, as a share of its gain over "no blur": on the training
# images' blurs the wrong estimates (a brick wall's periodic texture, a cell image that is blurry by nature) had margins
# below 0.06 and the right ones mostly above 0.1; from this margin on, the confidence is 100 %.
SURE_MARGIN = 0.15
NEAR_ANGLE, NEAR_LENGTH, NEAR_SHARE = 15.0, 4, 0.25  # "the same kernel" for confidence: degrees, px or share of the length
TILTS = (-1.2, -0.9, -0.6, -0.3, 0.0, 0.3)  # the scene spectrum slopes β searched with each kernel (see ``_nll``)
COARSE_TILTS = [2, 3, 4]  # those of them the coarse search tries (β −0.6, −0.3 and 0)
# A photograph is itself soft: unblurred, the training images' estimates were Gaussians of variance 0.16-0.54 px²
# (the optics, the demosaicing, the resampling). Variances add under convolution, so a Gaussian estimate reports the
# blur beyond that: on 43 Gaussian blurs of the training images the median relative error fell from 0.28 to 0.20.
OWN_SOFTNESS = 0.4  # px²
# ... and a motion is tried on a sharp scene and on one as soft as that: on training CT slices mapped as the held-out DICOM
# slices are (their floor to their 99.5th percentile), short motions were taken for Gaussians in 9 of 24 measurements,
# in 2 with it; on the training photographs and CT/MR slices the right family went from 85/92 % (motion) and 100/100 %
# (Gaussian) to 88/100 % and 92/100 % (``evaluate --blind --blind-sets train,train-medical``).
MOTION_SOFTNESS = (0.0, OWN_SOFTNESS)
BAND_TOP = 0.45  # cycles per pixel: the highest frequency scored (the corners are mostly noise)


@dataclass(frozen=True)
class KernelEstimate:
    """What ``estimate`` found: the blur, the noise level, and how sure it is."""

    spec: OperatorSpec  # the kernel, as the usual controls describe it
    noise: float  # relative noise level δ, read as σ √N / ||y_delta|| (``||e|| / ||K x||`` for small noise)
    sigma: float  # the noise's standard deviation per pixel, in the image's [0, 1] units
    confidence: float  # in [0, 1]: 0 = a distant kernel (or no blur) explains it as well, 1 = nothing else comes close
    nll: float  # the best kernel's negative log-likelihood per frequency (lower explains better)

    def to_dict(self) -> dict:
        """The CLI's and the API's ``kernel`` object (and ``noise``)."""
        kernel = self.spec.answer() | {"confidence": round(self.confidence, 3)}
        return {"kernel": kernel, "noise": round(self.noise, 5)}

    @property
    def negligible(self) -> bool:
        """Whether the estimate is no blur to speak of (its kind's ``sharp``: a Gaussian under 0.3 px², a motion of 3 px
        or less)."""
        sharp = blur_kind(self.spec.blur).sharp
        return bool(sharp(self.spec)) if sharp is not None else False

    def describe(self) -> str:
        return f"{self.spec.describe()}, δ ≈ {self.noise:.3f}, confidence {self.confidence:.0%}"


def check_measurement(y_delta: np.ndarray) -> np.ndarray:
    """A grey measurement (H, W) as float64; ``ValueError`` for what cannot be estimated from."""
    y = np.asarray(y_delta, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"a measurement to estimate a blur from is one grey image (H, W), got shape {y.shape}")
    if min(y.shape) < MIN_SIDE:
        raise ValueError(f"the image is {y.shape[1]}×{y.shape[0]} pixels; estimating a blur needs at least {MIN_SIDE} a side")
    if not np.isfinite(y).all():
        raise ValueError("the image has values that are not finite numbers")
    if y.std() < 1e-6:
        raise ValueError("the image is flat (one value everywhere): there is nothing to estimate a blur from")
    return y


def estimate_sigma(y_delta: np.ndarray) -> float:
    """The noise's standard deviation per pixel: the median absolute finest diagonal Haar detail / 0.6745."""
    y = np.asarray(y_delta, dtype=np.float64)
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    y = y[:h, :w]
    detail = (y[0::2, 0::2] - y[0::2, 1::2] - y[1::2, 0::2] + y[1::2, 1::2]) / 2  # (H/2, W/2), unit gain for noise
    return float(np.median(np.abs(detail)) / 0.6745)


def relative_noise(y_delta: np.ndarray, sigma: float) -> float:
    """δ of the lecture's relative noise for a per-pixel ``sigma``: ||e|| ≈ σ √N against ||y||."""
    y = np.asarray(y_delta, dtype=np.float64)
    return float(sigma * math.sqrt(y.size) / max(np.linalg.norm(y), 1e-12))


def _welch(y: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gradients' averaged windowed periodogram on the frequency band searched, and that band's frequencies
    (F, 2) in cycles per pixel, their noise floor (F,) and the periodogram's grid mask (P, P/2+1).

    The periodogram is of the image's two differences (``∂x y``, ``∂y y``) summed: they whiten the image's 1/|f|²
    spectrum, so the window leaks little from the strong low frequencies into a motion blur's zeros, and the model
    becomes ``P(f) = A |H(f)|² + σ² Σw² |D(f)|²``."""
    side = min(y.shape) - 1
    patch = 128 if side >= 128 else (side // 2) * 2
    step = patch // 2
    window = np.outer(np.hanning(patch), np.hanning(patch))
    dx, dy = np.diff(y, axis=1)[:-1], np.diff(y, axis=0)[:, :-1]  # (H − 1, W − 1) each
    tiles = []
    for r in range(0, dx.shape[0] - patch + 1, step):
        for c in range(0, dx.shape[1] - patch + 1, step):
            tiles += [(d[r : r + patch, c : c + patch] - d[r : r + patch, c : c + patch].mean()) * window for d in (dx, dy)]
    spectra = (np.abs(np.fft.rfft2(np.stack(tiles))) ** 2).reshape(-1, 2, patch, patch // 2 + 1).sum(1)  # (T, P, P/2+1)
    fy = np.broadcast_to(np.fft.fftfreq(patch)[:, None], spectra.shape[1:])
    fx = np.broadcast_to(np.fft.rfftfreq(patch)[None, :], spectra.shape[1:])
    radius = np.hypot(fx, fy)
    band = (radius > 1.5 / patch) & (radius < BAND_TOP)  # no DC and lowest ring (the window's leakage), no top
    d2 = 4 * np.sin(np.pi * fx) ** 2 + 4 * np.sin(np.pi * fy) ** 2  # |Dx|² + |Dy|²
    floor = sigma**2 * float((window**2).sum()) * d2
    spectrum = spectra.mean(0)
    return spectrum[band], np.stack([fx[band], fy[band]], 1), floor[band], band


def _nll(spectrum: np.ndarray, floor: np.ndarray, h2: np.ndarray, tilts: np.ndarray, iterations: int = 8) -> np.ndarray:
    """The best over the scene's spectral slopes of ``_nll_tilted``: the scene ``A / |f|^(2 − β)`` for each β of
    ``TILTS`` (natural images fall as |f|^−1.6 … |f|^−2.6), ``tilts`` the factors |f|^β (T, F)."""
    return np.min([_nll_tilted(spectrum, floor, h2 * tilt[None], iterations) for tilt in tilts], axis=0)


def _nll_tilted(spectrum: np.ndarray, floor: np.ndarray, h2: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Each kernel's Whittle negative log-likelihood per frequency, ``P = A |H|² + floor`` with A fitted by its
    fixed point ``A = Σ (I − floor) |H|² / P² / Σ |H|⁴ / P²``; ``h2`` is (C, F)."""
    i_f, floor = spectrum[None].astype(np.float32), floor[None].astype(np.float32)
    h2 = h2.astype(np.float32)
    signal = i_f - floor
    a = np.maximum((signal * h2).sum(1, keepdims=True) / np.maximum((h2 * h2).sum(1, keepdims=True), 1e-30), 1e-12)
    for _ in range(iterations):
        w = 1.0 / (a * h2 + floor) ** 2
        a = np.maximum((signal * h2 * w).sum(1, keepdims=True) / np.maximum((h2 * h2 * w).sum(1, keepdims=True), 1e-30), 1e-12)
    p = a * h2 + floor
    return (i_f / p + np.log(p)).mean(1)


@dataclass(frozen=True)
class _Candidate:
    blur: str
    size: int
    angle: float = 0.0
    style: str = "centered"
    variance: float = 1.0

    def spec(self) -> OperatorSpec:
        # plain floats (not numpy's): the spec goes to JSON (the app's sliders, the CLI) as it is
        return OperatorSpec(blur=self.blur, kernel_size=int(self.size), angle=round(float(self.angle) % 180.0, 1),
                            variance=round(float(self.variance), 3), kernel_style=self.style)

    def kernel(self) -> np.ndarray:
        if self.blur == "gaussian":
            return gaussian_kernel(self.size, self.variance).numpy()
        return motion_kernel(self.size, self.angle, self.style).numpy()


def gaussian_size(variance: float) -> int:
    """The odd side that holds a Gaussian of ``variance`` to ±3σ (at most the app's largest kernel)."""
    return int(min(MAX_APP_KERNEL, 2 * math.ceil(3 * math.sqrt(variance)) + 1))


def _coarse_power(candidates: list[_Candidate], freqs: np.ndarray) -> np.ndarray:
    """|H(f)|² of every candidate's continuous kernel (C, F): a segment's sinc² across its direction (the projections
    computed once per angle), a Gaussian's exp."""
    fx, fy = freqs[:, 0], freqs[:, 1]
    projections: dict[float, np.ndarray] = {}
    rows = []
    for c in candidates:
        if c.blur == "gaussian":
            rows.append(np.exp(-4 * np.pi**2 * c.variance * (fx**2 + fy**2)))
            continue
        if c.angle not in projections:
            theta = math.radians(c.angle)
            projections[c.angle] = fx * math.cos(theta) + fy * math.sin(theta)
        x = np.pi * c.size * projections[c.angle]
        rows.append(np.where(np.abs(x) < 1e-8, 1.0, np.sin(x) / np.where(np.abs(x) < 1e-8, 1.0, x)) ** 2)
    return np.stack(rows)


def _discrete_power(candidates: list[_Candidate], band: np.ndarray) -> np.ndarray:
    """|H_k(f)|² of each candidate's actual kernel on the band (C, F)."""
    patch = band.shape[0]
    side = max(c.size for c in candidates)
    stack = np.zeros((len(candidates), side, side))
    for i, c in enumerate(candidates):  # each kernel centred in the common side (the phase is not scored)
        pad = (side - c.size) // 2
        stack[i, pad : pad + c.size, pad : pad + c.size] = c.kernel()
    return (np.abs(np.fft.rfft2(stack, s=(patch, patch))) ** 2)[:, band]


def estimate(y_delta: np.ndarray, blurs: tuple[str, ...] | None = None, sigma: float | None = None) -> KernelEstimate:
    """The blur and noise of a grey measurement (H, W) in [0, 1] (see the module docstring): among ``blurs`` (default:
    the kinds the table says are estimated, ``physics.kernels.estimated_kinds``); ``sigma``, the noise's per-pixel
    standard deviation when it is known (else estimated)."""
    y = check_measurement(y_delta)
    blurs = estimated_kinds() if blurs is None else blurs
    sigma = estimate_sigma(y) if sigma is None else float(sigma)
    spectrum, freqs, floor, band = _welch(y, sigma)
    patch = band.shape[0]
    radius = np.hypot(freqs[:, 0], freqs[:, 1]) / 0.1
    tilts = np.stack([radius**beta for beta in TILTS])  # (T, F), 1 at 0.1 cycles per pixel
    sizes = [s for s in MOTION_SIZES if s <= patch // 3]
    coarse: list[_Candidate] = []
    if "motion" in blurs:
        coarse += [_Candidate("motion", s, a) for s in sizes for a in np.arange(0.0, 180.0, COARSE_ANGLE_STEP)]
    if "gaussian" in blurs:
        coarse += [_Candidate("gaussian", gaussian_size(v), variance=v) for v in GAUSSIAN_VARIANCES
                   if gaussian_size(v) <= patch // 3]  # fmt: skip
    sub = slice(None, None, 2)  # the coarse pass scores every other frequency of the band: half the time, same ranking
    soft = np.stack([np.exp(-4 * np.pi**2 * v * (freqs**2).sum(1)) for v in MOTION_SOFTNESS])  # (S, F)
    nll = _family_nll(coarse, spectrum[sub], floor[sub], _coarse_power(coarse, freqs[sub]), tilts[COARSE_TILTS, sub],
                      soft[:, sub], iterations=4)  # fmt: skip
    fine: list[_Candidate] = []
    for i in np.argsort(nll)[:3]:  # refine the three best, on the actual kernels
        best = coarse[int(i)]
        if best.blur == "motion":
            fine += [_Candidate("motion", s, best.angle + d) for s in (best.size - 2, best.size, best.size + 2)
                     if s in sizes for d in np.arange(-2.0, 2.5, 1.0)]  # fmt: skip
        else:
            fine += [_Candidate("gaussian", gaussian_size(v), variance=v) for v in best.variance * np.geomspace(0.8, 1.25, 9)]
    fine_nll = _family_nll(fine, spectrum, floor, _discrete_power(fine, band), tilts, soft)
    best, best_nll = fine[int(np.argmin(fine_nll))], float(fine_nll.min())
    spec = best.spec()
    if best.blur == "gaussian":  # the blur beyond the photograph's own softness (OWN_SOFTNESS)
        variance = max(MIN_VARIANCE, float(best.variance) - OWN_SOFTNESS)
        spec = replace(spec, kernel_size=gaussian_size(variance), variance=round(variance, 3))
    none_nll = float(_nll(spectrum, floor, np.ones((1, len(spectrum))), tilts)[0])  # no blur: |H| = 1
    distant = [(n, c) for c, n in zip(coarse, nll) if not _near(c, best)]
    # the best distant kernel of the coarse pass, scored as the best one was (its actual kernel, every frequency, slope)
    rival = [min(distant, key=lambda d: d[0])[1]] if distant else []
    alt = float(_family_nll(rival, spectrum, floor, _discrete_power(rival, band), tilts, soft)[0]) if rival else none_nll
    alt = min(alt, none_nll)
    gain = none_nll - best_nll
    margin = (alt - best_nll) / gain if gain > 1e-9 else 0.0
    confidence = float(np.clip(margin / SURE_MARGIN, 0.0, 1.0))
    return KernelEstimate(spec, relative_noise(y, sigma), sigma, confidence, best_nll)


def _family_nll(candidates: list[_Candidate], spectrum: np.ndarray, floor: np.ndarray, h2: np.ndarray, tilts: np.ndarray,
                soft: np.ndarray, iterations: int = 8) -> np.ndarray:  # fmt: skip
    """``_nll`` of each candidate; a motion's also over the scene's own softness (``MOTION_SOFTNESS``, the factors
    ``soft`` (S, F)): a photograph or a CT slice is soft before it is moved, and a short motion on a soft scene
    otherwise reads as a Gaussian."""
    motion = np.array([c.blur == "motion" for c in candidates])
    out = np.empty(len(candidates))
    if motion.any():
        both = (tilts[:, None] * soft[None]).reshape(-1, tilts.shape[1])  # (T·S, F)
        out[motion] = _nll(spectrum, floor, h2[motion], both, iterations)
    if (~motion).any():
        out[~motion] = _nll(spectrum, floor, h2[~motion], tilts, iterations)
    return out


def _near(c: _Candidate, best: _Candidate) -> bool:
    if c.blur != best.blur:
        return False
    if c.blur == "gaussian":
        return abs(math.log(c.variance / best.variance)) < math.log(2.0)
    d = abs((c.angle - best.angle + 90.0) % 180.0 - 90.0)
    return d < NEAR_ANGLE and abs(c.size - best.size) < max(NEAR_LENGTH, NEAR_SHARE * best.size)
