"""The Train tab: the lecture's loss study, live. Pick configurations (the six presets or a custom weighted
loss), press Train, and watch every loss curve and reconstruction update; Stop ends the run within a step.
One training runs at a time per server (others wait in the queue and see their position); epochs, images
and size are bounded here, whatever a client sends."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import gradio as gr
import numpy as np
import pandas as pd

from recon_demo import images
from recon_demo.lab.loss_study import (
    EXPERIMENTS,
    LECTURE_RESULTS,
    LIVE_MODELS,
    MAX_EPOCHS,
    MAX_IMAGES,
    PRESETS,
    SIZES,
    SMOOTHING,
    LossStudy,
    LossStudyConfig,
    live_config,
    live_defaults,
    moving_average,
)
from recon_demo.lab.pictures import ZOOM, centre_zoom, residual_map, to_uint8
from recon_demo.lab.self_supervised import FINE_TUNE_MODELS, FineTune, FineTuneConfig
from recon_demo.lab.self_supervised import MAX_STEPS as FINE_TUNE_MAX_STEPS
from recon_demo.lab.setting import FLAT_FIELDS, Setting, SettingError
from recon_demo.losses import EI_LINK, EI_REFERENCE, LOSSES, SELF_SUPERVISED
from recon_demo.models import model_info
from recon_demo.training import TrainingError
from recon_demo.ui._files import scratch_dir
from recon_demo.ui._legend import legend_html, series_colours
from recon_demo.ui._results import styled
from recon_demo.ui._widgets import spec_widgets

SMOOTHING_NOTE = (f'<div class="error-scale-note">Strong colour: the mean of the last {SMOOTHING} steps; faint: every step '
                  "(one batch of four images each, so it jumps).</div>")
UPDATE_EVERY_S = 0.4  # how often the page is redrawn while training
READY = ("Press **Train**. The defaults (the residual CNN at 128², three losses) take about half a minute on a laptop; "
         "the lecture's own protocol (its small CNN at 256²) takes longer and, this short, stays below the measurement.")

_CANCELS: dict[str, threading.Event] = {}  # session (and section) → its running training's stop flag
_CANCELS_LOCK = threading.Lock()


def _session(request: gr.Request | None) -> str:
    return request.session_hash if request else "local"


def cancellable(key: str, run):
    """Yield from ``run(cancel)`` with its stop flag registered under ``key`` while it runs (``stop`` sets it)."""
    cancel = threading.Event()
    with _CANCELS_LOCK:
        _CANCELS[key] = cancel
    try:
        yield from run(cancel)
    finally:
        with _CANCELS_LOCK:
            if _CANCELS.get(key) is cancel:
                del _CANCELS[key]


def stop(key: str, idle: str) -> str:
    """Set the stop flag of the training running under ``key``; ``idle`` says so when there is none."""
    with _CANCELS_LOCK:
        cancel = _CANCELS.get(key)
    if cancel is None:
        return idle
    cancel.set()
    return "Stopping…"


def study_config(presets, custom, model, epochs, n_images, size, setting: Setting) -> LossStudyConfig:
    """The validated study the controls describe (``loss_study.live_config``); ``gr.Error`` says what is wrong."""
    try:
        return live_config(presets, custom, model, epochs, n_images, size, setting)
    except (TrainingError, ValueError, TypeError) as err:
        raise gr.Error(str(err)) from None


RAW = " · each step"  # the suffix of a configuration's per-step series, drawn faint under its moving average


def curves(relative: dict[str, list[float]], labels: list[str], smoothed: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """The plot's data: (step, loss relative to its first value, series) rows: each configuration's moving average
    (``smoothed``, under its own name) and, faint, its every step (``RAW`` after the name).

    Configurations not started yet get one empty (NaN) row per series: gradio's streamed line plot fixes its colours
    at the first update and would never draw a configuration that appears later.
    """
    series = {}
    for label in labels:
        series[label] = (relative if smoothed is None else smoothed).get(label)
        if smoothed is not None:
            series[label + RAW] = relative.get(label)
    rows = [(step, value, name) for name, values in series.items() if values for step, value in enumerate(values, start=1)]
    rows += [(1, float("nan"), name) for name, values in series.items() if not values]
    return pd.DataFrame(rows, columns=["step", "relative_loss", "configuration"])


def curve_colours(labels: list[str]) -> dict[str, str]:
    """Each configuration's colour, and the same colour faded for its per-step series."""
    colours = series_colours(labels)
    return colours | {label + RAW: faded(colour) for label, colour in colours.items()}


