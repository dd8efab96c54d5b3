"""The lecture's loss study, where the training loss changes the result (``python -m recon_demo loss-study``).

The lecture's protocol: LossStudyCNN (16 filters), ``torch.manual_seed(0)`` before each configuration, Adam
1e-3, batch 4, the first 32 training images at 256² in shuffled epochs of at most 8 batches, 10 epochs,
measurements synthesised on the fly (motion 9 @ 20°, noise 0.01), and one fixed held-out test measurement
on which MSE, PSNR, SSIM (and LPIPS) are reported. Its two experiments are presets, ``pure`` (MSE, L1, SSIM)
and ``mixed`` (MSE + 0.1 Fourier, 0.5 MSE + 0.5 L1, MSE + 0.2 SSIM + 0.1 Fourier); any other loss spec can
be added. ``LossStudy.run`` streams every configuration's training events, so the app draws all curves live; the
command is ``cli.loss_study``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recon_demo import images
from recon_demo.losses import check_available, parse_loss
from recon_demo.metrics import METRICS, compute_metrics, lpips_distance, lpips_status
from recon_demo.models import model_info
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec
from recon_demo.training import TrainConfig, Trainer, TrainEvent, TrainingError

_log = logging.getLogger(__name__)

# The lecture's two experiments, label → loss spec. Its SSIM loss is the 3×3 one (``ssim_lecture``).
EXPERIMENTS: dict[str, dict[str, str]] = {
    "pure": {"MSE": "mse", "L1": "l1", "SSIM": "ssim_lecture"},
    "mixed": {
        "MSE + 0.1 Fourier": "mse + 0.1*fourier",
        "0.5 MSE + 0.5 L1": "0.5*mse + 0.5*l1",
        "MSE + 0.2 SSIM + 0.1 Fourier": "mse + 0.2*ssim_lecture + 0.1*fourier",
    },
}
# The lecture's published results (PSNR dB, SSIM) on its CT test measurement, for comparison.
LECTURE_RESULTS: dict[str, tuple[float, float]] = {
    "MSE": (27.070, 0.7348),
    "L1": (27.265, 0.7773),
    "SSIM": (27.560, 0.8161),
    "MSE + 0.1 Fourier": (27.217, 0.7434),
    "0.5 MSE + 0.5 L1": (27.253, 0.7872),
    "MSE + 0.2 SSIM + 0.1 Fourier": (27.216, 0.8056),
}
MAX_EPOCHS = 1000


SMOOTHING = 10  # steps in the loss curves' moving average


def moving_average(values: list[float], window: int = SMOOTHING) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (of all before it near the start)."""
    sums = np.cumsum([0.0, *values])
    return [float((sums[i + 1] - sums[max(0, i + 1 - window)]) / (i + 1 - max(0, i + 1 - window))) for i in range(len(values))]


@dataclass
class LossStudyConfig:
    """The loss study's protocol; the CLI flags and the app's Train tab map onto it."""

    losses: dict[str, str] = field(default_factory=lambda: dict(EXPERIMENTS["pure"]))  # label → loss spec
    model: str = "loss_study_cnn"  # registry name
    epochs: int = 10
    batch_size: int = 4
    epoch_batches: int = 8  # at most this many batches per epoch
    n_images: int = 32  # the first N training images
    size: int = 256  # images and test measurement, side in pixels
    lr: float = 1e-3
    operator: OperatorSpec = LECTURE_OPERATOR
    noise: float = LECTURE_NOISE
    seed: int = 0  # torch.manual_seed before each configuration
    test_image: str = "camera"  # the held-out image of the fixed test measurement
    eval_every: int = 0  # also reconstruct the test measurement every N steps (live views); 0: at the end
    lpips: bool = True  # report LPIPS when its weights are here
    device: str | None = None

    @property
    def steps(self) -> int:
        """Optimiser steps per configuration: epochs × batches per epoch."""
        return self.epochs * min(self.epoch_batches, math.ceil(self.n_images / self.batch_size))

    def train_config(self, spec: str) -> TrainConfig:
        """The training run of one configuration."""
        return TrainConfig(
            model=self.model, loss=spec, steps=self.steps, batch_size=self.batch_size, patch_size=self.size,
            lr=self.lr, operator=self.operator, noise=self.noise, data=("package", "phantoms"),
            image_size=self.size, max_images=self.n_images, phantoms=self.n_images, sampling="epochs",
            epoch_batches=self.epoch_batches, seed=self.seed, device=self.device, eval_every=self.eval_every,
            val_image=self.test_image, val_size=self.size, checkpoint=None, checkpoint_every=0,
        )  # fmt: skip

    def validated(self) -> LossStudyConfig:
        """Checks every configuration before any training; raises ``TrainingError`` naming the bad one."""
        if not self.losses:
            raise TrainingError("no loss to study: choose an experiment or give a loss spec")
        if not (isinstance(self.epochs, int) and 1 <= self.epochs <= MAX_EPOCHS):
            raise TrainingError(f"epochs must be an integer in [1, {MAX_EPOCHS}], got {self.epochs!r}")
        if not (isinstance(self.epoch_batches, int) and self.epoch_batches >= 1):
            raise TrainingError(f"batches per epoch must be an integer >= 1, got {self.epoch_batches!r}")
        self.train_config("mse").validated()  # everything but the losses
        for label, spec in self.losses.items():
            try:
                check_available(parse_loss(spec))  # a perceptual term without its weights fails here, not mid-study
            except ValueError as err:
                raise TrainingError(f"{label}: {err}") from None
        return replace(self, losses=dict(self.losses))

    def describe(self) -> str:
        per_epoch = self.steps // self.epochs
        return (
            f"{model_info(self.model).display_name}, {self.epochs} epochs × {per_epoch} batches of {self.batch_size}, "
            f"{self.n_images} training images at {self.size}², {self.operator.describe()}, noise {self.noise:g}, "
            f"seed {self.seed}; test image {self.test_image}"
        )


