"""The Inspect tab: the lecture's hook-based figures, made interactive. Activations of any convolution of the
chosen network on the current measurement, its receptive field (the lecture's formula where it applies and
the measured map over the image), parameters and FLOPs of every architecture, the kernel's Fourier
magnitude and the residual |x_true − y_delta| that residual networks learn."""

from __future__ import annotations

import gradio as gr

from recon_demo.activations import conv_layers, layer_label
from recon_demo.lab.blur import Lab
from recon_demo.lab.inspection import inspect
from recon_demo.lab.pictures import to_uint8
from recon_demo.lab.setting import SettingError, network_choices
from recon_demo.lab.tables import architecture_summary
from recon_demo.models import create_model, model_info
from recon_demo.progress import Report, no_progress
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui._setting import setting_from


def architectures_rows() -> list[list]:
    rows = []
    for name in network_choices():
        s = architecture_summary(name)
        rf = s["receptive_field"]
        rows.append([model_info(name).label, f"{s['parameters']:,}", f"{s['flops'] / 1e9:.2f}", f"{rf}×{rf}" if rf else "(not a plain chain)"])
    return rows


def layer_choices(name: str) -> list[tuple[str, str]]:
    """The architecture's convolutions for the menu, named as a student reads them (``activations.layer_label``)."""
    return [(layer_label(layer), layer) for layer in conv_layers(create_model(name))]


def inspect_outputs(lab: Lab, name: str, layer_name: str | None, scale_kind: str, *values, report: Report = no_progress) -> tuple:
    """The Inspect tab's handler (``Lab.inspect`` computes): channels, notes, receptive field, spectrum, residual and
    the size table; ``report`` hears of each stage (the receptive field is a backward pass through the network)."""
    setting = setting_from(*values)
    try:
        seen = inspect(lab, setting, name, layer_name, scale_kind, report)
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    h, w = seen.rf_extent
    c, hh, ww = seen.total_channels, *seen.channels[0].shape
    shown = f"all {c} channels" if len(seen.channels) == c else f"the first {len(seen.channels)} of its {c} channels"
    text = f"**{model_info(name).label}**, {layer_label(seen.layer)} (`{seen.layer}`): {shown}, each {hh}×{ww}.\n\n"
    text += f"Measured receptive field of the centre pixel: {h}×{w} pixels (gradient above 0.1 % of its peak; the yellow box)."
    if seen.rf_formula:
        text += f" The lecture's formula gives {seen.rf_formula}×{seen.rf_formula} for this plain chain of convolutions."
    text += ("\n\nBeside it: the kernel's Fourier magnitude (dark: the frequencies the blur destroys, which no method can"
             " simply divide back) and the residual |x_true − y_delta| (what ResCNN learns to add).")
    channels = [(to_uint8(ch), f"{i + 1}/{c}") for i, ch in enumerate(seen.channels)]
    steps = [(to_uint8(x), f"x_{k}: {p:.2f} dB") for k, (x, p) in enumerate(zip(seen.iterates, seen.iterate_psnr))]
    if steps:
        text += ("\n\nIts estimates, under the activations: x_0 fits the measurement (a regularised least-squares step); each"
                 " next one is denoised, then pulled back to agree with y_delta. The PSNR rises over the steps (one may"
                 " dip: each denoiser learned its own share of the work).")
    iterates = gr.update(value=steps or None, visible=bool(steps))
    return (channels, seen.note, text, seen.receptive_field, to_uint8(seen.spectrum), to_uint8(seen.residual), architectures_rows(),
            iterates)  # fmt: skip


def build(lab: Lab, rec, tab: gr.Tab) -> None:
    """Lay out the tab; it fills itself when opened (``tab``'s select), and on its button after a change."""
    names = network_choices()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            gr.Markdown("Uses the image, operator and weights of the Reconstruct tab.")
            model = gr.Dropdown([(model_info(n).label, n) for n in names], value=names[0], label="Architecture", elem_id="inspect_model")
            first = layer_choices(names[0])
            layer = gr.Dropdown(first, value=first[0][1], label="Convolution (default: the first)",
                                elem_id="inspect_layer")  # fmt: skip
            scale = gr.Radio([("shared scale", "shared"), ("per channel", "channel")], value="shared", label="Colour scale")
            show = gr.Button("Inspect", variant="primary", elem_id="inspect")
            note = gr.Markdown(elem_id="inspect_note")
            rf_text = gr.Markdown(elem_id="rf_text")
        with gr.Column(scale=2, min_width=320):
            with gr.Row():  # first: the pictures lessons talk about (the spectrum in lesson 1), above the fold
                spectrum = gr.Image(label="Kernel's Fourier magnitude", height=300, elem_id="spectrum")
                rf_map = gr.Image(label="Receptive field", height=300, elem_id="rf_map")
                residual = gr.Image(label="|x_true − y_delta|", height=300, elem_id="residual")  # the residual
            channels = gr.Gallery(label="Activations, one image per channel (click to enlarge)", columns=8, height="auto",
                                  format="png", elem_id="channels")  # fmt: skip
            iterates = gr.Gallery(label="Unrolled estimates x_0, x_1, … (PSNR)", columns=3, height="auto",
                                  format="png", visible=False, elem_id="iterates")  # fmt: skip
            table = gr.Dataframe(headers=["architecture", "parameters", "GFLOP at 256²", "formula receptive field"],
                                 interactive=False, label="Size and cost", elem_id="architectures")  # fmt: skip

    def pick_model(name):
        choices = layer_choices(name)
        return gr.update(choices=choices, value=choices[0][1])  # its first convolution, named

    model_picked = model.input(pick_model, model, layer, api_visibility="private")

    def inspect(name, layer_name, scale_kind, progress=PROGRESS, *values):  # progress before *values: see reconstruct.run
        return inspect_outputs(lab, name, layer_name, scale_kind, *values, report=shown_by(progress))

    inputs, outputs = [model, layer, scale, *rec.controls.inputs()], [channels, note, rf_text, rf_map, spectrum, residual, table, iterates]
    show.click(inspect, inputs, outputs, api_visibility="private")
    tab.select(inspect, inputs, outputs, api_visibility="private")  # opened: the current setting, at once
    model_picked.then(inspect, inputs, outputs, api_visibility="private")
    for control in (layer, scale):  # a new choice shows at once (the architecture's: after its layer list is reset)
        control.input(inspect, inputs, outputs, api_visibility="private", trigger_mode="always_last")
