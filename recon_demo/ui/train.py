"""The Train tab: the lecture's loss study, live. Pick configurations (the six presets or a custom weighted
loss), press Train, and watch every loss curve and reconstruction update; Stop ends the run within a step.
One training runs at a time per server (others wait in the queue and see their position); epochs, images
and size are bounded here, whatever a client sends."""

from __future__ import annotations

import threading
import time

import gradio as gr
import pandas as pd

from recon_demo import images
from recon_demo.lab import Setting, check_number
from recon_demo.loss_study import EXPERIMENTS, LossStudy, LossStudyConfig
from recon_demo.losses import LOSSES, parse_loss
from recon_demo.models import list_models, model_info
from recon_demo.pictures import to_uint8
from recon_demo.training import TrainingError
from recon_demo.ui._files import scratch_dir

PRESETS = {**EXPERIMENTS["pure"], **EXPERIMENTS["mixed"]}
MODELS = list_models("loss_study") + ["cnn", "rescnn"]  # small enough to train live on a CPU
MAX_EPOCHS = 20
MAX_IMAGES = 32
SIZES = (64, 128, 256)
MAX_CONFIGS = 7
UPDATE_EVERY_S = 0.4  # how often the page is redrawn while training

_CANCELS: dict[str, threading.Event] = {}  # session → its running study's stop flag
_CANCELS_LOCK = threading.Lock()


def study_config(presets, custom, model, epochs, n_images, size, blur, kernel_size, angle, variance, kernel_style, noise,
                 image) -> LossStudyConfig:  # fmt: skip
    """The validated study the controls describe; ``gr.Error`` says what is wrong."""
    losses = {label: PRESETS[label] for label in presets or [] if label in PRESETS}
    unknown = [label for label in presets or [] if label not in PRESETS]
    try:
        if unknown:
            raise TrainingError(f"unknown preset {', '.join(unknown)}; presets: {', '.join(PRESETS)}")
        if custom and custom.strip():
            losses[str(parse_loss(custom))] = custom
        if len(losses) > MAX_CONFIGS:
            raise TrainingError(f"at most {MAX_CONFIGS} configurations at once, got {len(losses)}")
        if model not in MODELS:
            raise TrainingError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        epochs = check_number("epochs", epochs, 1, MAX_EPOCHS, integer=True)
        n_images = check_number("images", n_images, 4, MAX_IMAGES, integer=True)
        size = check_number("size", size, 64, 256, integer=True)
        if size not in SIZES:
            raise TrainingError(f"size must be one of {', '.join(map(str, SIZES))}, got {size}")
        held_out = image if image in images.catalogue() and images.catalogue()[image].split == "held_out" else "camera"
        # the operator is validated as the Reconstruct tab's, with the same bounds
        setting = Setting(held_out, blur, kernel_size, angle, variance, kernel_style, noise).validated()
        return LossStudyConfig(losses=losses, model=model, epochs=epochs, n_images=n_images, size=size,
                               operator=setting.operator(), noise=setting.noise, test_image=held_out, eval_every=4).validated()  # fmt: skip
    except (TrainingError, ValueError, TypeError) as err:
        raise gr.Error(str(err)) from None


def curves(relative: dict[str, list[float]], labels: list[str]) -> pd.DataFrame:
    """The plot's data: (step, loss relative to its first value, configuration) rows.

    Configurations not started yet get one empty (NaN) row: gradio's streamed line plot fixes its colours at
    the first update and would never draw a configuration that appears later.
    """
    rows = [(step, value, label) for label, values in relative.items() for step, value in enumerate(values, start=1)]
    rows += [(1, float("nan"), label) for label in labels if label not in relative]
    return pd.DataFrame(rows, columns=["step", "relative_loss", "configuration"])


def run_study(cfg: LossStudyConfig, cancel: threading.Event):
    """Yield (curves, reconstructions, status, table, figure) while ``cfg`` trains; the last has the table and figure."""
    study = LossStudy(cfg)
    latest: dict[str, object] = {}
    shown = 0.0
    start = time.perf_counter()
    for label, event in study.run(cancel):
        if event.x_rec is not None:
            latest[label] = event.x_rec
        now = time.perf_counter()
        if now - shown >= UPDATE_EVERY_S:
            shown = now
            status = f"Training **{label}**: step {event.step} of {cfg.steps} ({now - start:.0f} s)"
            yield curves(study.relative_histories(), list(cfg.losses)), _gallery(study, latest), status, gr.update(), gr.update()
    stopped = any(r.status == "cancelled" for r in study.results.values())
    figure = study.save_figure(scratch_dir() / "loss_study.png")
    status = (f"Stopped after {study.wall_s:.1f} s." if stopped else f"Done: {len(study.results)} configurations in {study.wall_s:.1f} s.")
    latest.update({r.label: r.x_rec for r in study.results.values()})
    yield curves(study.relative_histories(), list(cfg.losses)), _gallery(study, latest), status, study.table_rows(), str(figure)