# The live study (the app's Train tab and the /train API): what a shared 2-core server trains on request.
PRESETS: dict[str, str] = {**EXPERIMENTS["pure"], **EXPERIMENTS["mixed"]}
LIVE_MODELS = ("loss_study_cnn", "cnn", "rescnn")  # small enough to train live on a CPU
MAX_EPOCHS = 20
MAX_IMAGES = 32
SIZES = (64, 128, 256)
MAX_CONFIGS = 7
# The Train tab's starting point: the lecture's protocol (``LossStudyConfig()``: its small CNN at 256²) takes 75 s
# here and every loss ends below the measurement. The residual CNN at 128² starts from the measurement and, in
# 31 s on a 2-core CPU (``loss-study --model rescnn --size 128``), MSE beats it (22.35 against 21.03 dB), L1
# does too (21.28), and SSIM wins on SSIM and loses on PSNR: the lesson, in half a minute.
LIVE_DEFAULTS = {"model": "rescnn", "size": 128}


def live_defaults() -> LossStudyConfig:
    """The Train tab's defaults (``LIVE_DEFAULTS`` over the lecture's protocol)."""
    return LossStudyConfig(**LIVE_DEFAULTS)


def live_config(presets, custom: str | None, model: str, epochs, n_images, size, setting) -> LossStudyConfig:
    """The bounded study a page or an API client asks for: preset labels and/or a custom loss spec, the model,
    epochs, images and size within the bounds above, and the operator, noise and test image of ``setting`` (a
    ``lab.setting.Setting``, validated as the Reconstruct tab's; a training image falls back to ``camera``). Raises
    ``TrainingError`` (or ``SettingError``) saying what is allowed."""
    from recon_demo.lab.setting import check_number  # the lab's number check: one message format everywhere

    losses = {label: PRESETS[label] for label in presets or [] if label in PRESETS}
    unknown = [label for label in presets or [] if label not in PRESETS]
    if unknown:
        raise TrainingError(f"unknown preset {', '.join(unknown)}; presets: {', '.join(PRESETS)}")
    if custom and custom.strip():
        losses[str(parse_loss(custom))] = custom
    if len(losses) > MAX_CONFIGS:
        raise TrainingError(f"at most {MAX_CONFIGS} configurations at once, got {len(losses)}")
    if model not in LIVE_MODELS:
        raise TrainingError(f"model must be one of {', '.join(LIVE_MODELS)}, got {model!r}")
    epochs = check_number("epochs", epochs, 1, MAX_EPOCHS, integer=True)
    n_images = check_number("images", n_images, 4, MAX_IMAGES, integer=True)
    size = check_number("size", size, 64, 256, integer=True)
    if size not in SIZES:
        raise TrainingError(f"size must be one of {', '.join(map(str, SIZES))}, got {size}")
    from recon_demo.lab.setting import Setting

    entry = images.catalogue().get(setting.image)
    test_image = setting.image if entry is not None and entry.split == "held_out" else "camera"
    setting = Setting(image=test_image, operator=setting.operator, noise=setting.noise).validated()  # as Reconstruct's
    return LossStudyConfig(losses=losses, model=model, epochs=epochs, n_images=n_images, size=size, operator=setting.operator,
                           noise=setting.noise, test_image=test_image, eval_every=4).validated()  # fmt: skip


