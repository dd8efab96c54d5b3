"""``evaluate --blind``: restoration when nobody says what the blur was, on held-out images with real edges.

Each held-out image gives a few measurements, each blurred the way a camera blurs: a crop larger than the image kept
is blurred (so the scene goes on past the frame) and its centre kept, by a random linear motion (an odd length of 5 to
15 pixels, any angle, the centered kernel: the ippy kernel's off-centre line is the same blur shifted, which no
measurement can tell), a Gaussian (variance 0.5 to 4) or a curved camera shake (``physics.kernels.shake_kernel``), with
relative noise δ from 0.005 to 0.03. For each: the estimate (``methods.estimate``) and its errors against the truth;
then each method handed the estimated kernel and handed the true one, all run with real edges
(``methods.edges.RealEdges``); PSNR and SSIM on the whole image and away from a 12-pixel border.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from recon_demo import datasets, images
from recon_demo.checkpoints import CheckpointError
from recon_demo.methods import registry
from recon_demo.methods.base import Unavailable, run_methods
from recon_demo.methods.edges import real_edges
from recon_demo.methods.estimate import KernelEstimate, estimate, gaussian_size
from recon_demo.metrics import psnr, ssim
from recon_demo.physics.blur import Blur
from recon_demo.physics.kernels import gaussian_kernel, motion_kernel, shake_kernel
from recon_demo.physics.noise import add_relative_noise
from recon_demo.progress import Report, no_progress
from recon_demo.serving.engine import Engine

BLIND_KINDS = ("motion", "gaussian", "shake")
DEFAULT_METHODS = registry.RESTORE_METHODS  # what `restore` runs by default, scored here
BORDER = 12  # pixels: "away from the edges" leaves this much out on each side
SETS = ("photos", "medical", "colour")  # held-out grey photographs, CT and MR slices, colour photographs
COLOUR_HELD_OUT = ("astronaut", "coffee")  # the held-out package photographs in colour
# scikit-image's clock "was taken while moving the camera in an approximately horizontal direction" (its docstring):
# it is no sharp ground truth. The estimator finds that blur on it unaided (motion ≈ 23 px near 0°); it is the
# lessons' real blurry photo instead.
ALREADY_BLURRED = ("clock",)
TUNING_SET = "train"  # the training split's package images: where the estimator was tuned, never reported
MEDICAL_TUNING_SET = "train-medical"  # training CT (soft-tissue window) and MRI slices, where installed: tuning too
MOTION_LENGTHS = (5, 7, 9, 11, 13, 15)
NOISE_RANGE = (0.005, 0.03)
VARIANCE_RANGE = (0.5, 4.0)
MARGIN = 24  # pixels of scene blurred beyond each side of the kept crop (more than the largest kernel's half)


@dataclass
class BlindConfig:
    """One blind benchmark; the CLI's flags map onto it."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))  # registry names or baselines
    sets: tuple[str, ...] = SETS
    kinds: tuple[str, ...] = BLIND_KINDS
    per_image: int = 2  # measurements per image and kind
    size: int = 256  # the kept crop's side (smaller images: their largest)
    seed: int = 123  # evaluate's --seed default
    limit: int | None = None  # first N images of each set
    device: str | None = None


def held_out(sets: tuple[str, ...], limit: int | None) -> list[tuple[str, str, np.ndarray]]:
    """(set, name, picture in [0, 1]) of the held-out images: the package photographs in grey (never trained on,
    ``images.split_names("held_out")``) and those in colour (H, W, 3), and, where pydicom-data is installed, the
    held-out medical slices."""
    out = []
    if TUNING_SET in sets:
        for name in images.split_names("train")[: limit or None]:
            out.append((TUNING_SET, name, images.to_grayscale(images.load_example(name))))
    if MEDICAL_TUNING_SET in sets:
        out += _training_medical(limit or 6)
    if "photos" in sets:
        for name in [n for n in images.split_names("held_out") if n not in ALREADY_BLURRED][: limit or None]:
            out.append(("photos", name, images.to_grayscale(images.load_example(name))))
    if "colour" in sets:
        for name in COLOUR_HELD_OUT[: limit or None]:
            out.append(("colour", name, np.asarray(images.load_example(name).convert("RGB"), dtype=np.float32) / 255))
    if "medical" in sets and not datasets.medical_missing():
        for name, img in datasets.held_out_medical(limit):
            out.append(("medical", name, images.to_grayscale(img)))
    return out


