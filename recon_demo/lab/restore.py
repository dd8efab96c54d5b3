"""Restoring a photograph that arrived already blurred: no ground truth, no kernel, a scene past its frame, colour.

``Restorer.restore`` takes a picture as the measurement ``y_delta`` at its own size, estimates the blur and the
noise (``methods.estimate``) unless it is told them (a kernel spec, a PSF image, a noise level), and runs each method
with real edges (``methods.edges.RealEdges``): the networks that know ``K`` and the classical methods handed that
kernel, the end-to-end networks on the measurement alone. What can be known without a ground truth is reported: the
kernel and how sure the estimate is, each method's data consistency ``||K x − y|| / ||y||`` and its time.

Colour is restored channel by channel with the one kernel estimated on the luminance (ITU-R 601 Y): on the held-out
colour photographs of ``evaluate --blind`` that gained 0.1-1.2 dB over restoring the luminance alone with the chroma
kept (``colour="luminance"``, a third of the time), since the chroma is blurred too (``docs/restore.md``). Grey pictures
(8- or 16-bit) stay grey and come back as 16-bit PNGs.

Every method runs through ``methods.run_methods``, the one method loop, the colour channels as planes of one
measurement. A picture is read and written by ``recon_demo.picture``; ``python -m recon_demo restore`` is
``cli.restore``; the app and the API call ``Restorer`` through ``RestoreLab`` (``ui/_restore.py``, ``ui/api.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon_demo import images
from recon_demo.cache import BoundedCache
from recon_demo.errors import RestoreError
from recon_demo.methods import registry
from recon_demo.methods.base import run_methods
from recon_demo.methods.edges import real_edges
from recon_demo.methods.estimate import KernelEstimate, estimate, estimate_sigma, relative_noise
from recon_demo.physics.blur import Blur, OperatorSpec
from recon_demo.physics.kernels import BLUR_KINDS, MAX_KERNEL_SIZE, text_forms
from recon_demo.picture import Picture, fitted
from recon_demo.progress import Report, no_progress
from recon_demo.serving.engine import Engine

DEFAULT_METHODS = registry.RESTORE_METHODS
COLOUR_MODES = ("channels", "luminance")  # each of R, G, B restored with the same K; or the luminance, chroma kept
MAX_PSF_SIDE = MAX_KERNEL_SIZE  # a PSF image's largest side after cropping to its support
PSF_FLOOR = 0.02  # a PSF picture's support: above this share of its peak, over its background


# ---------------------------------------------------------------------------------------------------- the kernel


def parse_kernel(text: str, allow_path: bool = True) -> str | OperatorSpec | Path:
    """``auto``, a blur's text form (``OperatorSpec.parse``: ``motion:SIZE:ANGLE[:STYLE]``, whose style is ``centered``
    unless it is said, ``gaussian:SIZE:VARIANCE``, …) or (``allow_path``: the CLI) a PSF image's path; ``RestoreError``
    saying what is allowed."""
    text = (text or "auto").strip()
    if text == "auto":
        return "auto"
    kind, colon, _ = text.partition(":")
    if kind.strip() in BLUR_KINDS and colon:
        try:
            return OperatorSpec.parse(text, kernel_style="centered")  # centered unless said: a photo's has no ippy offset
        except ValueError as err:
            raise RestoreError(f"--kernel {text!r}: {err} (the forms: {text_forms()}; or auto, or a PSF image)") from None
    if not allow_path:  # the API: a PSF comes as a file, and a server path is never looked at
        raise RestoreError(f"kernel {text!r} is neither auto nor a blur ({text_forms()}): send a PSF picture as the psf file")
    path = Path(text)
    if not path.exists():
        raise RestoreError(f"--kernel {text!r} is neither auto, a blur ({text_forms()}) nor a PSF image that exists")
    return path


def psf_kernel(source: str | Path | bytes | Image.Image | np.ndarray, image_shape: tuple[int, int] | None = None) -> torch.Tensor:
    """A PSF picture (any size, bright on dark) as an odd square kernel summing to one: cropped to its support,
    centred on an odd side; ``RestoreError`` for one that is empty, negative, not finite or larger than the image."""
    if isinstance(source, np.ndarray):
        psf = np.asarray(source, dtype=np.float64)
        if psf.ndim == 3:
            psf = psf[..., :3].mean(axis=2)
    else:
        try:
            img = images.open_image(source)
        except (ValueError, OSError) as err:
            raise RestoreError(f"the PSF: {err}") from None
        psf = images.to_grayscale(img).astype(np.float64) if img.mode not in ("I", "F") else np.asarray(img, np.float64)
    if psf.ndim != 2 or psf.size == 0:
        raise RestoreError(f"a PSF is one grey picture, got shape {psf.shape}")
    if not np.isfinite(psf).all():
        raise RestoreError("the PSF has values that are not finite numbers")
    if (psf < 0).any():
        raise RestoreError("the PSF has negative values: a blur only spreads light")
    if psf.sum() <= 0:
        raise RestoreError("the PSF is all zeros: it must hold the blur's light")
    # a photographed or JPEG-saved PSF has a faint background: its support is where it stands out of it
    background = float(np.median(np.concatenate([psf[0], psf[-1], psf[:, 0], psf[:, -1]])))
    psf = np.clip(psf - background, 0, None)
    if psf.max() <= 0:
        raise RestoreError("the PSF is as bright everywhere as at its edges: there is no blur in it")
    psf = np.where(psf > PSF_FLOOR * psf.max(), psf, 0.0)
    rows, cols = np.nonzero(psf)
    psf = psf[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(psf.shape) | 1  # odd
    if side > MAX_PSF_SIDE:
        raise RestoreError(f"the PSF's support is {psf.shape[1]}×{psf.shape[0]} pixels; at most {MAX_PSF_SIDE} a side")
    if image_shape is not None and side > min(image_shape):
        raise RestoreError(f"the PSF ({side}×{side}) is larger than the image ({image_shape[1]}×{image_shape[0]})")
    kernel = np.zeros((side, side))
    top, left = (side - psf.shape[0]) // 2, (side - psf.shape[1]) // 2
    kernel[top : top + psf.shape[0], left : left + psf.shape[1]] = psf
    return torch.from_numpy(kernel / kernel.sum()).float()


def parse_noise(text: str | float | None) -> float | None:
    """``auto`` (None) or a relative noise level δ in [0, 1]; ``RestoreError`` otherwise."""
    if text is None or (isinstance(text, str) and text.strip() == "auto"):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RestoreError(f"--noise must be auto or a relative noise level between 0 and 1, got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise RestoreError(f"--noise must be auto or a relative noise level between 0 and 1, got {text!r}")
    return value


# -------------------------------------------------------------------------------------------------- restoration


@dataclass
class Restored:
    """One picture restored: the kernel used (and the estimate, when there was one), each method's picture."""

    picture: Picture
    kernel: torch.Tensor  # (k, k), summing to one
    spec: OperatorSpec | None  # the kernel as the usual controls describe it; None for a PSF image
    found: KernelEstimate | None  # the estimate, when the kernel was estimated (the app's mode keeps it beside a told one)
    noise: float  # relative δ: estimated, or as told
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # method name -> (H, W) or (H, W, 3) in [0, 1]
    labels: dict[str, str] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    dc: dict[str, float] = field(default_factory=dict)  # data consistency on the luminance, away from the edges
    errors: dict[str, str] = field(default_factory=dict)  # methods that could not run, and why
    colour_mode: str = "grey"  # what was done, in words: "grey", "each channel restored", "luminance restored, …"

    def kernel_dict(self) -> dict:
        """The JSON answer's ``kernel``: the spec's fields and the confidence (None when the kernel was told)."""
        if self.spec is None:
            return {}
        return self.spec.answer() | {"confidence": round(self.found.confidence, 3) if self.estimated else None}

    @property
    def estimated(self) -> bool:
        """Whether the kernel is the estimate (not one that was told)."""
        return self.found is not None and self.found.spec == self.spec