@dataclass
class LossResult:
    """One configuration's outcome."""

    label: str
    spec: str  # the parsed spec, normalised
    history: list[float]  # the loss of every step
    metrics: dict[str, float | None]  # on the fixed test measurement
    x_rec: np.ndarray | None  # its reconstruction
    seconds: float  # training wall time
    status: str  # "done" or "cancelled"


class LossStudy:
    """Trains one model per loss with the same seed, data and test measurement; ``results`` fills in as it runs."""

    def __init__(self, cfg: LossStudyConfig):
        self.cfg = cfg.validated()
        self.results: dict[str, LossResult] = {}
        self.histories: dict[str, list[float]] = {}  # each configuration's loss per step, filled in as it trains
        self.x_true = self.y_delta = None
        self._measured: dict[str, float | None] | None = None  # measurement_metrics, once the measurement exists
        self.wall_s = 0.0

    def run(self, cancel=None) -> Iterator[tuple[str, TrainEvent]]:
        """Yield ``(label, event)`` for every step of every configuration, in order.

        A cancel stops the configuration in flight (its result is marked ``cancelled``) and skips the rest.
        """
        start = time.perf_counter()
        with_lpips = self.cfg.lpips and lpips_status()[0]
        outcome = "abandoned"  # what the log says if the consumer drops this generator (a client went away)
        _log.info("loss study started: %d configurations × %d steps", len(self.cfg.losses), self.cfg.steps)
        try:
            for label, spec in self.cfg.losses.items():
                trainer = Trainer(self.cfg.train_config(spec))
                self.x_true, self.y_delta = trainer.x_val, trainer.y_val
                history = self.histories[label] = []
                for event in trainer.run(cancel):
                    if event.status != "cancelled" or event.step > len(history):
                        history.append(event.loss)
                    yield label, event
                metrics, x_rec = event.metrics, event.x_rec
                if event.status == "cancelled":
                    metrics, x_rec = trainer.validate()
                metrics["lpips"] = lpips_distance(x_rec, self.x_true) if with_lpips else None
                self.results[label] = LossResult(
                    label, str(trainer.loss_fn), history, metrics, x_rec, trainer.elapsed, event.status
                )
                if event.status == "cancelled":
                    break
            outcome = "cancelled" if any(r.status == "cancelled" for r in self.results.values()) else "done"
        finally:
            self.wall_s = time.perf_counter() - start
            steps = sum(len(h) for h in self.histories.values())
            _log.info("loss study %s after %d steps in %.1f s", outcome, steps, self.wall_s)

    def relative_histories(self) -> dict[str, list[float]]:
        """Each configuration's loss divided by its first value, so losses of different scales share one plot."""
        return {label: [v / h[0] if h[0] else v for v in h] for label, h in self.histories.items() if h}

    def to_json(self) -> dict:
        return {
            "protocol": {"summary": self.cfg.describe(), "steps": self.cfg.steps, "losses": self.cfg.losses},
            "results": {
                r.label: {
                    "spec": r.spec, **{m: r.metrics.get(m) for m in ("mse", "psnr", "ssim", "lpips")},
                    "seconds": round(r.seconds, 2), "status": r.status, "history": r.history,
                    "lecture": dict(zip(("psnr", "ssim"), LECTURE_RESULTS[r.label])) if r.label in LECTURE_RESULTS else None,
                }  # fmt: skip
                for r in self.results.values()
            },
            "wall_s": round(self.wall_s, 2),
        }

    TABLE_COLUMNS = ("loss", "MSE", "PSNR dB", "SSIM", "LPIPS", "the lecture's, on its CT data: PSNR / SSIM", "time")

    def measurement_metrics(self) -> dict[str, float | None]:
        """The test measurement itself (clamped to [0, 1]) against the ground truth: the row to beat. Computed once
        per study (every configuration shares the measurement); the table, the captions and the status read it."""
        if self.x_true is None:
            return {}
        if self._measured is None:
            y = self.y_delta.clamp(0, 1)
            self._measured = compute_metrics(y, self.x_true)
            self._measured["lpips"] = lpips_distance(y, self.x_true) if self.cfg.lpips and lpips_status()[0] else None
        return self._measured

    def against_the_measurement(self) -> str:
        """One sentence: whether the best configuration beat the measurement, and what that means."""
        done = [r for r in self.results.values() if r.status != "cancelled"]
        if not done or self.x_true is None:
            return ""
        best = max(done, key=lambda r: r.metrics["psnr"])
        floor = self.measurement_metrics()["psnr"]
        if best.metrics["psnr"] > floor:
            return f"The best, {best.label} ({best.metrics['psnr']:.2f} dB), beats the measurement ({floor:.2f} dB)."
        return (f"No configuration beats the measurement yet ({best.label}: {best.metrics['psnr']:.2f} dB against "
                f"{floor:.2f} dB): {self.cfg.steps} step{'s' if self.cfg.steps != 1 else ''} of a small CNN are too few to learn deblurring. The loss "
                "still changes the result; more epochs or images close the gap.")  # fmt: skip

    def table_rows(self) -> list[list[str]]:
        """The measurement first (what training must beat), then one row per finished configuration, with the
        lecture's published numbers where it is one of its (measured on the lecture's CT slices: another data
        set, for the ordering, not the values), then the configurations a Stop left unrun."""
        rows = []
        if self.x_true is not None:
            m = self.measurement_metrics()
            rows.append(["Measurement (no training)", METRICS["mse"].format(m["mse"]), f"{m['psnr']:.3f}",
                         METRICS["ssim"].format(m["ssim"]), METRICS["lpips"].format(m["lpips"]), "—", ""])  # fmt: skip
        for r in self.results.values():
            lecture = LECTURE_RESULTS.get(r.label)
            rows.append([
                r.label + (" (stopped)" if r.status == "cancelled" else ""),
                METRICS["mse"].format(r.metrics["mse"]), f"{r.metrics['psnr']:.3f}", METRICS["ssim"].format(r.metrics["ssim"]),
                METRICS["lpips"].format(r.metrics["lpips"]), f"{lecture[0]:.3f} / {lecture[1]:.4f}" if lecture else "—",
                f"{r.seconds:.1f} s",
            ])  # fmt: skip
        rows += [[f"{label} (not run: stopped)", "—", "—", "—", "—", "—", ""] for label in self.cfg.losses if label not in self.results]
        return rows

    def format_table(self) -> str:
        """The lecture's table as text."""
        rows = [list(self.TABLE_COLUMNS), *self.table_rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [self.cfg.describe()] + [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"wall time {self.wall_s:.1f} s")
        return "\n".join(lines)

    FIGURE_DPI = 110

    def save_figure(self, path: str | Path) -> Path:
        """``figure()`` as a PNG at ``path``."""
        import matplotlib.pyplot as plt

        fig = self.figure()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=self.FIGURE_DPI)
        plt.close(fig)
        return path

    def figure(self):
        """The lecture-style figure: ground truth, measurement and each reconstruction (the centre, zoomed) over its
        loss curve (each step faint, the moving average strong)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from recon_demo.lab.pictures import ZOOM, centre_zoom
        from recon_demo.metrics import psnr, ssim

        results = list(self.results.values())
        n = 2 + len(results)
        # text of 10-13 pt at 110 dpi: 15-20 px in the figure's own pixels, readable when it is projected
        fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 6.4), gridspec_kw={"height_ratios": [1.2, 1]}, squeeze=False)
        panels = [("ground truth", self.x_true[0, 0].numpy()), ("measurement", self.y_delta[0, 0].numpy())]
        panels += [(r.label, r.x_rec) for r in results]
        for ax, (title, image) in zip(axes[0], panels):
            ax.imshow(np.clip(centre_zoom(image), 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if title != "ground truth":
                title += f"\n{psnr(image, self.x_true):.2f} dB, SSIM {ssim(image, self.x_true):.3f}"
            ax.set_title(title, fontsize=12)
            ax.axis("off")
        for ax in axes[1, :2]:
            ax.axis("off")
        axes[1, 0].text(0, 0.5, self.cfg.describe().replace(", ", "\n") + f"\n\npictures: the centre, zoomed {ZOOM}×",
                        fontsize=10, va="center")  # fmt: skip
        for ax, r in zip(axes[1, 2:], results):
            steps = np.arange(1, len(r.history) + 1)
            ax.plot(steps, r.history, lw=0.8, alpha=0.35, color="C0")
            ax.plot(steps, moving_average(r.history), lw=2.2, color="C0")
            ax.set_title(f"loss: {r.spec}", fontsize=11)
            ax.set_xlabel(f"step (bold: mean of {SMOOTHING})", fontsize=10)
            ax.tick_params(labelsize=10)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig

