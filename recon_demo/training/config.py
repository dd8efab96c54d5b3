"""What a training run is: ``TrainConfig`` (one field per ``train`` flag; the general regime's ranges are
``physics.ranges.OperatorRanges``), the events a run yields, and the checks that say what is allowed."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from recon_demo import images
from recon_demo.checkpoints import CT_ANY, ct_regime
from recon_demo.losses import SELF_SUPERVISED, parse_loss
from recon_demo.models import is_handed_operator, model_info, size_multiple
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.ct import CT_NOISE, FILTERS, LECTURE_ANGLES, check_geometry
from recon_demo.physics.ranges import GENERAL_RANGES, OperatorRanges  # noqa: F401  (the training package's names)

TASKS = ("deblur", "ct")
SCHEDULES = ("constant", "cosine")
SAMPLINGS = ("patches", "epochs")
DATA_SOURCES = ("package", "phantoms")  # the default; besides these, datasets.SOURCES and folders of images
MAX_STEPS = 1_000_000
MAX_BATCH = 256
MAX_IMAGE_SIZE = 1024


class TrainingError(ValueError):
    """A configuration that cannot be trained, or a run that cannot go on (the message says why)."""


@dataclass
class TrainConfig:
    """One training run; the ``train`` CLI's flags map onto these fields one to one."""

    task: str = "deblur"  # "deblur" (a blur K) or "ct" (a sinogram; the model refines its FBP)
    model: str = "unet"  # registry name
    model_kwargs: dict = field(default_factory=dict)  # constructor arguments, e.g. {"n_filters": 16}
    loss: str = "mse"  # a loss spec such as "mse + 0.2*ssim + 0.1*fourier"
    self_supervised: str | None = None  # instead of loss, one that never sees x_true: "ei" or "mc" (losses.SELF_SUPERVISED)
    steps: int = 1000  # optimiser steps in the whole run
    batch_size: int = 8
    patch_size: int = 128  # side of the square training crops
    lr: float = 1e-3  # Adam's learning rate
    schedule: str = "constant"  # "constant", or "cosine" (down to 1 % of lr at the last step)
    ema: float = 0.0  # decay of an exponential moving average of the weights, which is then validated and saved (0: off)
    operator: OperatorSpec = LECTURE_OPERATOR  # the fixed blur, when ranges is None
    noise: float = LECTURE_NOISE  # the fixed relative noise level, when ranges is None
    ranges: OperatorRanges | None = None  # random operators (a general model) instead of the fixed one
    angles: int = LECTURE_ANGLES  # ct: projection angles in [0, π) (with angle_range: the validation's)
    angle_range: tuple[int, int] | None = None  # ct, a network handed the operator: the angle counts it trains over
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
                for angles in (self.angles, *(self.angle_range or ())):
                    check_geometry(self.image_size, angles)
                    check_geometry(self.val_size, angles)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        need(
            isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and 0 <= self.noise < 10,
            f"noise level must be in [0, 10), got {self.noise!r}",
        )
        need(isinstance(self.model_kwargs, dict), f"model kwargs must be a mapping, got {self.model_kwargs!r}")
        need(self.task in TASKS, f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        need(self.ct_filter in FILTERS, f"unknown FBP filter {self.ct_filter!r}; choose one of {', '.join(FILTERS)}")
        handed = is_handed_operator(self.model)
        need(self.angle_range is None or (self.task == "ct" and handed),
             "a range of angle counts is for a CT network handed the operator (--task ct --model unrolled)")
        need(self.angle_range is None or (len(self.angle_range) == 2 and all(_is_int(a) for a in self.angle_range)
                                          and 1 <= self.angle_range[0] <= self.angle_range[1]),
             f"the range of angle counts must be two integers LOW,HIGH with 1 <= LOW <= HIGH, got {self.angle_range!r}")
        need(self.angle_range is None or self.angle_range[0] <= self.angles <= self.angle_range[1],
             f"the validation's {self.angles} angles must lie in the range of angle counts {self.angle_range!r}")
        need(self.task != "ct" or not handed or self.patch_size == self.image_size,
             "a CT network handed the operator trains on whole images: its measurement is their sinogram")
        need(self.self_supervised is None or self.self_supervised in SELF_SUPERVISED,
             f"unknown self-supervised loss {self.self_supervised!r}; choose one of {', '.join(SELF_SUPERVISED)}")
        need(self.self_supervised is None or (self.task == "deblur" and self.ranges is None),
             "self-supervised training adapts a network to one blur: the course regime's fixed operator (--task deblur)")
        need(self.self_supervised is None or self.loss == "mse",
             "--self-supervised replaces --loss (a loss against x_true): give one of them")
        need(self.task != "ct" or self.ranges is None, "random blur operators (the general regime) are for deblurring, not CT")
        for name, value, lo, hi in (("steps", self.steps, 1, MAX_STEPS), ("batch size", self.batch_size, 1, MAX_BATCH),
                                    ("image size", self.image_size, 8, MAX_IMAGE_SIZE),
                                    ("patch size", self.patch_size, 8, self.image_size),
                                    ("validation size", self.val_size, 8, MAX_IMAGE_SIZE)):  # fmt: skip
            need(_is_int(value) and lo <= value <= hi, f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if _is_int(self.patch_size) and isinstance(self.model_kwargs, dict):
            try:
                multiple = size_multiple(self.model, **self.model_kwargs)
            except (TypeError, ValueError):  # bad kwargs: the Trainer says so when it builds the model
                multiple = 1
            need(self.patch_size % multiple == 0,
                 f"patch size must be a multiple of {multiple} for {self.model} (its pooling; another size would run "
                 f"as overlapping crops, up to four times the work), got {self.patch_size}")  # fmt: skip
        for name, value in (("eval_every", self.eval_every), ("checkpoint_every", self.checkpoint_every),
                            ("phantoms", self.phantoms)):  # fmt: skip
            need(_is_int(value) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        for name, value in (("max_images", self.max_images), ("epoch_batches", self.epoch_batches)):
            need(value is None or (_is_int(value) and value >= 1), f"{name} must be an integer >= 1, got {value!r}")
        need(isinstance(self.lr, (int, float)) and 0 < self.lr <= 1, f"learning rate must be in (0, 1], got {self.lr!r}")
        need(isinstance(self.ema, (int, float)) and not isinstance(self.ema, bool) and 0 <= self.ema < 1,
             f"the EMA decay must be in [0, 1) (0: off; e.g. 0.999), got {self.ema!r}")
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
        need(self.task != "ct" or (self.crop_scales == (1.0,) and not self.min_detail),
             "crop scales and min_detail are for deblurring: CT trains on whole projected images")  # fmt: skip
        need(self.val_image in images.catalogue(), f"unknown validation image {self.val_image!r}")
        need(
            images.catalogue()[self.val_image].split == "held_out",
            f"the validation image must be a held-out image, not {self.val_image!r}",
        )
        return replace(self, data=tuple(self.data), lr=float(self.lr), ema=float(self.ema), crop_scales=tuple(float(c) for c in self.crop_scales),
                       angle_range=tuple(self.angle_range) if self.angle_range is not None else None)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (for the manifest and the resumable state)."""
        return json.loads(json.dumps(asdict(self)))

    def regime(self) -> str:
        """``general`` (random operators), ``course`` (the lecture's setting), ``ct-<angles>`` (CT at 256², the
        ramp filter and noise 0.01), ``ct-any`` (the same over a range of angle counts) or ``custom`` (another fixed
        setting)."""
        if self.task == "ct":
            standard = (self.noise, self.ct_filter, self.image_size, self.val_size) == (CT_NOISE, "ramp", 256, 256)
            if is_handed_operator(self.model):  # its shipped CT checkpoint serves every number of angles
                return CT_ANY if standard and self.angle_range is not None else "custom"
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