def _gallery(study: LossStudy, latest: dict) -> list:
    out = []
    if study.x_true is not None:
        out.append((to_uint8(study.x_true[0, 0].numpy()), "ground truth"))
        out.append((to_uint8(study.y_delta[0, 0].numpy()), "measurement"))
    out += [(to_uint8(x), label) for label, x in latest.items()]
    return out


def build(rec) -> None:
    """Lay out the tab; ``rec`` is the Reconstruct tab, whose operator and image the study uses."""
    defaults = LossStudyConfig()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            gr.Markdown("The lecture's loss study: the same small CNN, the same data and seed, trained with each loss. "
                        "The operator and test image come from the Reconstruct tab.")  # fmt: skip
            presets = gr.CheckboxGroup(list(PRESETS), value=list(EXPERIMENTS["pure"]), label="Configurations (lecture presets)",
                                       elem_id="presets")  # fmt: skip
            custom = gr.Textbox(label="Custom weighted loss (optional)", placeholder="mse + 0.2*ssim + 0.1*perceptual",
                                info="names: " + ", ".join(LOSSES), elem_id="custom")  # fmt: skip
            model = gr.Dropdown([(model_info(m).display_name, m) for m in MODELS], value=defaults.model, label="Model", elem_id="train_model")
            epochs = gr.Slider(1, MAX_EPOCHS, value=defaults.epochs, step=1, label="Epochs", elem_id="epochs")
            n_images = gr.Slider(4, MAX_IMAGES, value=defaults.n_images, step=4, label="Training images (batches of 4)",
                                 elem_id="n_images")  # fmt: skip
            size = gr.Radio(list(SIZES), value=defaults.size, label="Image size", elem_id="size")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="train")
                stop = gr.Button("Stop", variant="stop", elem_id="stop")
        with gr.Column(scale=2, min_width=320):
            status = gr.Markdown("Press **Train**.", elem_id="train_status")
            plot = gr.LinePlot(x="step", y="relative_loss", color="configuration", y_title="loss / its first value", height=300,
                               label="Loss curves",
                               elem_id="curves")  # fmt: skip
            recs = gr.Gallery(label="Reconstructions of the test measurement", columns=4, height=300, format="png",
                              elem_id="train_recs")  # fmt: skip
            table = gr.Dataframe(headers=list(LossStudy.TABLE_COLUMNS), interactive=False, wrap=True, elem_id="train_table")
            figure = gr.File(label="The lecture-style figure (PNG)", interactive=False, elem_id="figure")

    c = rec.controls
    inputs = [presets, custom, model, epochs, n_images, size, c.blur, c.kernel_size, c.angle, c.variance, c.kernel_style, c.noise, c.image]

    def start(presets, custom, model, epochs, n_images, size, blur, kernel_size, angle, variance, kernel_style, noise, image,
              request: gr.Request):  # fmt: skip
        cfg = study_config(presets, custom, model, epochs, n_images, size, blur, kernel_size, angle, variance, kernel_style,
                           noise, image)  # fmt: skip
        cancel = threading.Event()
        key = request.session_hash if request else "local"
        with _CANCELS_LOCK:
            _CANCELS[key] = cancel
        try:
            yield from run_study(cfg, cancel)
        finally:
            with _CANCELS_LOCK:
                if _CANCELS.get(key) is cancel:
                    del _CANCELS[key]

    def halt(request: gr.Request):
        with _CANCELS_LOCK:
            cancel = _CANCELS.get(request.session_hash if request else "local")
        if cancel is None:
            return "Nothing is training."
        cancel.set()
        return "Stopping…"

    train.click(start, inputs, [plot, recs, status, table, figure], concurrency_limit=1, concurrency_id="train",
                api_visibility="private")  # fmt: skip
    stop.click(halt, None, status, queue=False, api_visibility="private")