def parse_methods(text: str | list[str] | None) -> list[str]:
    """Registry names and baselines, as ``evaluate`` takes them (default: ``DEFAULT_METHODS``)."""
    names = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text or [])
    names = [n for n in names if n] or list(DEFAULT_METHODS)
    known = registry.choices() + ["input"]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RestoreError(f"unknown method {', '.join(unknown)}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


class Restorer:
    """Restores pictures with the engine's networks and the classical methods (see the module docstring)."""

    def __init__(self, engine: Engine | None = None):
        self.engine = engine or Engine()
        # (network, shape) pairs already run once: a network's first call on a new shape runs untimed first (the
        # backend picks its kernels then, seconds on a CPU), so that each time shown is the method's own, as the lab's
        self._warm: set[tuple[str, tuple[int, ...]]] = set()

    def restore(self, picture: Picture, methods: list[str] = DEFAULT_METHODS, kernel: str | OperatorSpec | torch.Tensor = "auto",
                noise: float | None = None, regime: str = "general", colour: str = "channels",
                report: Report = no_progress) -> Restored:  # fmt: skip
        """Each method's restoration of ``picture`` (``kernel``: ``"auto"``, a spec, or a PSF tensor (k, k))."""
        if colour not in COLOUR_MODES:
            raise RestoreError(f"colour must be one of {', '.join(COLOUR_MODES)}, got {colour!r}")
        y = picture.grey
        found = None
        if isinstance(kernel, str) and kernel == "auto":
            found = estimate(y, sigma=None if noise is None else _sigma(y, noise))
            spec, psf = found.spec, found.spec.kernel()
        elif isinstance(kernel, OperatorSpec):
            spec, psf = kernel.validated(), kernel.validated().kernel()
        else:
            spec, psf = None, kernel
        if psf.shape[-1] > min(y.shape):
            raise RestoreError(f"the kernel ({psf.shape[-1]}×{psf.shape[-1]}) is larger than the image ({y.shape[1]}×{y.shape[0]})")
        if noise is None:
            noise = found.noise if found is not None else estimate_noise_only(y)
        mode = {"channels": "each channel restored", "luminance": "luminance restored, chroma kept"}[colour]
        out = Restored(picture, psf, spec, found, float(noise), colour_mode=mode if picture.colour else "grey")
        operator = Blur(psf)
        if picture.colour and colour == "channels":  # each channel restored with the same K: planes (3, 1, H, W)
            y_delta = torch.from_numpy(np.ascontiguousarray(np.moveaxis(picture.pixels, -1, 0)))[:, None]
        else:
            y_delta = torch.from_numpy(np.ascontiguousarray(y))[None, None]
        networks = [m for m in methods if m in registry.networks()]
        baselines = [m for m in methods if m not in networks]
        built = self.engine.methods(networks, baselines, regime=regime)
        for r in run_methods(built, y_delta, operator, with_dc=False, warm=self._warm, wrap=real_edges, report=report):
            out.labels[r.name] = r.label
            if r.image is None:
                out.errors[r.name] = r.error
                continue
            out.ms[r.name] = r.ms
            restored = images.with_luminance(picture.pixels, r.image) if picture.colour and r.image.ndim == 2 else r.image
            out.outputs[r.name] = restored
            out.dc[r.name] = inner_consistency(images.luminance(restored) if picture.colour else restored, y, operator)
        return out


def _sigma(y: np.ndarray, noise: float) -> float:
    """The per-pixel σ of relative noise δ on ``y``."""
    return float(noise * np.linalg.norm(y) / math.sqrt(y.size))


def estimate_noise_only(y: np.ndarray) -> float:
    """The relative noise level δ of a measurement whose kernel was told."""
    return relative_noise(y, estimate_sigma(y))


def inner_consistency(x_rec: np.ndarray, y_delta: np.ndarray, operator: Blur) -> float:
    """``||K x − y|| / ||y||`` away from the edges by the kernel's side, where the frame's blur is all inside it."""
    k = operator.kernel.shape[-1]
    with torch.inference_mode():
        blurred = operator(torch.from_numpy(np.ascontiguousarray(x_rec, dtype=np.float32))[None, None])[0, 0].numpy()
    inner = (slice(k, -k or None), slice(k, -k or None)) if min(y_delta.shape) > 4 * k else (slice(None), slice(None))
    residual = blurred[inner] - y_delta[inner]
    return float(np.linalg.norm(residual) / max(np.linalg.norm(y_delta[inner]), 1e-12))


# --------------------------------------------------------------------------------------------------- the app's lab


class RestoreLab:
    """The app's "my image is already blurred" mode: pictures kept at their own size (an upload's original, a
    catalogue image), their estimates and restorations cached, shared by every session (bounded, locked)."""

    def __init__(self, engine: Engine | None = None, cache_size: int = 16):
        self.restorer = Restorer(engine)
        # key -> (picture, note), or (None, why) for an upload that cannot be restored
        self._pictures: BoundedCache[str, tuple[Picture | None, str]] = BoundedCache(cache_size)
        self._estimates: BoundedCache[str, KernelEstimate] = BoundedCache(cache_size)
        self._results: BoundedCache[tuple, Restored] = BoundedCache(cache_size)  # (key, spec, methods, regime)

    def keep(self, key: str, source) -> None:
        """Keep an upload's original under the lab's key for it (``Lab.add_upload``); one that cannot be restored
        is kept as its reason, said when the mode asks for it."""
        try:
            self._pictures.put(key, fitted(source))
        except RestoreError as err:
            self._pictures.put(key, (None, str(err)))

    def picture(self, key: str) -> tuple[Picture, str]:
        """The picture of an image key (a catalogue name or a kept upload) and a note on what was done to it."""
        kept = self._pictures.get(key)
        if kept is None:
            if key.startswith("upload:"):
                raise RestoreError("that upload is no longer kept: upload it again")
            kept = self._pictures.put(key, fitted(images.load_example(key)))
        if kept[0] is None:
            raise RestoreError(kept[1])
        return kept

    def estimate(self, key: str) -> KernelEstimate:
        """The blur and noise estimated from the picture of ``key`` (cached)."""
        return self._estimates.get_or_compute(key, partial(self._estimate, key))

    def _estimate(self, key: str) -> KernelEstimate:
        picture, _ = self.picture(key)
        try:
            return estimate(picture.grey)
        except ValueError as err:
            raise RestoreError(str(err)) from None

    def run(self, key: str, spec: OperatorSpec, methods: list[str], regime: str, report: Report = no_progress) -> Restored:
        """Each method's restoration of the picture of ``key`` with ``spec``'s kernel (cached per setting)."""
        spec = spec.validated()
        return self._results.get_or_compute((key, spec, tuple(methods), regime),
                                            partial(self._run, key, spec, methods, regime, report))  # fmt: skip

    def _run(self, key: str, spec: OperatorSpec, methods: list[str], regime: str, report: Report) -> Restored:
        picture, _ = self.picture(key)
        found = self.estimate(key)
        restored = self.restorer.restore(picture, methods, spec, found.noise, regime, report=report)
        restored.found = found
        return restored