def faded(colour: str, keep: float = 0.3) -> str:
    """``colour`` (#rrggbb) mixed with white, ``keep`` of it left."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(255 - (255 - c) * keep):02x}" for c in rgb)


def run_study(cfg: LossStudyConfig, cancel: threading.Event):
    """Yield (curves, reconstructions, status, table, figure, legend, the lecture's figures) while ``cfg`` trains;
    the last has the table, the figure and the lecture's. Each configuration keeps its colour in the plot and in
    the legend under it."""
    study = LossStudy(cfg)
    labels = list(cfg.losses)
    colours = curve_colours(labels)
    legend = legend_html({label: colours[label] for label in labels}) + SMOOTHING_NOTE

    def plot():
        relative = study.relative_histories()  # and their moving averages: the trend through a batch of four's noise
        frame = curves(relative, labels, {label: moving_average(h) for label, h in relative.items()})
        return gr.update(value=frame, color_map=colours)

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
            yield plot(), _gallery(study, latest), status, gr.update(), gr.update(), legend, gr.update()
    stopped = any(r.status == "cancelled" for r in study.results.values())
    figure = study.save_figure(scratch_dir() / "loss_study.png")
    status = (f"Stopped after {study.wall_s:.1f} s." if stopped else f"Done: {len(study.results)} configurations in {study.wall_s:.1f} s.")
    status += " " + study.against_the_measurement()
    latest.update({r.label: r.x_rec for r in study.results.values()})
    yield plot(), _gallery(study, latest), status, shown_table(study), str(figure), legend, lecture_note(study)


LECTURE_COLUMN = LossStudy.TABLE_COLUMNS.index("the lecture's, on its CT data: PSNR / SSIM")
SHOWN_COLUMNS = tuple(c for i, c in enumerate(LossStudy.TABLE_COLUMNS) if i != LECTURE_COLUMN)


def shown_table(study: LossStudy):
    """The study's table as the page shows it (``SHOWN_COLUMNS``): the measurement first (the row to beat), the
    best value of each column marked, and the lecture's column left to ``lecture_note`` (other data)."""
    return styled([[c for i, c in enumerate(row) if i != LECTURE_COLUMN] for row in study.table_rows()], SHOWN_COLUMNS)


def lecture_note(study: LossStudy) -> str:
    """The lecture's own figures (``LECTURE_RESULTS``) for the configurations it studied, said to be from another
    data set."""
    published = [(label, LECTURE_RESULTS[label]) for label in study.results if label in LECTURE_RESULTS]
    if not published:
        return ""
    figures = "; ".join(f"{label} {p:.3f} dB / SSIM {s:.4f}" for label, (p, s) in published)
    return (f"The lecture's own results for these losses (PSNR / SSIM), measured on its CT slices, another data set: "
            f"{figures}. Compare their order with ours, not their values.")  # fmt: skip


def _gallery(study: LossStudy, latest: dict) -> list:
    """Ground truth, measurement and each configuration's latest reconstruction, each as its centre zoomed
    (``lab.pictures.centre_zoom``: a gain of 1 dB shows there, and the zero-padded border's dark frame does not); finished
    ones (and the measurement) with their PSNR, of the whole picture, in the caption."""
    out = []
    if study.x_true is not None:
        out.append((to_uint8(centre_zoom(study.x_true[0, 0].numpy())), "ground truth"))
        done = bool(study.results) and len(latest) == len(study.results)
        measured = f": {study.measurement_metrics()['psnr']:.2f} dB" if done else ""
        out.append((to_uint8(centre_zoom(study.y_delta[0, 0].numpy())), "measurement" + measured))
    for label, x in latest.items():
        r = study.results.get(label)
        out.append((to_uint8(centre_zoom(x)), f"{label}: {r.metrics['psnr']:.2f} dB" if r else label))
    return out


def build(rec) -> None:
    """Lay out the tab; ``rec`` is the Reconstruct tab, whose operator and image the study uses."""
    defaults = live_defaults()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            gr.Markdown("The lecture's loss study: the same small network, the same data and seed, trained with each loss. "
                        "The operator and test image come from the Reconstruct tab.")  # fmt: skip
            presets = gr.CheckboxGroup(list(PRESETS), value=list(EXPERIMENTS["pure"]), label="Configurations (lecture presets)",
                                       elem_id="presets")  # fmt: skip
            custom = gr.Textbox(label="Custom weighted loss (optional)", placeholder="mse + 0.2*ssim + 0.1*perceptual",
                                info="names: " + ", ".join(LOSSES), elem_id="custom")  # fmt: skip
            model = gr.Dropdown([(model_info(m).display_name, m) for m in LIVE_MODELS], value=defaults.model, label="Model", elem_id="train_model")
            epochs = gr.Slider(1, MAX_EPOCHS, value=defaults.epochs, step=1, label="Epochs", elem_id="epochs")
            n_images = gr.Slider(4, MAX_IMAGES, value=defaults.n_images, step=4, label="Training images (batches of 4)",
                                 elem_id="n_images")  # fmt: skip
            size = gr.Radio(list(SIZES), value=defaults.size, label="Image size", elem_id="size")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="train")
                stop = gr.Button("Stop", variant="stop", elem_id="stop")
        with gr.Column(scale=2, min_width=320):
            status = gr.Markdown(READY, elem_id="train_status")
            plot = gr.LinePlot(x="step", y="relative_loss", color="configuration", y_title="loss / its first value", height=300,
                               label="Loss curves",
                               elem_id="curves")  # fmt: skip
            legend = gr.HTML(elem_id="curves_legend")
            recs = gr.Gallery(label=f"Reconstructions of the test measurement: the centre, zoomed {ZOOM}× (PSNR of the whole)",
                              columns=4, height="auto", format="png",
                              elem_id="train_recs")  # fmt: skip
            table = gr.Dataframe(headers=list(SHOWN_COLUMNS),
                                 interactive=False, wrap=False, elem_id="train_table",
                                 label="Results (the best of each column in bold green; the measurement is the row to beat)")  # fmt: skip
            lecture = gr.Markdown(elem_id="train_lecture")
            gr.Markdown("**The lecture-style figure** (full screen or download: the buttons at its corner)")
            figure = gr.Image(show_label=False, type="filepath", interactive=False, buttons=["fullscreen", "download"],
                              elem_id="figure")  # fmt: skip

    inputs = [presets, custom, model, epochs, n_images, size, *rec.controls.inputs()]  # the operator and image: Reconstruct's

    def start(presets, custom, model, epochs, n_images, size, request: gr.Request, *values):  # request before *values
        # only the operator, the noise and the image count here (live_config checks them), not the seed or the models
        cfg = study_config(presets, custom, model, epochs, n_images, size, Setting.of(**dict(zip(FLAT_FIELDS, values))))
        yield from cancellable(_session(request), lambda cancel: run_study(cfg, cancel))

    def halt(request: gr.Request):
        return stop(_session(request), "Nothing is training.")

    train.click(start, inputs, [plot, recs, status, table, figure, legend, lecture], concurrency_limit=1, concurrency_id="train",
                api_visibility="private")  # fmt: skip
    stop.click(halt, None, status, queue=False, api_visibility="private")
    build_fine_tune()


FINE_TUNE_READY = ("Press **Fine-tune**: the general network is adapted to this blur twice, once from the measurements "
                   "alone and once with the clean images, for comparison. The defaults take about two minutes here.")


def fine_tune_frame(ft: FineTune) -> pd.DataFrame:
    """(step, PSNR on the held-out image, run) rows for the plot; the general network's start is every run's step 0."""
    rows = [(step, value, label) for label, c in ft.curves.items() for step, value in zip(c.steps, c.psnr)]
    return pd.DataFrame(rows, columns=["step", "psnr", "run"])


def fine_tune_gallery(ft: FineTune) -> list:
    out = [(to_uint8(centre_zoom(ft.x_true[0, 0].numpy())), "ground truth"),
           (to_uint8(centre_zoom(np.clip(ft.y_delta[0, 0].numpy(), 0, 1))), f"measurement: {ft.measurement_psnr:.2f} dB"),
           (to_uint8(centre_zoom(ft.start_image)), f"general network: {ft.start_metrics['psnr']:.2f} dB")]  # fmt: skip
    truth = ft.x_true[0, 0].numpy()
    runs = [(label, c.x_rec, c.psnr[-1]) for label, c in ft.curves.items() if c.x_rec is not None]
    for label, x, value in runs:
        out.append((to_uint8(centre_zoom(x)), f"{label}: {value:.2f} dB"))
    # 1 dB is hard to see in the pictures and plain in their errors: |x − x_true| × 4, the start's and each run's
    for label, x in [("general network", ft.start_image), *((label, x) for label, x, _ in runs)]:
        out.append((to_uint8(centre_zoom(residual_map(truth, x))), f"{label}: |x_rec − x_true| × 4"))
    return out


def run_fine_tune(cfg: FineTuneConfig, cancel: threading.Event):
    """Yield (plot, gallery, status, legend) while both runs train; the last status is the summary."""
    try:
        ft = FineTune(cfg)
    except (SettingError, TrainingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    colours = series_colours(cfg.labels())
    legend = legend_html(colours)
    yield gr.update(value=fine_tune_frame(ft), color_map=colours), fine_tune_gallery(ft), "Starting…", legend
    shown, start = 0.0, time.perf_counter()
    try:
        for _, event in ft.run(cancel):
            now = time.perf_counter()
            if now - shown >= UPDATE_EVERY_S:
                shown = now
                status = (f"Fine-tuning {' and '.join(f'**{name}**' for name in cfg.labels())}, step by step in turn: "
                          f"step {event.step} of {cfg.steps} ({now - start:.0f} s)")  # fmt: skip
                yield gr.update(value=fine_tune_frame(ft), color_map=colours), fine_tune_gallery(ft), status, legend
    except TrainingError as err:
        raise gr.Error(str(err)) from None
    stopped = any(c.status == "cancelled" for c in ft.curves.values())
    yield (gr.update(value=fine_tune_frame(ft), color_map=colours), fine_tune_gallery(ft),
           ("Stopped. " if stopped else "") + ft.summary(), legend)  # fmt: skip


def build_fine_tune() -> None:
    """The second section: fine-tuning without ground truth, beside fine-tuning with it."""
    default = FineTuneConfig()
    gr.Markdown("### Fine-tune without ground truth\nA clinic has measurements, not clean images. Equivariant imaging "
                f"([{EI_REFERENCE}]({EI_LINK})) trains on the measurements alone: the network must agree with them through K, "
                "and must reconstruct its own output, rotated or mirrored, from that output blurred again.")  # fmt: skip
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown([(model_info(m).display_name, m) for m in FINE_TUNE_MODELS], value=default.model,
                                label="General network to start from", elem_id="ft_model")  # fmt: skip
            loss = gr.Radio([(f"{i.label} ({i.name})", i.name) for i in SELF_SUPERVISED.values()], value=default.loss,
                            label="Loss without ground truth", elem_id="ft_loss")  # fmt: skip
            blur = spec_widgets(default.operator, prefix="ft_", names=("kernel_size", "angle"), hints=False)
            noise = gr.Slider(0, 0.1, value=default.noise, step=0.005, label="Noise level δ", elem_id="ft_noise")
            steps = gr.Slider(20, FINE_TUNE_MAX_STEPS, value=default.steps, step=10, label="Steps (each run)", elem_id="ft_steps")
            image = gr.Dropdown(images.split_names("held_out"), value=default.image, label="Held-out image (validation only)",
                                elem_id="ft_image")  # fmt: skip
            supervised = gr.Checkbox(value=True, label="Also fine-tune with ground truth, beside", elem_id="ft_supervised")
            with gr.Row():
                go = gr.Button("Fine-tune", variant="primary", elem_id="ft_run")
                stop = gr.Button("Stop", variant="stop", elem_id="ft_stop")
        with gr.Column(scale=2, min_width=320):
            status = gr.Markdown(FINE_TUNE_READY, elem_id="ft_status")
            plot = gr.LinePlot(x="step", y="psnr", color="run", y_title="PSNR (dB)", x_title="step", height=300,
                               label="PSNR on the held-out image while fine-tuning (step 0: the general network)",
                               elem_id="ft_curves")  # fmt: skip
            legend = gr.HTML(elem_id="ft_legend")
            recs = gr.Gallery(label=f"The held-out image: the centre, zoomed {ZOOM}× (PSNR of the whole), then the errors", columns=5,
                              height="auto", format="png", elem_id="ft_recs")  # fmt: skip

    def start(model, loss, kernel_size, angle, noise, steps, image, supervised, request: gr.Request):
        cfg = FineTuneConfig(model=model, loss=loss, operator=replace(default.operator, kernel_size=kernel_size, angle=angle),
                             noise=noise, steps=steps, image=image, supervised=bool(supervised))  # fmt: skip
        yield from cancellable(_session(request) + ":fine-tune", lambda cancel: run_fine_tune(cfg, cancel))

    def halt(request: gr.Request):
        return stop(_session(request) + ":fine-tune", "Nothing is fine-tuning.")

    inputs = [model, loss, blur["kernel_size"], blur["angle"], noise, steps, image, supervised]
    go.click(start, inputs, [plot, recs, status, legend], concurrency_limit=1, concurrency_id="train", api_visibility="private")
    stop.click(halt, None, status, queue=False, api_visibility="private")