def _full_range(hu: np.ndarray) -> np.ndarray:
    """A CT slice mapped as ``images.dicom_pixels`` maps a held-out one: air (−1000 HU) to its 99.5th percentile."""
    top = float(np.percentile(hu, images.DICOM_TOP_PERCENTILE))
    return np.clip((hu - images.AIR_HU) / max(top - images.AIR_HU, 1.0), 0.0, 1.0)


def _training_medical(count: int) -> list[tuple[str, str, np.ndarray]]:
    """``count`` CT slices in a soft-tissue window (40 / 400 HU), the same in full range (as the held-out DICOM slices
    are read) and ``count`` MRI slices of the training data, evenly spaced."""
    out = []
    for name, read, scale in (("ct-head", datasets.ct_slices, lambda s: datasets.ct_window(s, 40.0, 400.0)),
                              ("ct-head-full", datasets.ct_slices, _full_range),
                              ("mri", datasets.mri_slices, lambda s: s)):  # fmt: skip
        paths = datasets.SOURCES[name.removesuffix("-full")].paths()
        if not paths:
            continue
        slices = read(str(paths[0]))
        for i in np.linspace(0, len(slices) - 1, count).astype(int):
            out.append((MEDICAL_TUNING_SET, f"{name}-{i}", np.asarray(scale(slices[i]), dtype=np.float32)))
    return out


def draw_kernel(kind: str, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
    """A random kernel of ``kind`` and the truth the estimate is scored against."""
    if kind == "motion":
        length, angle = int(rng.choice(MOTION_LENGTHS)), float(rng.uniform(0.0, 180.0))
        return motion_kernel(length, angle, "centered"), {"blur": "motion", "kernel_size": length, "angle": round(angle, 1)}
    if kind == "gaussian":
        variance = float(rng.uniform(*VARIANCE_RANGE))
        return gaussian_kernel(gaussian_size(variance), variance), {"blur": "gaussian", "variance": round(variance, 3)}
    if kind == "shake":
        size = int(rng.choice((9, 11, 13, 15)))
        return shake_kernel(size, int(rng.integers(1 << 30))), {"blur": "shake", "kernel_size": size}
    raise ValueError(f"unknown blind kind {kind!r}; choose from {', '.join(BLIND_KINDS)}")


def blur_with_border(scene: np.ndarray, kernel: torch.Tensor, size: int, noise: float, rng: np.random.Generator,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A crop of ``scene`` (side ``size``, or the largest that fits) as a camera sees it: a crop ``MARGIN`` larger
    on each side blurred by ``kernel``, its centre kept, then relative noise ``noise``. Returns (x_true, y_delta),
    each (1, 1, s, s); for a colour scene (H, W, 3), each (s, s, 3), the same crop of every channel."""
    if scene.ndim == 3:  # colour: every channel blurred by the same kernel, noise relative per channel
        planes = [blur_with_border(np.ascontiguousarray(scene[..., c]), kernel, size, noise, np.random.default_rng(seed),
                                   generator) for c, seed in zip(range(3), [int(rng.integers(1 << 30))] * 3)]  # fmt: skip
        return tuple(torch.stack([p[i][0, 0] for p in planes], -1) for i in range(2))  # (s, s, 3) each
    h, w = scene.shape
    side = min(size, h - 2 * MARGIN, w - 2 * MARGIN)
    if side < 32:
        raise ValueError(f"an image of {w}×{h} is too small for the blind benchmark")
    r, c = int(rng.integers(0, h - side - 2 * MARGIN + 1)), int(rng.integers(0, w - side - 2 * MARGIN + 1))
    big = torch.from_numpy(np.ascontiguousarray(scene[r : r + side + 2 * MARGIN, c : c + side + 2 * MARGIN]))[None, None]
    inner = (..., slice(MARGIN, MARGIN + side), slice(MARGIN, MARGIN + side))
    y = Blur(kernel).forward(big)[inner]
    return big[inner].clone(), add_relative_noise(y, noise, generator)


def kernel_errors(found: KernelEstimate, truth: dict) -> dict:
    """The estimate's errors against the truth: angle (degrees, modulo 180) and length (px) for a motion,
    the variance's relative error for a Gaussian; ``family`` whether the right family was found."""
    spec = found.spec
    out: dict = {"found": found.to_dict()["kernel"], "noise_found": round(found.noise, 5), "family": spec.blur == truth["blur"]}
    if truth["blur"] == "motion":
        out["angle_error"] = abs((spec.angle - truth["angle"] + 90.0) % 180.0 - 90.0) if spec.blur == "motion" else None
        out["length_error"] = abs(spec.kernel_size - truth["kernel_size"]) if spec.blur == "motion" else None
    elif truth["blur"] == "gaussian":
        out["variance_error"] = abs(spec.variance / truth["variance"] - 1.0) if spec.blur == "gaussian" else None
    return out


def _scores(image: np.ndarray, x_true: torch.Tensor | np.ndarray) -> dict[str, float]:
    x = np.asarray(x_true[0, 0] if x_true.ndim == 4 else x_true, dtype=np.float32)
    b = slice(BORDER, -BORDER)
    if x.ndim == 3:  # colour: PSNR over all channels, SSIM their mean, and the largest shift of a channel's mean
        return {"psnr": _psnr(image, x), "ssim": float(np.mean([ssim(image[..., c], x[..., c]) for c in range(3)])),
                "psnr_inner": _psnr(image[b, b], x[b, b]),
                "colour_shift": float(max(abs(image[..., c].mean() / x[..., c].mean() - 1) for c in range(3)))}  # fmt: skip
    return {"psnr": psnr(image, x), "ssim": ssim(image, x), "psnr_inner": psnr(image[b, b], x[b, b])}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((np.asarray(a, np.float64) - b) ** 2)), 1e-20)))


