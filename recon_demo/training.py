"""Training: one loop behind the ``train`` CLI, the loss study and the app's Train tab.

A ``TrainConfig`` says everything a run needs (model, loss spec, steps, batch, patch, learning rate and
schedule, the operator or ranges of operators, data, seed, device). ``Trainer.run`` is a generator of
``TrainEvent``: one per optimiser step (loss, each loss term, learning rate, elapsed time) and, every
``eval_every`` steps and at the end, the metrics and the reconstruction of one fixed held-out measurement.
The CLI draws them as a progress bar, the UI as live plots.

Measurements are synthesised on the fly, ``y_delta = K x_true + e`` with the lecture's relative noise per
image (for ``task="ct"``: the sinogram ``A x_true + e`` of a whole image, whose filtered back-projection is
the network's input, cropped with its target), from clean training images that are never stored blurred:
the training split of the package images, procedural phantoms and any folder of user images. A ``cancel`` (a ``threading.Event`` or a callable) is
polled before every module's forward pass and around the backward pass, so a run stops within a fraction of
a step and keeps the model as of its last completed step.

Runs are resumable: every ``checkpoint_every`` steps, on cancel and at the end, the model, optimiser,
scheduler, step count and random-number states go to ``<checkpoint>.state.pt``; ``resume=True`` continues
from there, and on the CPU a resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recon_demo import datasets, distributed, images
from recon_demo.checkpoints import CheckpointError, ManifestEntry, load_state, read_state_dict, save_checkpoint, sha256_file
from recon_demo.ct import ct_regime
from recon_demo.engine import select_device
from recon_demo.losses import WeightedLoss, check_available, parse_loss
from recon_demo.metrics import compute_metrics
from recon_demo.models import create_model, model_info
from recon_demo.operators import BLUR_TYPES, KERNEL_STYLES, LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec, add_relative_noise
from recon_demo.progress import CLIProgress
from recon_demo.runtime import native_bf16, tune_allocator
from recon_demo.tomography import CT_NOISE, FILTERS, LECTURE_ANGLES, CTSpec, check_geometry, radon_operator

TASKS = ("deblur", "ct")
SCHEDULES = ("constant", "cosine")
SAMPLINGS = ("patches", "epochs")
DATA_SOURCES = ("package", "phantoms")  # the default; besides these, datasets.SOURCES and folders of images
MAX_STEPS = 1_000_000
MAX_BATCH = 256
MAX_IMAGE_SIZE = 1024


class TrainingError(ValueError):
    """A configuration that cannot be trained, or a run that cannot go on (the message says why)."""


@dataclass(frozen=True)
class OperatorRanges:
    """Random operators for a general model: every training image draws its own blur and noise level."""

    blurs: tuple[str, ...] = BLUR_TYPES  # blur types drawn with equal probability
    kernel_size: tuple[int, int] = (3, 15)  # odd sizes in this closed range
    angle: tuple[float, float] = (0.0, 180.0)  # motion angle in degrees, uniform
    styles: tuple[str, ...] = KERNEL_STYLES  # motion kernel styles, equal probability
    variance: tuple[float, float] = (0.5, 4.0)  # Gaussian variance, uniform
    noise: tuple[float, float] = (0.0, 0.05)  # relative noise level, uniform
    lecture_share: float = 0.0  # the fraction of draws that are exactly the lecture's setting (motion 9 @ 20°, δ 0.01)

    def validate(self) -> OperatorRanges:
        for name, values, known in (("blur", self.blurs, BLUR_TYPES), ("kernel style", self.styles, KERNEL_STYLES)):
            if not values or any(v not in known for v in values):
                raise TrainingError(f"{name}s must be a non-empty list of {', '.join(known)}, got {list(values)}")
        for name, (lo, hi) in (("kernel size", self.kernel_size), ("angle", self.angle), ("variance", self.variance),
                               ("noise", self.noise)):  # fmt: skip
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise TrainingError(f"the {name} range must be two finite numbers, low <= high, got ({lo}, {hi})")
        # The bounds themselves must be valid operators; everything in between then is.
        for size in self.kernel_size:
            OperatorSpec("motion", size, 0.0).kernel()
        if self.variance[0] <= 0 or self.noise[0] < 0:
            raise TrainingError(f"variances must be positive and noise levels >= 0, got {self.variance} and {self.noise}")
        if not 0 <= self.lecture_share <= 1:
            raise TrainingError(f"the lecture's share of the draws must be in [0, 1], got {self.lecture_share}")
        return self

    def sample(self, generator: torch.Generator) -> tuple[OperatorSpec, float]:
        """One (operator, noise level) pair drawn with ``generator``: the lecture's with probability
        ``lecture_share``, else one from the ranges."""
        if self.lecture_share and float(torch.rand((), generator=generator)) < self.lecture_share:
            return LECTURE_OPERATOR, LECTURE_NOISE

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        def pick(options):
            return options[int(torch.randint(len(options), (), generator=generator))]

        sizes = list(range(int(self.kernel_size[0]), int(self.kernel_size[1]) + 1, 2))
        spec = OperatorSpec(
            blur=pick(self.blurs),
            kernel_size=pick(sizes),
            angle=uniform(*self.angle),
            variance=uniform(*self.variance),
            style=pick(self.styles),
        )
        return spec, uniform(*self.noise)


# The shipped general models' regime. One draw in four is the lecture's setting, where the app opens: measured
# without it, a general SimpleCNN (7×7 pixels of view) ends 1.7 dB behind the course one there.
GENERAL_RANGES = OperatorRanges(lecture_share=0.25)


@dataclass
class TrainConfig:
    """One training run; the ``train`` CLI's flags map onto these fields one to one."""

    task: str = "deblur"  # "deblur" (a blur K) or "ct" (a sinogram; the model refines its FBP)
    model: str = "unet"  # registry name
    model_kwargs: dict = field(default_factory=dict)  # constructor arguments, e.g. {"n_filters": 16}
    loss: str = "mse"  # a loss spec such as "mse + 0.2*ssim + 0.1*fourier"
    steps: int = 1000  # optimiser steps in the whole run
    batch_size: int = 8
    patch_size: int = 128  # side of the square training crops
    lr: float = 1e-3  # Adam's learning rate
    schedule: str = "constant"  # "constant", or "cosine" (down to 1 % of lr at the last step)
    operator: OperatorSpec = LECTURE_OPERATOR  # the fixed blur, when ranges is None
    noise: float = LECTURE_NOISE  # the fixed relative noise level, when ranges is None
    ranges: OperatorRanges | None = None  # random operators (a general model) instead of the fixed one
    angles: int = LECTURE_ANGLES  # ct: projection angles in [0, π)
    ct_filter: str = "ramp"  # ct: the FBP window that makes the network's input
    data: tuple[str, ...] = DATA_SOURCES  # package, phantoms, datasets.SOURCES (ct-head, mri, photos), folders; "NAME:W" weights a source
    crop_scales: tuple[float, ...] = (1.0,)  # each crop covers scale × patch_size pixels, shrunk to patch_size (scale drawn per crop)
    min_detail: float = 0.0  # redraw (up to 8 times) a crop whose mean gradient is below this: flat or out of focus
    image_size: int = 256  # training images are resized to this shorter side before cropping
    max_images: int | None = None  # the first N training images only (the loss study's 32)
    phantoms: int = 64  # how many procedural phantoms the "phantoms" source holds
    sampling: str = "patches"  # "patches": random crops with flips and 90° rotations; "epochs": centre crops, shuffled
    epoch_batches: int | None = None  # "epochs": at most this many batches per epoch (the lecture's 8)
    seed: int = 0  # torch.manual_seed before the model is built; the data and noise generator's seed
    device: str | None = None  # cpu, cuda, mps; None: RECON_DEVICE or the best available
    amp: bool = False  # bf16 autocast (CUDA, or the CPU: twice as fast on one with AVX512-BF16)
    eval_every: int = 50  # validate every N steps (0: only at the end)
    val_image: str = "camera"  # the held-out image of the fixed validation measurement
    val_size: int = 256  # its Resize side
    checkpoint: str | None = None  # the final weights (.safetensors); the resumable state goes beside it
    checkpoint_every: int = 100  # save the resumable state every N steps (0: only on cancel and at the end)
    init: str | None = None  # start from these weights of the same architecture (say, a general model from its course sibling)

    def validated(self) -> TrainConfig:
        """A copy with normalised values; raises ``TrainingError`` saying what is allowed."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TrainingError(message)

        try:
            model_info(self.model)
            parse_loss(self.loss)
            self.operator.kernel()
            if self.ranges is not None:
                self.ranges.validate()
            if self.task == "ct":
                check_geometry(self.image_size, self.angles)
                check_geometry(self.val_size, self.angles)
        except (KeyError, ValueError) as err:
            raise TrainingError(err.args[0] if err.args else str(err)) from None
        need(
            isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and 0 <= self.noise < 10,
            f"noise level must be in [0, 10), got {self.noise!r}",
        )
        need(isinstance(self.model_kwargs, dict), f"model kwargs must be a mapping, got {self.model_kwargs!r}")
        need(self.task in TASKS, f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        need(self.ct_filter in FILTERS, f"unknown FBP filter {self.ct_filter!r}; choose one of {', '.join(FILTERS)}")
        need(self.task != "ct" or self.ranges is None, "random blur operators (the general regime) are for deblurring, not CT")
        for name, value, lo, hi in (("steps", self.steps, 1, MAX_STEPS), ("batch size", self.batch_size, 1, MAX_BATCH),
                                    ("image size", self.image_size, 8, MAX_IMAGE_SIZE),
                                    ("patch size", self.patch_size, 8, self.image_size),
                                    ("validation size", self.val_size, 8, MAX_IMAGE_SIZE)):  # fmt: skip
            need(_is_int(value) and lo <= value <= hi, f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        for name, value in (("eval_every", self.eval_every), ("checkpoint_every", self.checkpoint_every),
                            ("phantoms", self.phantoms)):  # fmt: skip
            need(_is_int(value) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        for name, value in (("max_images", self.max_images), ("epoch_batches", self.epoch_batches)):
            need(value is None or (_is_int(value) and value >= 1), f"{name} must be an integer >= 1, got {value!r}")
        need(isinstance(self.lr, (int, float)) and 0 < self.lr <= 1, f"learning rate must be in (0, 1], got {self.lr!r}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        need(self.sampling in SAMPLINGS, f"unknown sampling {self.sampling!r}; choose one of {', '.join(SAMPLINGS)}")
        need(self.init is None or Path(self.init).is_file(), f"no checkpoint to start from at {self.init}")
        need(bool(self.data), f"no training data: give one or more of {', '.join(DATA_SOURCES)} or a folder")
        for item in self.data:
            parse_source(item)  # a bad weight or an unknown name fails here
        need(bool(self.crop_scales) and all(isinstance(c, (int, float)) and 1 <= c <= 4 for c in self.crop_scales)
             and max(self.crop_scales) * self.patch_size <= self.image_size,
             f"crop scales must be in [1, 4] with scale × patch size ≤ image size, got {self.crop_scales!r}")  # fmt: skip
        need(isinstance(self.min_detail, (int, float)) and 0 <= self.min_detail < 1, f"min_detail must be in [0, 1), got {self.min_detail!r}")
        need(self.val_image in images.catalogue(), f"unknown validation image {self.val_image!r}")
        need(
            images.catalogue()[self.val_image].split == "held_out",
            f"the validation image must be a held-out image, not {self.val_image!r}",
        )
        return replace(self, data=tuple(self.data), lr=float(self.lr), crop_scales=tuple(float(c) for c in self.crop_scales))

    def to_dict(self) -> dict:
        """Plain JSON-ready values (for the manifest and the resumable state)."""
        return json.loads(json.dumps(asdict(self)))

    def regime(self) -> str:
        """``general`` (random operators), ``course`` (the lecture's setting), ``ct-<angles>`` (CT at 256², the
        ramp filter and noise 0.01) or ``custom`` (another fixed setting)."""
        if self.task == "ct":
            standard = (self.noise, self.ct_filter, self.image_size, self.val_size) == (CT_NOISE, "ramp", 256, 256)
            return ct_regime(self.angles) if standard else "custom"
        if self.ranges is not None:
            return "general"
        return "course" if self.operator == LECTURE_OPERATOR and self.noise == LECTURE_NOISE else "custom"

    def state_path(self) -> Path | None:
        """Where the resumable state of this run lives: beside the checkpoint, ``NAME.state.pt``."""
        return None if self.checkpoint is None else Path(self.checkpoint).with_suffix(".state.pt")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Fields that may differ between a run and its resumption: where and how it runs, not what it learns.
_RESUMABLE_CHANGES = {"steps", "device", "amp", "eval_every", "checkpoint", "checkpoint_every"}


@dataclass
class TrainEvent:
    """What the loop reports after each step (``metrics`` and ``x_rec`` at validations only)."""

    step: int  # optimiser steps done
    steps: int  # steps the run will take in all
    loss: float  # this step's weighted loss
    parts: dict[str, float]  # each loss term's unweighted value
    lr: float  # learning rate used for this step
    elapsed: float  # seconds of training, earlier sittings of a resumed run included
    metrics: dict[str, float | None] | None = None  # MSE, PSNR, SSIM on the fixed held-out measurement
    x_rec: np.ndarray | None = None  # the current reconstruction of it, (H, W) in [0, 1]
    status: str = "running"  # "running", then "done" or "cancelled" on the last event


# ---------------------------------------------------------------------------------------------- data


@lru_cache(maxsize=256)
def _package_image(name: str, size: int) -> torch.Tensor:
    return images.to_tensor(images.load_example(name), size)[0]  # (1, H, W)


@lru_cache(maxsize=1024)
def _phantom_image(seed: int, size: int) -> torch.Tensor:
    return torch.from_numpy(images.ellipse_phantom(size, seed))[None]  # (1, size, size)


def _folder_files(folder: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        known = ", ".join((*DATA_SOURCES, *datasets.SOURCES))
        raise TrainingError(f"no folder {root} (data sources are {known} or a folder of images)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"no images ({', '.join(images.IMAGE_SUFFIXES)}) under {root}")
    return files


def parse_source(item: str) -> tuple[str, float | None]:
    """``"photos:3"`` → ``("photos", 3.0)``; ``"photos"`` → ``("photos", None)`` (no weight given)."""
    name, sep, weight = item.rpartition(":")
    if sep and name:
        try:
            value = float(weight)
        except ValueError:
            return item, None  # a folder whose name holds a colon
        if not (math.isfinite(value) and value > 0):
            raise TrainingError(f"a source's weight must be a positive number, got {item!r}")
        return name, value
    return item, None


@lru_cache(maxsize=512)
def _photo_image(path: str, size: int) -> torch.Tensor:
    return images.to_tensor(images.open_image(path), size)[0]  # (1, H, W)


def _slice_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    """A 2-D slice as (1, H, W), resized (bilinear, antialiased) to ``size`` on its shorter side."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    out = F.interpolate(t, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear", antialias=True,
                        align_corners=False)  # fmt: skip
    return out[0]


