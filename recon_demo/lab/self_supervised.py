"""Fine-tuning without ground truth, beside fine-tuning with it: what the Train tab's second section runs.

A general network (trained on many blurs) meets one blur it knows only roughly. A clinic has measurements of that
blur, not clean images: ``FineTune`` adapts the network to it with a loss that sees only the measurements and ``K``
(``losses.SELF_SUPERVISED``: equivariant imaging, or measurement consistency alone), and beside it, for the class to
compare, the same network fine-tuned with the clean images (MSE). Both start from the same shipped weights, train on
the same training images' measurements with the same seed, and are validated on the same held-out image; their
steps are interleaved, so both curves grow together. The ``train --self-supervised`` CLI runs the first alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from recon_demo import images
from recon_demo.checkpoints import Manifest
from recon_demo.lab.setting import MAX_NOISE, SettingError, check_number
from recon_demo.losses import EI_LINK, EI_REFERENCE, SELF_SUPERVISED
from recon_demo.metrics import compute_metrics
from recon_demo.models import model_info
from recon_demo.physics.blur import OperatorSpec
from recon_demo.training import TrainConfig, Trainer, TrainEvent

FINE_TUNE_MODELS = ("rescnn", "cnn")  # small enough to fine-tune live on two CPU cores (a UNet step is ~5× slower)
OFF_COURSE = OperatorSpec(blur="motion", kernel_size=15, angle=70.0, variance=1.0, kernel_style="ippy")  # a blur the course never trained for
OFF_COURSE_NOISE = 0.02
MAX_STEPS = 400
SUPERVISED = "with ground truth (MSE)"
POINT = ("Without a clean image the network still adapts: the measurements show what K keeps, and its own result, "
         "rotated and seen through K again, shows what K hid. Consistency alone (mc) cannot learn what K deletes.")


@dataclass(frozen=True)
class FineTuneConfig:
    """The section's controls: the network, the loss without ground truth, the blur and noise it adapts to, how long."""

    model: str = "rescnn"  # one of FINE_TUNE_MODELS, from its shipped general weights
    loss: str = "ei"  # a name of losses.SELF_SUPERVISED
    operator: OperatorSpec = OFF_COURSE
    noise: float = OFF_COURSE_NOISE
    steps: int = 200  # each of the two runs: 200 steps of 8 crops of 96², about two minutes for both here
    image: str = "camera"  # the held-out image both are validated on (never trained on)
    supervised: bool = True  # also fine-tune with ground truth, beside

    def validated(self) -> FineTuneConfig:
        if self.model not in FINE_TUNE_MODELS:
            raise SettingError(f"fine-tune one of {', '.join(FINE_TUNE_MODELS)}, not {self.model!r}")
        if self.loss not in SELF_SUPERVISED:
            raise SettingError(f"unknown loss without ground truth {self.loss!r}; choose one of {', '.join(SELF_SUPERVISED)}")
        if self.image not in images.split_names("held_out", include_phantoms=True):
            raise SettingError(f"validate on a held-out image, not {self.image!r}")
        try:
            operator = self.operator.validated()
        except ValueError as err:
            raise SettingError(str(err)) from None
        return replace(self, operator=operator, noise=check_number("noise level", self.noise, 0, MAX_NOISE),
                       steps=check_number("steps", self.steps, 1, MAX_STEPS, integer=True))  # fmt: skip

    def train_config(self, self_supervised: str | None) -> TrainConfig:
        """The ``TrainConfig`` of one of the two runs (``train --self-supervised LOSS --init …`` says the same)."""
        entry = Manifest.load().find(self.model, "general")
        if entry is None:
            raise SettingError(f"{model_info(self.model).label} has no shipped general weights to start from")
        return TrainConfig(model=self.model, init=str(entry.path()), self_supervised=self_supervised, operator=self.operator,
                           noise=self.noise, steps=self.steps, batch_size=8, patch_size=96, lr=1e-3,
                           eval_every=max(1, self.steps // 10), val_image=self.image, checkpoint=None, checkpoint_every=0,
                           device="cpu")  # fmt: skip

    def labels(self) -> list[str]:
        own = f"without ground truth ({self.loss})"
        return [own, SUPERVISED] if self.supervised else [own]


@dataclass
class Curve:
    steps: list[int]
    psnr: list[float]
    loss: list[float]
    x_rec: np.ndarray | None = None
    status: str = "running"
    elapsed: float = 0.0


class FineTune:
    """The two runs of a ``FineTuneConfig``; ``run`` yields (label, event) as they go, interleaved step by step."""

    def __init__(self, cfg: FineTuneConfig):
        self.cfg = cfg = cfg.validated()
        labels = cfg.labels()
        losses = [cfg.loss, None][: len(labels)]
        self.trainers = {label: Trainer(cfg.train_config(loss)) for label, loss in zip(labels, losses)}
        first = next(iter(self.trainers.values()))
        self.x_true, self.y_delta = first.x_val, first.y_val  # the held-out image and its measurement
        self.start_metrics, self.start_image = first.validate()  # the general network before any step
        self.curves = {label: Curve([0], [self.start_metrics["psnr"]], []) for label in labels}

    @property
    def measurement_psnr(self) -> float:
        return compute_metrics(np.clip(self.y_delta[0, 0].numpy(), 0, 1), self.x_true)["psnr"]

    def run(self, cancel=None) -> Iterator[tuple[str, TrainEvent]]:
        runs = {label: trainer.run(cancel) for label, trainer in self.trainers.items()}
        while runs:
            for label in list(runs):
                event = next(runs[label], None)
                if event is None:
                    del runs[label]
                    continue
                curve = self.curves[label]
                curve.elapsed, curve.status = event.elapsed, event.status
                if math.isfinite(event.loss):
                    curve.loss.append(event.loss)
                if event.metrics:
                    curve.steps.append(event.step)
                    curve.psnr.append(event.metrics["psnr"])
                    curve.x_rec = event.x_rec
                yield label, event

    def summary(self) -> str:
        """Two lines: each run's gain over the general network it started from, and what it shows."""
        start = self.start_metrics["psnr"]
        parts = [f"{label}: {c.psnr[-1]:.2f} dB ({c.psnr[-1] - start:+.2f} dB in {c.elapsed:.0f} s)"
                 for label, c in self.curves.items()]  # fmt: skip
        return (f"On the held-out {self.cfg.image} (never trained on): the general network {start:.2f} dB, " + "; ".join(parts)
                + f". {POINT} (Loss: {EI_REFERENCE}, {EI_LINK}.)")  # fmt: skip