def _run_scored(methods: list, grey: torch.Tensor, y_delta: torch.Tensor, x_true, op, tag: str) -> dict[str, dict]:
    """Each method's scores as ``name + tag``; on a colour measurement restored on the luminance (chroma kept) and,
    handed a kernel (``op``: then with real edges), also each channel on its own (``name + tag + "/channels"``)."""
    colour = y_delta.ndim == 3
    scores = {}
    for r in run_methods(methods, grey, op, with_dc=False, wrap=real_edges):
        image = images.with_luminance(y_delta.numpy(), r.image) if colour else r.image
        scores[r.name + tag] = _scores(image, x_true)
    if colour and op is not None:
        channels = y_delta.permute(2, 0, 1)[:, None]  # (3, 1, s, s): the planes, each restored on its own
        for r in run_methods(methods, channels, op, with_dc=False, wrap=real_edges):
            scores[f"{r.name}{tag}/channels"] = _scores(r.image, x_true)
    return scores


def run_blind(cfg: BlindConfig, engine: Engine | None = None, report: Report = no_progress) -> dict:
    """The blind benchmark (see the module docstring): every sample's kernel errors and scores, and summaries per
    set and kind (medians of the kernel errors, means of the scores)."""
    engine = engine or Engine(cfg.device)
    networks = [m for m in cfg.methods if m in registry.networks()]
    baselines = [m for m in cfg.methods if m not in networks and m != "input"]  # the measurement is always scored
    methods = engine.methods(networks, baselines, regime="general")
    missing = [f"{m.label}: {m.error}" for m in methods if isinstance(m, Unavailable)]
    if missing:
        raise CheckpointError("the blind benchmark cannot run " + "; ".join(missing))
    handed = [m for m in methods if m.handed_operator]  # run with real edges (``_run_scored``)
    blind = [m for m in methods if not m.handed_operator]  # end-to-end: nothing to hand them
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    scenes = held_out(cfg.sets, cfg.limit)
    if not scenes:
        raise FileNotFoundError("no held-out image is available for the blind benchmark")
    samples = []
    total = len(scenes) * len(cfg.kinds) * cfg.per_image
    for set_name, name, scene in scenes:
        for kind in cfg.kinds:
            for _ in range(cfg.per_image):
                kernel, truth = draw_kernel(kind, rng)
                noise = float(rng.uniform(*NOISE_RANGE))
                x_true, y_delta = blur_with_border(scene, kernel, cfg.size, noise, rng, generator)
                colour = y_delta.ndim == 3
                grey = torch.from_numpy(images.luminance(y_delta.numpy()))[None, None] if colour else y_delta
                start = time.perf_counter()
                found = estimate(grey[0, 0].numpy())
                sample = {"set": set_name, "image": name, "kind": kind, "truth": truth | {"noise": round(noise, 4)},
                          "estimate_ms": (time.perf_counter() - start) * 1000, **kernel_errors(found, truth)}  # fmt: skip
                y_seen = y_delta.clamp(0, 1).numpy() if colour else y_delta[0, 0].clamp(0, 1).numpy()
                scores = {"input": _scores(y_seen, x_true)}

                for methods, op, tag in ((blind, None, ""), (handed, found.spec.build(), "@estimate"), (handed, Blur(kernel), "@true")):
                    scores |= _run_scored(methods, grey, y_delta, x_true, op, tag)
                sample["scores"] = scores
                samples.append(sample)
                report(len(samples), total, f"{name}, {kind}")
    return {"protocol": {"sets": list(cfg.sets), "kinds": list(cfg.kinds), "per_image": cfg.per_image, "size": cfg.size,
                         "seed": cfg.seed, "border": BORDER, "noise": list(NOISE_RANGE), "motion_lengths": list(MOTION_LENGTHS),
                         "variances": list(VARIANCE_RANGE), "device": str(engine.device)},  # fmt: skip
            "summary": summarize(samples), "samples": samples}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def summarize(samples: list[dict]) -> dict:
    """Per (set, kind): n, the share of the right family, the median kernel errors, each method's mean scores."""
    out = {}
    for key in sorted({(s["set"], s["kind"]) for s in samples}):
        group = [s for s in samples if (s["set"], s["kind"]) == key]
        methods = list(group[0]["scores"])
        out[f"{key[0]}/{key[1]}"] = {
            "n": len(group),
            "family": float(np.mean([s["family"] for s in group])),
            "angle_error": _median([s.get("angle_error", 99.0 if s["kind"] == "motion" else None) for s in group]),
            "length_error": _median([s.get("length_error", 99 if s["kind"] == "motion" else None) for s in group]),
            "variance_error": _median([s.get("variance_error", 9.0 if s["kind"] == "gaussian" else None) for s in group]),
            "scores": {m: {k: float(np.mean([s["scores"][m][k] for s in group])) for k in group[0]["scores"][m]}
                       for m in methods},  # fmt: skip
        }
    return out


