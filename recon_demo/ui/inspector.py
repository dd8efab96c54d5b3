"""The Inspect tab: the lecture's hook-based figures, made interactive. Activations of any convolution of the
chosen network on the current measurement, its receptive field (the lecture's formula where it applies and
the measured map over the image), parameters and FLOPs of every architecture, the kernel's Fourier
magnitude and the residual |x_true − y_delta| that residual networks learn."""

from __future__ import annotations

import copy

import gradio as gr
import numpy as np
import torch

from recon_demo.activations import activations, conv_layers, empirical_receptive_field, receptive_field_extent, scale_channels
from recon_demo.checkpoints import CheckpointError
from recon_demo.lab import Lab, SettingError
from recon_demo.models import create_model, list_models, model_info
from recon_demo.pictures import kernel_spectrum, overlay, residual_map, to_uint8
from recon_demo.progress import Report, no_progress
from recon_demo.tables import architecture_summary
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui.reconstruct import setting_from

MAX_CHANNELS = 64  # channels shown as separate images (the ViT's patch embedding has 128)


def network(lab: Lab, name: str, regime: str) -> tuple[torch.nn.Module, str]:
    """The model with its shipped weights, or the untrained architecture when there are none (and a note)."""
    try:
        return lab.engine.model(name, regime=regime), ""
    except CheckpointError:
        return create_model(name).eval(), f"{model_info(name).label} has no {regime} weights yet: the untrained network is shown."


def channel_images(act: torch.Tensor, scale: str) -> list[tuple[np.ndarray, str]]:
    """Each channel (C, H, W) as an image, with a shared or per-channel colour scale."""
    return [(to_uint8(c), f"channel {i}") for i, c in enumerate(scale_channels(act[:MAX_CHANNELS], scale))]


def architectures_rows() -> list[list]:
    rows = []
    for name in list_models():
        s = architecture_summary(name)
        rf = s["receptive_field"]
        rows.append([model_info(name).label, f"{s['parameters']:,}", f"{s['flops'] / 1e9:.2f}", f"{rf}×{rf}" if rf else "(not a plain chain)"])
    return rows


def inspect_outputs(lab: Lab, name: str, layer_name: str | None, scale_kind: str, *values, report: Report = no_progress) -> tuple:
    """The Inspect tab's handler: channels, notes, receptive field, spectrum, residual and the size table;
    ``report`` hears of each stage (the receptive field is a backward pass through the whole network)."""
    setting = setting_from(*values)
    if name not in list_models():
        raise gr.Error(f"unknown architecture {name!r}; choose one of {', '.join(list_models())}")
    if scale_kind not in ("shared", "channel"):
        raise gr.Error(f"colour scale must be 'shared' or 'channel', got {scale_kind!r}")
    try:
        x_true = lab.x_true(setting.image)
        y_delta = lab.measurement(setting)
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    report(0, 3, "activations")
    net, note_text = network(lab, name, setting.regime)
    net = copy.deepcopy(net)  # hooks and gradients on a private copy: the engine's model is shared between requests
    layers = conv_layers(net)
    layer_name = layer_name if layer_name in layers else layers[0]
    act = activations(net, y_delta, layer_name)
    report(1, 3, "receptive field: a backward pass from the centre pixel")
    rf = empirical_receptive_field(net, y_delta)
    report(2, 3, "sizes and costs of the architectures")
    h, w = receptive_field_extent(rf, threshold=1e-3)
    formula = architecture_summary(name)["receptive_field"]
    text = f"**{model_info(name).label}**, layer `{layer_name}`: {act.shape[0]} channels of {act.shape[1]}×{act.shape[2]}.\n\n"
    text += f"Measured receptive field of the centre pixel: {h}×{w} pixels (gradient above 0.1 % of its peak)."
    if formula:
        text += f" The lecture's formula gives {formula}×{formula} for this plain chain of convolutions."
    image = y_delta[0, 0].numpy()
    return (
        channel_images(act, scale_kind), note_text, text, overlay(image, rf),
        to_uint8(kernel_spectrum(setting.operator.kernel().numpy())),
        to_uint8(residual_map(x_true[0, 0].numpy(), image)), architectures_rows(),
    )  # fmt: skip


def build(lab: Lab, rec) -> None:
    names = list_models()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            gr.Markdown("Uses the image, operator and weights of the Reconstruct tab.")
            model = gr.Dropdown([(model_info(n).label, n) for n in names], value=names[0], label="Architecture", elem_id="inspect_model")
            layer = gr.Dropdown(conv_layers(create_model(names[0])), value=None, label="Convolution (default: the first)",
                                elem_id="inspect_layer")  # fmt: skip
            scale = gr.Radio([("shared scale", "shared"), ("per channel", "channel")], value="shared", label="Colour scale")
            show = gr.Button("Inspect", variant="primary", elem_id="inspect")
            note = gr.Markdown(elem_id="inspect_note")
            rf_text = gr.Markdown(elem_id="rf_text")
        with gr.Column(scale=2, min_width=320):
            channels = gr.Gallery(label="Activations, one image per channel (click to enlarge)", columns=8, height=360,
                                  format="png", elem_id="channels")  # fmt: skip
            with gr.Row():
                rf_map = gr.Image(label="Receptive field of the centre pixel, over the measurement", height=300, elem_id="rf_map")
                spectrum = gr.Image(label="Kernel's Fourier magnitude (dark: frequencies the blur destroys)", height=300)
                residual = gr.Image(label="Residual |x_true − y_delta| (what ResCNN learns)", height=300)
            table = gr.Dataframe(headers=["architecture", "parameters", "GFLOP at 256²", "formula receptive field"],
                                 interactive=False, label="Size and cost", elem_id="architectures")  # fmt: skip

    def pick_model(name):
        return gr.update(choices=conv_layers(create_model(name)), value=None)

    model.input(pick_model, model, layer, api_visibility="private")

    def inspect(name, layer_name, scale_kind, progress=PROGRESS, *values):  # progress before *values: see reconstruct.run
        return inspect_outputs(lab, name, layer_name, scale_kind, *values, report=shown_by(progress))

    show.click(inspect, [model, layer, scale, *rec.controls.inputs()], [channels, note, rf_text, rf_map, spectrum, residual, table],
               api_visibility="private")  # fmt: skip
