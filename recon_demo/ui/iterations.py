"""The Iterations tab: Landweber, CGLS, Richardson-Lucy and SIRT one step at a time, at two noise levels, so that a
class sees semi-convergence; a slider walks through the iterates. The computation is ``recon_demo.lab.iterations``:
a setting is computed once (with a progress bar), then the slider only redraws from the cache."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from recon_demo.lab.iterations import (
    DEFAULT_ITERATIONS,
    MAX_ITERATIONS,
    METHODS,
    NOISE_LEVELS,
    IterationLab,
    IterationSetting,
    figure,
)
from recon_demo.lab.pictures import to_uint8
from recon_demo.lab.setting import MAX_NOISE, SettingError
from recon_demo.physics.blur import LECTURE_OPERATOR
from recon_demo.physics.ct import LECTURE_ANGLES
from recon_demo.ui._images import image_choices
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui._widgets import spec_widgets

INTRO = ("Iterative methods regularise only by **stopping**. Each step fits more of the measurement: first the image, "
         "then the noise. Watch the PSNR rise, peak (★) and fall while the residual keeps falling — earlier when the "
         "noise is higher. ▼ is where the discrepancy principle would stop, knowing δ but not the ground truth. The "
         "dashed points are the unrolled network's learned steps.")  # fmt: skip


def setting_from(method, image, kernel_size, angle, angles, low, high, iterations, seed=0) -> IterationSetting:
    operator = replace(LECTURE_OPERATOR, kernel_size=kernel_size, angle=angle)  # validated by the setting
    return IterationSetting(method=method, image=image, operator=operator, angles=angles, noises=(low, high),
                            iterations=iterations, seed=seed)  # fmt: skip


def pictures(result, k: int) -> list:
    low, high = result.traces
    k = min(max(int(k), 1), len(low.psnr))
    return [
        (to_uint8(result.x_true), "ground truth"),
        (to_uint8(low.picture(k)), f"δ {low.noise:g}, iteration {k}: {low.psnr[k - 1]:.2f} dB"),
        (to_uint8(high.picture(k)), f"δ {high.noise:g}, iteration {k}: {high.psnr[k - 1]:.2f} dB"),
        (to_uint8(high.picture(high.best)), f"δ {high.noise:g}, its best (iteration {high.best}): {high.psnr.max():.2f} dB"),
    ]


def status_of(result, k: int) -> str:
    method = METHODS[result.setting.method]
    lines = [f"**{method.label}.** {method.sentence}"]
    for t in result.traces:
        stop = f", the discrepancy principle stops at {t.discrepancy} ({t.psnr[t.discrepancy - 1]:.2f} dB)" if t.discrepancy else ""
        if t.best == len(t.psnr):
            lines.append(f"δ {t.noise:g}: still rising at the last iterate ({t.best}, {t.psnr[-1]:.2f} dB): run more "
                         f"iterations to see it fall{stop}.")  # fmt: skip
        else:
            lines.append(f"δ {t.noise:g}: best iterate {t.best} at {t.psnr.max():.2f} dB, the last ({len(t.psnr)}) "
                         f"{t.psnr[-1]:.2f} dB ({t.psnr.max() - t.psnr[-1]:.1f} dB lost by going on){stop}.")  # fmt: skip
    if result.network:
        lines.append(f"{result.network}: {len(result.network_psnr[0])} learned steps after its first estimate, the last at "
                     + ", ".join(f"{p[-1]:.2f} dB (δ {t.noise:g})" for p, t in zip(result.network_psnr, result.traces)) + ".")
    lines += [f"⚠ {n}" for n in result.notes]
    return "\n\n".join(lines)


def compute(it_lab: IterationLab, method, image, kernel_size, angle, angles, low, high, iterations, k, progress=PROGRESS):
    """Run (or read from the cache) the setting; the status, the figure at iterate ``k``, the pictures, the slider and
    the setting shown (the slider's state)."""
    try:
        result = it_lab.run(setting_from(method, image, kernel_size, angle, angles, low, high, iterations), shown_by(progress))
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    k = min(int(k or 1), result.setting.iterations)
    return (status_of(result, k), figure(result, k), pictures(result, k),
            gr.update(maximum=result.setting.iterations, value=k), result.setting)  # fmt: skip


def show(it_lab: IterationLab, shown: IterationSetting | None, k):
    """The slider: the figure and pictures of the setting on show at iterate ``k``, from the cache only (a slider
    never starts a computation of minutes: a setting no longer cached asks for Run)."""
    result = it_lab.cached(shown) if shown is not None else None
    if result is None:
        gr.Info("Press “Run the iterations” first: this setting is not computed.")
        return gr.update(), gr.update()
    k = min(max(int(k or 1), 1), result.setting.iterations)
    return figure(result, k), pictures(result, k)


def build(it_lab: IterationLab, tab: gr.Tab | None = None):
    """Lay out the tab; returns its inputs (for the lessons) in ``setting_from``'s order, then the iterate slider."""
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            method = gr.Radio([(m.label, m.name) for m in METHODS.values()], value="landweber", label="Method",
                              elem_id="it_method")  # fmt: skip
            image = gr.Dropdown(image_choices(), value="camera", label="Image", elem_id="it_image")
            blur = spec_widgets(LECTURE_OPERATOR, prefix="it_", names=("kernel_size", "angle"), hints=False)
            kernel_size, angle = blur["kernel_size"], blur["angle"]
            angles = gr.Slider(10, 180, value=LECTURE_ANGLES, step=1, label="CT angles (SIRT)", visible=False, elem_id="it_angles")
            with gr.Row():
                low = gr.Slider(0, MAX_NOISE, value=NOISE_LEVELS[0], step=0.005, label="Noise δ, low", elem_id="it_low")
                high = gr.Slider(0, MAX_NOISE, value=NOISE_LEVELS[1], step=0.005, label="Noise δ, high", elem_id="it_high")
            iterations = gr.Slider(10, MAX_ITERATIONS, value=DEFAULT_ITERATIONS, step=10, label="Iterations",
                                   elem_id="it_iterations")  # fmt: skip
            run = gr.Button("Run the iterations", variant="primary", elem_id="it_run")
        with gr.Column(scale=2, min_width=300, elem_id="it_results_col"):  # first on a phone
            k = gr.Slider(1, DEFAULT_ITERATIONS, value=20, step=1, label="Show iteration", elem_id="it_k")
            plot = gr.Plot(label="PSNR and residual against the iteration", show_label=False, elem_id="it_plot")
            gallery = gr.Gallery(label="The iterates", columns=4, height="auto", object_fit="contain", elem_id="it_pictures")
            status = gr.Markdown(elem_id="it_status")
    inputs = [method, image, kernel_size, angle, angles, low, high, iterations]

    def handler(method, image, kernel_size, angle, angles, low, high, iterations, k, progress=PROGRESS):
        return compute(it_lab, method, image, kernel_size, angle, angles, low, high, iterations, k, progress)

    def slide(shown, k):
        return show(it_lab, shown, k)

    shown = gr.State(None)  # the setting whose iterates the slider walks (the controls may have moved since)
    outputs = [status, plot, gallery, k, shown]
    run.click(handler, [*inputs, k], outputs, api_visibility="private")
    for control in (method, image):
        control.change(handler, [*inputs, k], outputs, api_visibility="private")
    method.change(lambda m: [gr.update(visible=METHODS[m].task == "deblur")] * 2 + [gr.update(visible=METHODS[m].task == "ct")],
                  method, [kernel_size, angle, angles], api_visibility="private")  # fmt: skip
    k.input(slide, [shown, k], [plot, gallery], api_visibility="private", trigger_mode="always_last")
    if tab is not None:
        tab.select(handler, [*inputs, k], outputs, api_visibility="private")
    return [*inputs, k]
