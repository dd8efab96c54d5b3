"""The Robustness tab: the lecture's warning made visible. PSNR of the chosen models as the noise level, the
motion angle or the kernel size moves away from the setting of the Reconstruct tab, for course or general
weights (the computation is ``recon_demo.lab.robustness``)."""

from __future__ import annotations

import gradio as gr

from recon_demo.lab.robustness import MEASUREMENT, PARAMETERS, save_sweep_figure, sweep
from recon_demo.lab.setting import SettingError
from recon_demo.progress import Report, no_progress
from recon_demo.ui._files import scratch_dir
from recon_demo.ui._legend import legend_html, series_colours
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui._setting import setting_from

TITLES = {"noise": "noise level δ (relative)", "angle": "motion angle (°)", "kernel_size": "kernel size (pixels)"}
CURRENT = "your setting"


HANDED = {"true": "the true K (the blur was measured)", "nominal": "the nominal K (it was not measured again)"}


def sweep_outputs(lab, param: str, weights: list[str], handed: str, *values, report: Report = no_progress) -> tuple:
    """The Robustness tab's handler: a note, the PSNR curves' figure (``lab.robustness.sweep_figure``) and their
    legend; ``report`` hears of each value done."""
    setting = setting_from(*values)
    if not weights or any(w not in ("course", "general") for w in weights):
        raise gr.Error("choose course and/or general weights")
    if handed not in HANDED:
        raise gr.Error(f"the methods that use K are handed {' or '.join(HANDED)} K")
    try:
        points = sweep(lab, setting, param, regimes=tuple(weights), report=report, told=handed == "true")
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    missing = sorted({p.model for p in points if p.psnr is None})
    current = float(setting.flat()[param])
    note = (f"{len(PARAMETERS[param])} values of {TITLES[param]}, {' and '.join(weights)} weights, image {setting.image}; "
            f"the vertical line marks the Reconstruct tab's setting ({TITLES[param]} = {current:g}).")  # fmt: skip
    note += f" Methods that use K were handed {HANDED[handed]}."
    if missing:
        note += f" No weights yet for: {', '.join(missing)}."
    marker = f"{CURRENT} ({current:g})"
    colours = colours_of([*dict.fromkeys(p.model for p in points if p.model not in missing), marker])
    figure = save_sweep_figure(points, param, current, TITLES[param], colours, scratch_dir() / f"sweep_{param}.png", marker)
    return note, figure, legend_html(colours)


FIXED = {MEASUREMENT: "#7f7f7f"}  # the measurement grey
MARKER_COLOUR = "#222222"  # the current setting's line black: the palette's orange and gold were too close


def colours_of(names: list[str]) -> dict[str, str]:
    """The sweep's series colours: the measurement grey, the current setting's line black, the others in turn."""
    return series_colours(names, FIXED | {n: MARKER_COLOUR for n in names if n.startswith(CURRENT)})



def build(lab, rec) -> gr.Radio:
    """Lay out the tab; returns the parameter's radio (a lesson sets it)."""
    gr.Markdown("End-to-end networks are trained for one operator and noise level (course weights) or a range of them "
                "(general weights). Here the measurement moves away from the Reconstruct tab's setting while each "
                "network keeps what it learned. The methods that use K (Wiener, RL, TV and the unrolled network) are "
                "handed the true K, or the nominal one as if the blur had not been measured again.")  # fmt: skip
    with gr.Row():
        parameter = gr.Radio([(TITLES[p], p) for p in PARAMETERS], value="noise", label="Vary", elem_id="sweep_parameter")
        regimes = gr.CheckboxGroup(["course", "general"], value=["course", "general"], label="Weights", elem_id="sweep_regimes")
        handed = gr.Radio([(text, key) for key, text in HANDED.items()], value="true", label="Methods that use K are handed",
                          elem_id="sweep_handed")  # fmt: skip
        run = gr.Button("Run the sweep", variant="primary", elem_id="sweep")
    status = gr.Markdown(elem_id="sweep_status")
    plot = gr.Image(label="PSNR (dB) as the measurement moves (the dashed line: your setting)", type="filepath", height=480,
                    interactive=False, buttons=["fullscreen", "download"], elem_id="sweep_plot")  # fmt: skip
    legend = gr.HTML(elem_id="sweep_legend")

    def do_sweep(param, weights, handed_k, progress=PROGRESS, *values):  # progress before *values: see reconstruct.run
        return sweep_outputs(lab, param, weights, handed_k, *values, report=shown_by(progress))

    inputs, outputs = [parameter, regimes, handed, *rec.controls.inputs()], [status, plot, legend]
    run.click(do_sweep, inputs, outputs, api_visibility="private")
    # another parameter (a student's choice, or a lesson's) sweeps at once, as every other control recomputes
    parameter.change(do_sweep, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    return parameter