def format_blind(result: dict) -> str:
    """The summary as a Markdown table per (set, kind): kernel errors, then PSNR (whole / inner) and SSIM."""
    lines = []
    for key, s in result["summary"].items():
        errors = ", ".join(f"{label} {s[k]:.2f}" for k, label in (("angle_error", "median angle error °"),
                           ("length_error", "median length error px"), ("variance_error", "median variance error"))
                           if s[k] is not None and not math.isnan(s[k]))  # fmt: skip
        lines += [f"**{key}** (n = {s['n']}, right family {s['family']:.0%}{'; ' + errors if errors else ''})", "",
                  "| method | PSNR | PSNR away from the border | SSIM | largest shift of a channel's mean |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, v in s["scores"].items():
            shift = f"{v['colour_shift']:.2%}" if "colour_shift" in v else "(grey)"
            lines.append(f"| {_method_label(name)} | {v['psnr']:.2f} | {v['psnr_inner']:.2f} | {v['ssim']:.3f} | {shift} |")
        lines.append("")
    return "\n".join(lines)


def _method_label(name: str) -> str:
    base, _, tag = name.partition("@")
    tag, _, channels = tag.partition("/")
    label = "Measurement" if base == "input" else registry.label(base)
    label = f"{label}, handed the {'estimated' if tag == 'estimate' else 'true'} K" if tag else label
    return label + (", each channel on its own" if channels else "")
