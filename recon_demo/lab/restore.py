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

This module is also ``python -m recon_demo restore`` (``add_arguments``, ``main``); the app and the API call
``Restorer`` through ``RestoreLab`` (``ui/_restore.py``, ``ui/api.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from recon_demo import images
from recon_demo.checkpoints import CheckpointError
from recon_demo.errors import UnknownName
from recon_demo.methods import registry
from recon_demo.methods.base import Network, Unavailable, Unrolled
from recon_demo.methods.edges import RealEdges
from recon_demo.methods.estimate import MIN_SIDE, KernelEstimate, estimate, estimate_sigma, relative_noise
from recon_demo.physics.blur import KERNEL_STYLES, MAX_KERNEL_SIZE, Blur, OperatorSpec
from recon_demo.progress import CLIProgress, Report, no_progress
from recon_demo.serving.engine import Engine

DEFAULT_METHODS = registry.RESTORE_METHODS
MAX_PIXELS = 1024 * 1024  # the largest picture restored at its own size (the app scales a larger one down to it)
COLOUR_MODES = ("channels", "luminance")  # each of R, G, B restored with the same K; or the luminance, chroma kept
MAX_PSF_SIDE = MAX_KERNEL_SIZE  # a PSF image's largest side after cropping to its support
PSF_FLOOR = 0.02  # a PSF picture's support: above this share of its peak, over its background


class RestoreError(ValueError):
    """Input that cannot be restored: the message says why and what is allowed."""


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


# ---------------------------------------------------------------------------------------------------- the kernel


def parse_kernel(text: str, allow_path: bool = True) -> str | OperatorSpec | Path:
    """``auto``, ``motion:SIZE:ANGLE[:STYLE]``, ``gaussian:SIZE:VARIANCE`` or (``allow_path``: the CLI) a PSF image's
    path; ``RestoreError`` saying what is allowed."""
    text = (text or "auto").strip()
    if text == "auto":
        return "auto"
    parts = text.split(":")
    if parts[0] in ("motion", "gaussian") and len(parts) > 1:
        try:
            if parts[0] == "motion" and len(parts) in (3, 4):
                style = parts[3] if len(parts) == 4 else "centered"
                spec = OperatorSpec("motion", int(parts[1]), float(parts[2]), 1.0, style)
            elif parts[0] == "gaussian" and len(parts) == 3:
                spec = OperatorSpec("gaussian", int(parts[1]), 0.0, float(parts[2]))
            else:
                raise ValueError("wrong number of fields")
            return spec.validated()
        except ValueError as err:
            raise RestoreError(f"--kernel {text!r}: {err}; write motion:SIZE:ANGLE[:STYLE] (STYLE one of "
                               f"{', '.join(KERNEL_STYLES)}), gaussian:SIZE:VARIANCE, a PSF image, or auto") from None  # fmt: skip
    if not allow_path:  # the API: a PSF comes as a file, and a server path is never looked at
        raise RestoreError(f"kernel {text!r} is neither auto, motion:SIZE:ANGLE[:STYLE] nor gaussian:SIZE:VARIANCE "
                           "(send a PSF picture as the psf file)")  # fmt: skip
    path = Path(text)
    if not path.exists():
        raise RestoreError(f"--kernel {text!r} is neither auto, motion:SIZE:ANGLE[:STYLE], gaussian:SIZE:VARIANCE "
                           "nor a PSF image that exists")  # fmt: skip
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
        s = self.spec
        motion = s.blur == "motion"
        return {"blur": s.blur, "kernel_size": s.kernel_size, "angle": s.angle if motion else None,
                "kernel_style": s.kernel_style if motion else None, "variance": None if motion else s.variance,
                "confidence": round(self.found.confidence, 3) if self.estimated else None}  # fmt: skip

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
        planes = [picture.pixels[..., c] for c in range(3)] if picture.colour and colour == "channels" else [y]
        networks = [m for m in methods if m in registry.networks()]
        baselines = [m for m in methods if m not in networks]
        built = self.engine.methods(networks, baselines, regime=regime)
        for i, method in enumerate(built, start=1):
            out.labels[method.name] = method.label
            if isinstance(method, Unavailable):
                out.errors[method.name] = method.error
                report(i, len(built), method.label)
                continue
            run = RealEdges(method) if registry.is_handed_operator(method.name) else method
            if isinstance(method, (Network, Unrolled)) and (method.name, planes[0].shape) not in self._warm:
                run(torch.from_numpy(np.ascontiguousarray(planes[0]))[None, None], operator)
                self._warm.add((method.name, planes[0].shape))
            start = time.perf_counter()
            restored = [run(torch.from_numpy(np.ascontiguousarray(p))[None, None], operator)[0, 0].clamp(0, 1).numpy()
                        for p in planes]  # fmt: skip
            out.ms[method.name] = (time.perf_counter() - start) * 1000
            if len(planes) == 3:
                out.outputs[method.name] = np.stack(restored, -1)
            else:
                out.outputs[method.name] = images.with_luminance(picture.pixels, restored[0]) if picture.colour else restored[0]
            out.dc[method.name] = inner_consistency(images.luminance(out.outputs[method.name]) if picture.colour
                                                    else restored[0], y, operator)  # fmt: skip
            report(i, len(built), method.label)
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


# ------------------------------------------------------------------------------------------------------- the CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="pictures that are already blurred (the measurements)")
    parser.add_argument("--out", required=True, help="folder for DIR/<stem>__<method>.png")
    parser.add_argument("--methods", help=f"comma list of networks and baselines (default {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--kernel", default="auto", help="auto (estimate it, the default), motion:SIZE:ANGLE[:STYLE], "
                        "gaussian:SIZE:VARIANCE, or a PSF image (any size, normalised to sum 1)")
    parser.add_argument("--noise", default="auto", help="auto (estimate it) or the relative noise level δ")
    parser.add_argument("--regime", default="general", choices=("course", "general"),
                        help="which shipped weights the networks load (default general: trained on many blurs)")
    parser.add_argument("--colour", default="channels", choices=COLOUR_MODES,
                        help="a colour picture: each channel restored (default) or the luminance alone, chroma kept")
    parser.add_argument("--format", default="text", choices=("text", "json"), help="a line per image, or JSON")
    parser.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")


def main(args: argparse.Namespace) -> int:
    try:
        methods = parse_methods(args.methods)
        kernel = parse_kernel(args.kernel)
        noise = parse_noise(args.noise)
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise RestoreError(f"--out {args.out!r} is a file, not a folder")
        pictures = [(Path(p), read_picture(p)) for p in args.images]  # every input checked before any work
        psf = psf_kernel(kernel, pictures[0][1].grey.shape) if isinstance(kernel, Path) else None
        side = psf.shape[-1] if psf is not None else kernel.kernel_size if isinstance(kernel, OperatorSpec) else 0
        for path, picture in pictures:
            if side > min(picture.grey.shape):
                raise RestoreError(f"the kernel ({side}×{side}) is larger than {path} "
                                   f"({picture.grey.shape[1]}×{picture.grey.shape[0]})")  # fmt: skip
        restorer = Restorer(Engine(args.device))
        out_dir.mkdir(parents=True, exist_ok=True)
    except (ValueError, UnknownName, CheckpointError, OSError) as err:  # RestoreError is a ValueError
        print(f"restore: {err}", file=sys.stderr)
        return 2
    answers = []
    progress = CLIProgress("restore", args.quiet)
    for path, picture in pictures:
        with progress.phase(f"{path.name}", len(methods)) as phase:
            try:
                result = restorer.restore(picture, methods, psf if psf is not None else kernel, noise, args.regime,
                                          args.colour, phase)  # fmt: skip
            except (RestoreError, ValueError) as err:
                print(f"restore: {path}: {err}", file=sys.stderr)
                return 2
        files = {}
        for name, pixels in result.outputs.items():
            files[name] = str(out_dir / f"{path.stem}__{name}.png")
            write_picture(Path(files[name]), pixels)
        answers.append({
            "input": str(path),
            "kernel": {"file": str(kernel)} if psf is not None else result.kernel_dict(),
            "noise": round(result.noise, 5),
            "colour": result.colour_mode,
            "outputs": files,
            "ms": {k: round(v, 1) for k, v in result.ms.items()},
            "dc": {k: round(v, 5) for k, v in result.dc.items()},
            "errors": result.errors,
        })  # fmt: skip
        if args.format == "text":
            what = "the PSF " + str(kernel) if psf is not None else (result.spec.describe() if result.spec else "")
            conf = result.kernel_dict().get("confidence")
            print(f"{path}: {what}" + (f" (confidence {conf:.0%})" if conf is not None else "") +
                  f", δ {result.noise:.3f}; " + ", ".join(f"{n} → {f}" for n, f in files.items()))  # fmt: skip
    if args.format == "json":
        print(json.dumps({"images": answers}, indent=1))
    return 0


# --------------------------------------------------------------------------------------------------- the app's lab


class RestoreLab:
    """The app's "my image is already blurred" mode: pictures kept at their own size (an upload's original, a
    catalogue image), their estimates and restorations cached, shared by every session (bounded, locked)."""

    def __init__(self, engine: Engine | None = None, cache_size: int = 16):
        self.restorer = Restorer(engine)
        self.cache_size = cache_size
        self._pictures: OrderedDict[str, tuple[Picture, str]] = OrderedDict()  # key -> (picture, note)
        self._estimates: OrderedDict[tuple, KernelEstimate] = OrderedDict()
        self._results: OrderedDict[tuple, Restored] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, cache: OrderedDict, key, value) -> None:
        with self._lock:
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)

    def keep(self, key: str, source) -> None:
        """Keep an upload's original under the lab's key for it (``Lab.add_upload``); one that cannot be restored
        is kept as its reason, said when the mode asks for it."""
        try:
            self._remember(self._pictures, key, fitted(source))
        except RestoreError as err:
            self._remember(self._pictures, key, (None, str(err)))

    def picture(self, key: str) -> tuple[Picture, str]:
        """The picture of an image key (a catalogue name or a kept upload) and a note on what was done to it."""
        with self._lock:
            kept = self._pictures.get(key)
        if kept is None:
            if key.startswith("upload:"):
                raise RestoreError("that upload is no longer kept: upload it again")
            kept = fitted(images.load_example(key))
            self._remember(self._pictures, key, kept)
        if kept[0] is None:
            raise RestoreError(kept[1])
        return kept

    def estimate(self, key: str) -> KernelEstimate:
        """The blur and noise estimated from the picture of ``key`` (cached)."""
        cached = self._estimates.get((key,))
        if cached is None:
            picture, _ = self.picture(key)
            try:
                cached = estimate(picture.grey)
            except ValueError as err:
                raise RestoreError(str(err)) from None
            self._remember(self._estimates, (key,), cached)
        return cached

    def run(self, key: str, spec: OperatorSpec, methods: list[str], regime: str, report: Report = no_progress) -> Restored:
        """Each method's restoration of the picture of ``key`` with ``spec``'s kernel (cached per setting)."""
        spec = spec.validated()
        cache_key = (key, spec, tuple(methods), regime)
        cached = self._results.get(cache_key)
        if cached is None:
            picture, _ = self.picture(key)
            found = self.estimate(key)
            cached = self.restorer.restore(picture, methods, spec, found.noise, regime, report=report)
            cached.found = found
            self._remember(self._results, cache_key, cached)
        return cached


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