class TrainingImages:
    """The clean training images of a config, in a fixed order, loaded on first use and kept.

    Order: each source of ``sources`` in turn: the package images of the training split (catalogue order), the
    phantoms (seeds from ``images.PHANTOM_TRAIN_SEED_START``), a named open source (``datasets.SOURCES``:
    its slices or photographs), or a folder's files in sorted path order; ``max_images`` keeps the first N.
    Every image is (1, H, W), resized to ``image_size`` on its shorter side; grey in [0, 1], except CT slices,
    kept in HU until ``image`` draws a display window. With weights (``"photos:3"``), ``draw`` picks a source
    with probability ∝ its weight, then one of its images; without, every image is equally likely.
    """

    def __init__(self, sources: tuple[str, ...], image_size: int, phantoms: int = 64, max_images: int | None = None):
        self.size = image_size
        self.items: list[tuple[str, object]] = []
        spans: list[tuple[str, int, int, float | None]] = []  # (source, first item, end, weight)
        for item in sources:
            source, weight = parse_source(item)
            start = len(self.items)
            if source == "package":
                self.items += [("package", name) for name in images.split_names("train")]
            elif source == "phantoms":
                self.items += [("phantom", images.PHANTOM_TRAIN_SEED_START + i) for i in range(phantoms)]
            elif source in datasets.SOURCES:
                self.items += _open_source_items(source)
            else:
                self.items += [("file", path) for path in _folder_files(source)]
            spans.append((source, start, len(self.items), weight))
        self.items = self.items[:max_images]
        if not self.items:
            raise TrainingError("the training data is empty")
        self.spans = [(src, a, min(b, len(self.items)), w) for src, a, b, w in spans if a < len(self.items) and b > a]
        self.weighted = any(w is not None for *_, w in self.spans)
        self._weights = torch.tensor([w if w is not None else 1.0 for *_, w in self.spans], dtype=torch.float64)
        self._files: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, generator: torch.Generator) -> int:
        """A random image index: a source by weight, then one of its images (uniform without weights)."""
        if not self.weighted:
            return int(torch.randint(len(self), (), generator=generator))
        _, start, end, _ = self.spans[int(torch.multinomial(self._weights, 1, generator=generator))]
        return start + int(torch.randint(end - start, (), generator=generator))

    def image(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Image ``index`` in [0, 1]; a CT slice through a window drawn with ``generator`` (None: soft tissue)."""
        img = self[index]
        if self.items[index][0] != "ct":
            return img
        if generator is None:
            return datasets.ct_window(img, 40.0, 400.0)
        lo, hi = datasets.CT_LEVELS
        level = lo + (hi - lo) * float(torch.rand((), generator=generator))
        w_lo, w_hi = math.log(datasets.CT_WIDTHS[0]), math.log(datasets.CT_WIDTHS[1])
        width = math.exp(w_lo + (w_hi - w_lo) * float(torch.rand((), generator=generator)))
        return datasets.ct_window(img, level, width)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as (1, H, W), shorter side ``image_size`` (CT slices in HU)."""
        kind, key = self.items[index]
        if kind == "package":
            return _package_image(key, self.size)
        if kind == "phantom":
            return _phantom_image(key, self.size)
        if kind == "photo":
            return _photo_image(str(key), self.size)
        if index not in self._files:
            try:
                if kind in ("ct", "mri"):
                    path, number = key
                    slices = datasets.ct_slices(path) if kind == "ct" else datasets.mri_slices(path)
                    self._files[index] = _slice_tensor(slices[number], self.size)
                else:
                    self._files[index] = images.to_tensor(images.open_image(key), self.size)[0]
            except (ValueError, OSError) as err:
                raise TrainingError(f"cannot read the training image {key}: {err}") from None
        return self._files[index]

    def describe(self) -> dict:
        """What the data is, for the manifest: counts per kind and per source, with their licences."""
        counts: dict[str, int] = {}
        for kind, _ in self.items:
            counts[kind] = counts.get(kind, 0) + 1
        out = {
            "images": len(self.items),
            "package": [key for kind, key in self.items if kind == "package"],
            "phantoms": counts.get("phantom", 0),
            "files": counts.get("file", 0),
            "size": self.size,
        }
        named = [(src, b - a, w) for src, a, b, w in self.spans if src in datasets.SOURCES]
        if named or self.weighted:
            out["sources"] = {src: {"images": b - a, "weight": w if w is not None else 1.0,
                                    **({"license": datasets.SOURCES[src].license} if src in datasets.SOURCES else {})}
                              for src, a, b, w in self.spans}  # fmt: skip
        return out


def _open_source_items(name: str) -> list[tuple[str, object]]:
    """The items of a named open source; a source that is not installed says how to install it."""
    source = datasets.SOURCES[name]
    paths = source.paths()
    if not paths:
        raise TrainingError(f"the data source {name} is not installed here: {source.install}")
    if name == "photos":
        return [("photo", p) for p in paths]
    read = datasets.ct_slices if name == "ct-head" else datasets.mri_slices
    kind = "ct" if name == "ct-head" else "mri"
    return [(kind, (str(p), i)) for p in paths for i in range(len(read(str(p))))]


def _random_patch(img: torch.Tensor, patch: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``patch``² crop, then one of the 8 flips and 90° rotations."""
    _, h, w = img.shape
    top = int(torch.randint(h - patch + 1, (), generator=generator))
    left = int(torch.randint(w - patch + 1, (), generator=generator))
    crop = img[:, top : top + patch, left : left + patch]
    crop = torch.rot90(crop, int(torch.randint(4, (), generator=generator)), dims=(1, 2))
    return crop.flip(2) if int(torch.randint(2, (), generator=generator)) else crop


def detail(crop: torch.Tensor) -> float:
    """Mean absolute difference between neighbouring pixels (both directions): low for flat or blurred crops."""
    return 0.5 * float((crop[..., 1:, :] - crop[..., :-1, :]).abs().mean() + (crop[..., :, 1:] - crop[..., :, :-1]).abs().mean())


def _training_patch(cfg: TrainConfig, data: TrainingImages, index: int, generator: torch.Generator) -> torch.Tensor:
    """One training crop of image ``index``: at a drawn scale when ``crop_scales`` offers several (the crop covers
    scale × patch pixels, shrunk by area), redrawn up to 8 times from the same image while its ``detail`` is
    below ``min_detail``. With the defaults it is exactly ``_random_patch`` (the same draws)."""
    for attempt in range(8):
        img = data.image(index, generator)
        scale = cfg.crop_scales[0]
        if len(cfg.crop_scales) > 1:
            scale = cfg.crop_scales[int(torch.randint(len(cfg.crop_scales), (), generator=generator))]
        side = min(round(cfg.patch_size * scale), *img.shape[-2:])
        crop = _random_patch(img, side, generator)
        if side != cfg.patch_size:
            crop = F.interpolate(crop[None], size=(cfg.patch_size, cfg.patch_size), mode="area")[0]
        if cfg.min_detail <= 0 or attempt == 7 or detail(crop) >= cfg.min_detail:
            return crop
    raise AssertionError("unreachable")


def _centre_crop(img: torch.Tensor, patch: int) -> torch.Tensor:
    _, h, w = img.shape
    top, left = (h - patch) // 2, (w - patch) // 2
    return img[:, top : top + patch, left : left + patch]


def clean_batch(cfg: TrainConfig, data: TrainingImages, step: int, generator: torch.Generator) -> torch.Tensor:
    """The clean images of step ``step`` (0-based), (B, 1, P, P).

    ``patches``: random images and crops drawn with ``generator``. ``epochs``: the lecture's shuffled
    epochs of whole (centre-cropped) images, each epoch's order drawn from ``seed`` and the epoch number,
    so that a resumed run finds its place without extra state.
    """
    if cfg.sampling == "patches":
        if data.weighted:
            indices = [data.draw(generator) for _ in range(cfg.batch_size)]
        else:  # all indices first, as before weights existed: the same draws reproduce the shipped recipes
            indices = torch.randint(len(data), (cfg.batch_size,), generator=generator).tolist()
        return torch.stack([_training_patch(cfg, data, i, generator) for i in indices])
    per_epoch = math.ceil(len(data) / cfg.batch_size)
    if cfg.epoch_batches is not None:
        per_epoch = min(per_epoch, cfg.epoch_batches)
    epoch, batch = divmod(step, per_epoch)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    indices = order[batch * cfg.batch_size : (batch + 1) * cfg.batch_size].tolist()
    return torch.stack([_centre_crop(data.image(i), cfg.patch_size) for i in indices])


def measure(cfg: TrainConfig, x_true: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``y_delta = K x_true + e`` for a batch: the fixed operator, or one drawn per image from the ranges."""
    if cfg.ranges is None:
        return add_relative_noise(cfg.operator.build().forward(x_true), cfg.noise, generator)
    out = []
    for x in x_true.split(1):
        spec, level = cfg.ranges.sample(generator)
        out.append(add_relative_noise(spec.build().forward(x), level, generator))
    return torch.cat(out)


def ct_batch(
    cfg: TrainConfig, data: TrainingImages, step: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """CT training pairs ``(x_true, x_fbp)``, (B, 1, P, P) on ``device``.

    Whole ``image_size``² images (with their flips and rotations) are projected, noised and
    back-projected, so that the FBP's streaks are those of the full geometry; then the same random
    ``patch_size``² crop is taken from each image and its FBP.
    """
    full = clean_batch(replace(cfg, patch_size=cfg.image_size), data, step, generator).to(device)  # (B, 1, n, n)
    radon = radon_operator(cfg.image_size, cfg.angles)
    y_delta = add_relative_noise(radon.forward(full), cfg.noise, generator)
    x_fbp = radon.fbp(y_delta, cfg.ct_filter)
    if cfg.patch_size == cfg.image_size:
        return full, x_fbp
    pairs = [_random_patch(torch.cat([x, f]), cfg.patch_size, generator) for x, f in zip(full, x_fbp)]  # (2, P, P) each
    both = torch.stack(pairs)  # (B, 2, P, P)
    return both[:, :1], both[:, 1:]


def validation_pair(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out pair ``(x_true, network input)``: ``val_image`` with the config's fixed operator
    (the lecture's for a general model; for CT the FBP of its sinogram) and noise drawn from ``seed``; the
    same in every run of that seed."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.task == "ct":
        x_true = images.protocol_tensor(images.load_example(cfg.val_image), cfg.val_size, square=True)
        radon = radon_operator(cfg.val_size, cfg.angles)
        return x_true, radon.fbp(add_relative_noise(radon.forward(x_true), cfg.noise, generator), cfg.ct_filter)
    x_true = images.protocol_tensor(images.load_example(cfg.val_image), cfg.val_size)
    y_delta = add_relative_noise(cfg.operator.build().forward(x_true), cfg.noise, generator)
    return x_true, y_delta


# ---------------------------------------------------------------------------------------------- loop


class _Stop(Exception):
    """Raised inside the forward pass when the run is cancelled."""


def _should_stop(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    if cfg.schedule == "cosine":
        return lambda step: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    return lambda step: 1.0


class Trainer:
    """One run of a ``TrainConfig``: build with it (and ``resume=True`` to continue), then iterate ``run()``."""

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg = cfg.validated()
        tune_allocator()
        try:
            self.world, self.device = distributed.setup(select_device(cfg.device))  # torchrun: join the others
        except (ValueError, RuntimeError) as err:
            raise TrainingError(str(err)) from None
        if cfg.amp and self.device.type not in ("cuda", "cpu"):
            raise TrainingError(f"mixed precision (amp) runs on CUDA or the CPU, not on {self.device.type}")
        self.notices: list[str] = []  # what the CLI says before training (a refused --amp)
        if cfg.amp and not (bf16 := native_bf16(self.device.type))[0]:
            self.cfg = cfg = replace(cfg, amp=False)  # the manifest then records fp32, the precision actually used
            self.notices.append(f"--amp ignored: {bf16[1]}; training in fp32")
        self.loss_fn: WeightedLoss = parse_loss(cfg.loss)
        try:
            check_available(self.loss_fn)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        torch.manual_seed(cfg.seed)  # the lecture's seeding: identical initial weights for every loss
        try:
            self.model: nn.Module = create_model(cfg.model, **cfg.model_kwargs).to(self.device)
        except TypeError as err:
            raise TrainingError(f"bad model kwargs for {cfg.model}: {err}") from None
        if cfg.init is not None:  # a warm start; a resume then replaces these weights with the saved ones
            try:
                load_state(self.model, read_state_dict(cfg.init), cfg.model)
            except CheckpointError as err:
                raise TrainingError(f"cannot start from {cfg.init}: {err}") from None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(cfg))
        self.generator = torch.Generator().manual_seed(cfg.seed)  # crops, flips, operators and noise
        self.data = TrainingImages(cfg.data, cfg.image_size, cfg.phantoms, cfg.max_images)
        self.x_val, self.y_val = validation_pair(cfg)
        self.step = 0
        self.elapsed = 0.0
        self.segments = [[cfg.steps, 0]]  # (the run's --steps, the step it started from): more than one after a
        # resume with another --steps, whose cosine schedule then jumps to its value at that step of the new length
        self.precision = [[0, _precision(cfg)]]  # (from step, "fp32" or "bf16"): a resume may switch --amp
        if resume:
            self._load_state()
        self.train_model: nn.Module = self.model  # what the step calls: under torchrun, DDP averages the gradients
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    # -- resumable state ----------------------------------------------------------------------------

    def _load_state(self) -> None:
        path = self.cfg.state_path()
        if path is None or not path.is_file():
            raise TrainingError(f"nothing to resume: no training state at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged or foreign file: say so, never unpickle code
            raise TrainingError(f"cannot read the training state {path} ({type(err).__name__}: {err})") from None
        saved = json.loads(state["config"])
        saved = TrainConfig().to_dict() | saved  # a field added since the state was written has its default
        current = self.cfg.to_dict()
        changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
        if changed:
            detail = ", ".join(f"{k}: {saved.get(k)!r} → {current[k]!r}" for k in changed)
            raise TrainingError(f"{path} was trained with another configuration ({detail}); start a new run instead")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.segments = json.loads(state.get("segments", "null")) or [[saved["steps"], 0]]
        if self.segments[-1][0] != self.cfg.steps:  # resumed with another length: the schedule changes from here
            self.segments.append([self.cfg.steps, self.step])
        self.precision = json.loads(state.get("precision", "null")) or [[0, _precision(TrainConfig(amp=saved["amp"]))]]
        if self.precision[-1][1] != _precision(self.cfg):  # resumed with --amp switched
            self.precision.append([self.step, _precision(self.cfg)])

    def save_state(self, generator_state: torch.Tensor | None = None) -> Path | None:
        """Write the resumable state (atomically) beside the checkpoint; ``None`` when the run has no checkpoint."""
        path = self.cfg.state_path()
        if path is None or not self.world.is_main:  # under torchrun, rank 0 writes for all (they hold the same)
            return None
        state = {
            "config": json.dumps(self.cfg.to_dict()),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state() if generator_state is None else generator_state,
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "elapsed": self.elapsed,
            "segments": json.dumps(self.segments),
            "precision": json.dumps(self.precision),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def save_weights(self) -> str | None:
        """Write the model's weights to ``checkpoint`` as safetensors; returns the sha256 (``None`` without a path)."""
        if self.cfg.checkpoint is None or not self.world.is_main:
            return None
        metadata = {"model": self.cfg.model, "kwargs": json.dumps(self.cfg.model_kwargs), "step": str(self.step)}
        return save_checkpoint(self.model, self.cfg.checkpoint, metadata)

    # -- the loop -----------------------------------------------------------------------------------

    def validate(self) -> tuple[dict[str, float | None], np.ndarray]:
        """Metrics and reconstruction of the fixed held-out measurement, with the model as it is now."""
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            x_rec = self.model(self.y_val.to(self.device)).float().clamp(0, 1).cpu()
        self.model.train(was_training)
        image = x_rec[0, 0].numpy()
        return compute_metrics(image, self.x_val), image

    def _train_step(self, cancel) -> tuple[float, dict[str, float]]:
        world = self.world
        # Under torchrun every process draws the global batch (the same draws: one seed) and keeps its slice.
        cfg = replace(self.cfg, batch_size=self.cfg.batch_size * world.size) if world.distributed else self.cfg
        if cfg.task == "ct":
            x_true, y_delta = ct_batch(cfg, self.data, self.step, self.generator, self.device)
        else:
            x_true = clean_batch(cfg, self.data, self.step, self.generator).to(self.device)
            y_delta = measure(cfg, x_true, self.generator)
        if world.distributed:
            mine = slice(world.rank * self.cfg.batch_size, (world.rank + 1) * self.cfg.batch_size)
            x_true, y_delta = x_true[mine], y_delta[mine]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp):
            x_rec = self.train_model(y_delta)
        parts = self.loss_fn.parts(x_rec.float(), x_true)
        loss = self.loss_fn.total(parts)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {float(loss.detach())} at step {self.step + 1}; try a smaller learning rate")
        stoppable = not world.distributed  # in the middle of a step the other processes would wait forever
        if stoppable and _should_stop(cancel):
            raise _Stop
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if stoppable and _should_stop(cancel):
            raise _Stop
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), {k: float(v.detach()) for k, v in parts.items()}

    def run(self, cancel=None) -> Iterator[TrainEvent]:
        """Train up to ``cfg.steps``, yielding an event per step; the last one says ``done`` or ``cancelled``.

        ``cancel`` is a ``threading.Event`` or a callable returning True to stop. On a stop the step in flight
        is dropped, the model is the one of the last completed step and its state is saved for ``resume``;
        the last event then carries no new validation (call ``validate()`` for one).
        """
        cfg = self.cfg
        self.model.train()

        def poll(*_):
            if _should_stop(cancel):
                raise _Stop

        world = self.world
        hooks = [] if world.distributed else [m.register_forward_pre_hook(poll) for m in self.model.modules()]
        last = TrainEvent(self.step, cfg.steps, math.nan, {}, self.scheduler.get_last_lr()[0], self.elapsed)
        try:
            while self.step < cfg.steps:
                if world.distributed and distributed.any_rank(_should_stop(cancel), world, self.device):
                    self.save_state()  # agreed between steps: every process stops after the same one
                    last.status = "cancelled"
                    break
                generator_state = self.generator.get_state()  # the state to save if this step is dropped
                lr = self.scheduler.get_last_lr()[0]
                start = time.perf_counter()
                try:
                    loss, parts = self._train_step(cancel)
                except _Stop:
                    self.elapsed += time.perf_counter() - start
                    self.save_state(generator_state)
                    last.status = "cancelled"
                    break
                self.step += 1
                self.elapsed += time.perf_counter() - start
                last = TrainEvent(self.step, cfg.steps, loss, parts, lr, self.elapsed)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_state()
                if self.step < cfg.steps:
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and world.is_main:
                        try:
                            last.metrics, last.x_rec = self.validate()
                        except _Stop:  # cancelled while validating: the step itself is complete
                            self.save_state()
                            last.status = "cancelled"
                            break
                    yield last
        finally:
            for h in hooks:
                h.remove()
        if last.status == "running":
            self.save_state()
            self.save_weights()
            last.status = "done"
            if world.is_main:
                last.metrics, last.x_rec = self.validate()
        yield last  # a cancelled run returns at once, without a final validation


def _precision(cfg: TrainConfig) -> str:
    return "bf16" if cfg.amp else "fp32"


def train(cfg: TrainConfig, cancel=None, resume: bool = False) -> Iterator[TrainEvent]:
    """``Trainer(cfg, resume).run(cancel)``: the events of one run."""
    return Trainer(cfg, resume).run(cancel)


# ---------------------------------------------------------------------------------------------- CLI


def heldout_metrics(cfg: TrainConfig, checkpoint: str | Path) -> dict:
    """The ``evaluate`` protocol on the held-out images for a trained checkpoint, with the command that
    reproduces it: at the run's fixed operator, or at the lecture's for a general model. For CT, against
    FBP at the run's angles and noise (``"fbp"`` takes the place of ``"measurement"``)."""
    from recon_demo.evaluate import EvalConfig, run_evaluation

    if cfg.task == "ct":
        return _ct_heldout_metrics(cfg, checkpoint)
    op = cfg.operator
    result = run_evaluation(
        EvalConfig(models=[(cfg.model, str(checkpoint))], baselines=["input"], operator=op, noise=cfg.noise, lpips=True)
    )
    flags = f"--operator {op.blur} --kernel-size {op.kernel_size} --noise {cfg.noise:g}"
    flags += f" --variance {op.variance:g}" if op.blur == "gaussian" else f" --angle {op.angle:g} --kernel-style {op.style}"
    command = f"python -m recon_demo evaluate --models {cfg.model}={checkpoint} --baselines input {flags} --lpips"
    return _metrics_record(result, command, cfg.model, ("measurement", "input"))


def _ct_heldout_metrics(cfg: TrainConfig, checkpoint: str | Path) -> dict:
    from recon_demo.evaluate import CTEvalConfig, run_ct_evaluation

    spec = CTSpec(cfg.angles, cfg.val_size, cfg.ct_filter)
    result = run_ct_evaluation(
        CTEvalConfig(models=[(cfg.model, str(checkpoint))], baselines=["fbp"], spec=spec, noise=cfg.noise, lpips=True)
    )
    flags = f"--angles {cfg.angles} --noise {cfg.noise:g}"
    flags += f" --fbp-filter {cfg.ct_filter}" if cfg.ct_filter != "ramp" else ""
    flags += f" --size {cfg.val_size}" if cfg.val_size != 256 else ""
    command = f"python -m recon_demo evaluate --task ct --models {cfg.model}={checkpoint} --baselines fbp {flags} --lpips"
    return _metrics_record(result, command, cfg.model, ("fbp", "fbp"))


def _metrics_record(result: dict, command: str, model: str, reference: tuple[str, str]) -> dict:
    """The manifest's ``metrics``: the command, protocol, images, the model's averages and the reference's
    (``reference`` = (key in the record, name in the result))."""
    key, name = reference
    return {
        "command": command,
        "protocol": result["protocol"]["summary"],
        "images": result["protocol"]["images"],
        "model": result["results"][model],
        key: result["results"][name],
    }


def manifest_entry(trainer: Trainer, checkpoint: Path, sha256: str, manifest_dir: Path, wall_s: float) -> ManifestEntry:
    """The manifest's description of a finished run: what, trained how, on what, where, and how good."""
    cfg = trainer.cfg
    if cfg.task == "ct":
        operator = CTSpec(cfg.angles, cfg.image_size, cfg.ct_filter).to_dict()
        noise = {"kind": "relative", "level": cfg.noise, "on": "sinogram"}
    elif cfg.ranges is None:
        operator, noise = cfg.operator.to_dict(), {"kind": "relative", "level": cfg.noise}
    else:
        ranges = asdict(cfg.ranges)
        noise = {"kind": "relative", "range": list(ranges.pop("noise"))}
        operator = json.loads(json.dumps(ranges))
    return ManifestEntry(
        model=cfg.model,
        regime=cfg.regime(),
        file=os.path.relpath(checkpoint, manifest_dir),
        sha256=sha256,
        kwargs=cfg.model_kwargs,
        operator=operator,
        noise=noise,
        recipe={
            "loss": cfg.loss, "optimizer": "Adam", "lr": cfg.lr, "schedule": cfg.schedule, "steps": trainer.step,
            "batch_size": cfg.batch_size, "patch_size": cfg.patch_size, "sampling": cfg.sampling, "seed": cfg.seed,
            "amp": cfg.amp,
        } | ({"segments": trainer.segments} if len(trainer.segments) > 1 else {})
          | ({"precision": trainer.precision} if len(trainer.precision) > 1 else {})
          | ({"amp_note": " ".join(trainer.notices)} if trainer.notices else {})
          | ({"processes": trainer.world.size, "global_batch": cfg.batch_size * trainer.world.size} if trainer.world.distributed else {})
          | ({"crop_scales": list(cfg.crop_scales)} if cfg.crop_scales != (1.0,) else {})
          | ({"min_detail": cfg.min_detail} if cfg.min_detail else {})
          | ({"init": os.path.relpath(cfg.init, manifest_dir), "init_sha256": sha256_file(cfg.init)} if cfg.init else {}),  # fmt: skip
        data={"sources": list(cfg.data), **trainer.data.describe(), "held_out": "never used (see README)"},
        compute={
            "device": str(trainer.device), "wall_s": round(trainer.elapsed, 1), "cli_wall_s": round(wall_s, 1),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
        },  # fmt: skip
        metrics=heldout_metrics(cfg, checkpoint),
        task=cfg.task,
    )


def _pair(text: str, kind=float) -> tuple:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"expected LOW,HIGH, got {text!r}")
    return kind(parts[0]), kind(parts[1])


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in _names(text))
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def add_arguments(parser) -> None:
    parser.add_argument("--task", default="deblur", choices=TASKS, help="deblur (a blur) or ct (sinograms; refine the FBP)")
    g = parser.add_argument_group("model and loss")
    g.add_argument("--model", default="unet", help="registry name (default unet)")
    g.add_argument("--model-kwargs", default="{}", help='constructor arguments as JSON, e.g. \'{"n_filters": 16}\'')
    g.add_argument("--loss", default="mse", help="loss spec, e.g. 'mse + 0.2*ssim + 0.1*fourier' (default mse)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=1000)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--patch-size", type=int, default=128, help="side of the square training crops")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    g.add_argument("--schedule", default="constant", choices=SCHEDULES)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", help="cpu, cuda, mps (default: RECON_DEVICE or the best available)")
    g.add_argument("--amp", action="store_true",
                   help="bf16 autocast: on CUDA, or on a CPU with bf16 instructions (measured 2x faster here)")
    g = parser.add_argument_group("operator: course (the lecture's, fixed) or general (random per image)")
    g.add_argument("--regime", default="course", choices=("course", "general"))
    g.add_argument("--blur", default="motion", choices=BLUR_TYPES, help="fixed blur (and the validation's)")
    g.add_argument("--kernel-size", type=int, default=9)
    g.add_argument("--angle", type=float, default=20.0)
    g.add_argument("--variance", type=float, default=1.0)
    g.add_argument("--kernel-style", default="ippy", choices=KERNEL_STYLES)
    g.add_argument("--noise", type=float, default=LECTURE_NOISE, help="relative noise level δ")
    g.add_argument("--blurs", default=",".join(GENERAL_RANGES.blurs), help="general: blur types")
    g.add_argument("--kernel-sizes", default="3,15", help="general: odd kernel sizes LOW,HIGH")
    g.add_argument("--angles", help="general: motion angles LOW,HIGH in degrees (default 0,180); "
                   f"ct: the number of projection angles (default {LECTURE_ANGLES})")
    g.add_argument("--fbp-filter", default="ramp", choices=FILTERS, help="ct: the FBP window of the network's input")
    g.add_argument("--styles", default=",".join(GENERAL_RANGES.styles), help="general: motion kernel styles")
    g.add_argument("--variances", default="0.5,4", help="general: Gaussian variances LOW,HIGH")
    g.add_argument("--noises", default="0,0.05", help="general: relative noise levels LOW,HIGH")
    g.add_argument("--lecture-share", type=float, default=GENERAL_RANGES.lecture_share,
                   help="general: the fraction of draws that are the lecture's setting (default 0.25)")
    g = parser.add_argument_group("data")
    g.add_argument("--data", default="package,phantoms",
                   help="comma list of package, phantoms, ct-head, mri, photos (see `data`) and folders (recursive); "
                        "NAME:W draws that source with weight W")  # fmt: skip
    g.add_argument("--crop-scales", default="1", help="comma list: each crop covers scale × patch pixels, shrunk (default 1)")
    g.add_argument("--min-detail", type=float, default=0.0,
                   help="redraw crops whose mean neighbour difference is below this (flat or out of focus; e.g. 0.02)")
    g.add_argument("--image-size", type=int, default=256, help="training images' shorter side before cropping")
    g.add_argument("--max-images", type=int, help="use only the first N training images")
    g.add_argument("--phantoms", type=int, default=64, help="how many procedural phantoms")
    g.add_argument("--sampling", default="patches", choices=SAMPLINGS)
    g.add_argument("--epoch-batches", type=int, help="epochs sampling: at most N batches per epoch")
    g = parser.add_argument_group("validation, checkpoints, manifest")
    g.add_argument("--eval-every", type=int, default=50, help="validate every N steps (0: at the end only)")
    g.add_argument("--val-image", default="camera", help="held-out image of the fixed validation measurement")
    g.add_argument("--val-size", type=int, default=256)
    g.add_argument("--out", help="checkpoint path (.safetensors); default runs/MODEL_REGIME.safetensors")
    g.add_argument("--checkpoint-every", type=int, default=100, help="save the resumable state every N steps")
    g.add_argument("--resume", action="store_true", help="continue from OUT's saved state (OUT.state.pt)")
    g.add_argument("--init", help="start from the weights of this checkpoint of the same architecture (a warm start, "
                   "e.g. weights/unet_course.safetensors for a general UNet); recorded in the manifest")
    g.add_argument("--manifest-dir", help="folder whose manifest.json gets the entry (default: OUT's folder)")
    g.add_argument("--no-manifest", action="store_true", help="write no manifest entry (and skip the held-out evaluation)")


def config_from_args(args) -> TrainConfig:
    """The ``TrainConfig`` the flags describe; raises ``ValueError`` for malformed values."""
    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model-kwargs is not JSON ({err})") from None
    ranges = None
    angles = LECTURE_ANGLES
    if args.task == "ct":
        if args.regime == "general":
            raise ValueError("--regime general (random blurs) is for deblurring, not --task ct")
        if args.angles is not None:
            try:
                angles = int(args.angles)
            except ValueError:
                raise ValueError(f"--angles for ct is a number of angles, got {args.angles!r}") from None
    elif args.regime == "general":
        ranges = OperatorRanges(
            blurs=_names(args.blurs), kernel_size=_pair(args.kernel_sizes, int), angle=_pair(args.angles or "0,180"),
            styles=_names(args.styles), variance=_pair(args.variances), noise=_pair(args.noises),
            lecture_share=args.lecture_share,
        )  # fmt: skip
    cfg = TrainConfig(
        task=args.task, angles=angles, ct_filter=args.fbp_filter, model=args.model, model_kwargs=kwargs, loss=args.loss, steps=args.steps, batch_size=args.batch_size,
        patch_size=args.patch_size, lr=args.lr, schedule=args.schedule,
        operator=OperatorSpec(args.blur, args.kernel_size, args.angle, args.variance, args.kernel_style),
        noise=args.noise, ranges=ranges, data=_names(args.data), image_size=args.image_size,
        max_images=args.max_images, phantoms=args.phantoms, sampling=args.sampling, epoch_batches=args.epoch_batches,
        crop_scales=_floats(args.crop_scales, "--crop-scales"), min_detail=args.min_detail,
        seed=args.seed, device=args.device, amp=args.amp, eval_every=args.eval_every, val_image=args.val_image,
        val_size=args.val_size, checkpoint=args.out, checkpoint_every=args.checkpoint_every, init=args.init,
    )  # fmt: skip
    if cfg.checkpoint is None:
        cfg.checkpoint = str(Path("runs") / f"{cfg.model}_{cfg.validated().regime()}.safetensors")
    if Path(cfg.checkpoint).suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {cfg.checkpoint}")
    return cfg.validated()


def main(args) -> int:
    start = time.perf_counter()
    try:
        cfg = config_from_args(args)
        trainer = Trainer(cfg, resume=args.resume)
    except (ValueError, KeyError) as err:
        distributed.teardown()
        print(f"train: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    try:
        return _run_cli(args, cfg, trainer, start)
    finally:
        distributed.teardown()


def _run_cli(args, cfg: TrainConfig, trainer: Trainer, start: float) -> int:
    main_process = trainer.world.is_main  # under torchrun, the others train silently and write nothing
    for notice in trainer.notices if main_process else ():
        print(f"train: {notice}", file=sys.stderr)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C: stop cleanly, keep the state
    try:
        with CLIProgress("train", args.quiet or not main_process).phase(f"{cfg.model}, steps", cfg.steps, initial=trainer.step) as bar:
            for event in trainer.run(cancel):
                postfix = {"loss": f"{event.loss:.4g}", "lr": f"{event.lr:.2g}"}
                if event.metrics:
                    postfix["val_psnr"] = f"{event.metrics['psnr']:.2f}"
                bar.set_postfix(postfix)
                bar.update(event.step)
    except TrainingError as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    if not main_process:
        return 130 if event.status == "cancelled" else 0
    if event.status == "cancelled":
        print(f"stopped at step {trainer.step} of {cfg.steps}; continue with the same flags and --resume "
              f"(state: {cfg.state_path()})")  # fmt: skip
        return 130
    print(f"{cfg.model}: {trainer.step} steps in {trainer.elapsed:.1f} s on {trainer.device}; "
          f"validation ({cfg.val_image}) PSNR {event.metrics['psnr']:.2f} dB, SSIM {event.metrics['ssim']:.4f}")  # fmt: skip
    checkpoint = Path(cfg.checkpoint)
    print(f"weights: {checkpoint}")
    if not args.no_manifest:
        from recon_demo.checkpoints import Manifest

        manifest_dir = Path(args.manifest_dir) if args.manifest_dir else checkpoint.parent
        manifest = Manifest.load(manifest_dir)
        entry = manifest_entry(trainer, checkpoint, sha256_file(checkpoint), manifest_dir, time.perf_counter() - start)
        manifest.upsert(entry)
        held = entry.metrics
        reference = "fbp" if cfg.task == "ct" else "measurement"
        print(f"held-out ({held['protocol']}, {len(held['images'])} images): PSNR {held['model']['psnr']:.3f} dB "
              f"({reference} {held[reference]['psnr']:.3f} dB); manifest: {manifest.path}")  # fmt: skip
    return 0
