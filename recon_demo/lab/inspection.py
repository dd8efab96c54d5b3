"""What the Inspect tab shows, computed: a network's activations at one of its convolutions on the current
measurement, the measured receptive field of the centre pixel beside the lecture's formula, the kernel's
Fourier magnitude and the residual |x_true − y_delta|. ``Lab.inspect`` calls ``inspect``; the tab only lays out
what comes back.

The network is the shipped one of the setting's regime or, when there is none, the untrained architecture
(with a note). Hooks and the backward pass of the receptive field run on a private copy: the engine's model
is shared between requests.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from recon_demo.activations import activations, conv_layers, empirical_receptive_field, receptive_field_extent, scale_channels
from recon_demo.checkpoints import CheckpointError
from recon_demo.errors import UnknownName
from recon_demo.lab.pictures import draw_box, kernel_spectrum, overlay, residual_map
from recon_demo.lab.setting import network_choices
from recon_demo.lab.tables import architecture_summary
from recon_demo.metrics import psnr
from recon_demo.models import create_model, knows_operator, model_info
from recon_demo.progress import Report, no_progress

MAX_CHANNELS = 64  # channels shown as separate images (the ViT's patch embedding has 128)
SCALES = ("shared", "channel")  # one colour scale for all channels, or one each
RF_THRESHOLD = 1e-3  # the receptive field's extent: pixels whose gradient is above 0.1 % of its peak


@dataclass
class Inspection:
    """One network looked into on one measurement."""

    model: str  # registry name
    layer: str  # the convolution shown (module path)
    channels: list[np.ndarray]  # the first MAX_CHANNELS channels, each (H, W) in [0, 1] on the chosen scale
    total_channels: int  # how many the layer has
    note: str  # "" or why the untrained network is shown
    receptive_field: np.ndarray  # (H, W) RGB uint8: the measurement, the centre pixel's dependencies, their box
    rf_extent: tuple[int, int]  # (height, width) of the measured receptive field, pixels
    rf_formula: int | None  # the lecture's formula for plain chains, else None
    spectrum: np.ndarray  # (H, W) in [0, 1]: log |FFT| of the kernel
    residual: np.ndarray  # (H, W) in [0, 1]: |x_true − y_delta| × 4
    iterates: list[np.ndarray] = field(default_factory=list)  # x_0 … x_K of a network that knows K, each (H, W)
    iterate_psnr: list[float] = field(default_factory=list)  # each iterate's PSNR against x_true, dB


def inspect(lab, setting, name: str, layer: str | None = None, scale: str = "shared", report: Report = no_progress) -> Inspection:
    """Look into network ``name`` on the setting's measurement; ``UnknownName`` or ``ValueError`` say what is wrong."""
    if name not in network_choices():
        raise UnknownName(f"unknown architecture {name!r}; choose one of {', '.join(network_choices())}")
    if scale not in SCALES:
        raise ValueError(f"colour scale must be 'shared' or 'channel', got {scale!r}")
    setting = setting.validated()
    x_true, y_delta = lab.x_true(setting.image), lab.measurement(setting)
    report(0, 3, "activations")
    try:
        net, note = lab.engine.model(name, regime=setting.regime), ""
    except CheckpointError:
        net = create_model(name).eval()
        note = f"{model_info(name).label} has no {setting.regime} weights yet: the untrained network is shown."
    with _ONE_AT_A_TIME:  # FLOP counting (a dispatch mode) and the receptive field's backward pass of two requests at
        return _inspect(net, lab.engine, note, name, setting, x_true, y_delta, layer, scale, report)  # once broke autograd


_ONE_AT_A_TIME = threading.Lock()


def _inspect(net, engine, note: str, name: str, setting, x_true, y_delta, layer: str | None, scale: str, report: Report) -> Inspection:
    net = copy.deepcopy(net)  # hooks and gradients on a private copy: the engine's model is shared between requests
    steps: list[np.ndarray] = []
    if knows_operator(net):
        net.bind(setting.operator.build())  # Inspect's tools call net(y_delta)
        with torch.inference_mode(), engine.precision(net):  # as Reconstruct runs it: its last iterate is that result
            steps = [x[0, 0].clamp(0, 1).float().cpu().numpy() for x in net.iterates(y_delta.to(next(net.parameters()).device))]
    layers = conv_layers(net)
    layer = layer if layer in layers else layers[0]
    act = activations(net, y_delta, layer)  # (C, H, W)
    report(1, 3, "receptive field: a backward pass from the centre pixel")
    rf = empirical_receptive_field(net, y_delta)
    report(2, 3, "sizes and costs of the architectures")
    image = y_delta[0, 0].numpy()
    return Inspection(
        model=name, layer=layer, channels=list(scale_channels(act[:MAX_CHANNELS], scale)), total_channels=int(act.shape[0]),
        note=note, receptive_field=draw_box(overlay(image, rf), rf > RF_THRESHOLD), rf_extent=receptive_field_extent(rf, threshold=RF_THRESHOLD),
        rf_formula=architecture_summary(name)["receptive_field"], spectrum=kernel_spectrum(setting.operator.kernel().numpy()),
        residual=residual_map(x_true[0, 0].numpy(), image), iterates=steps,
        iterate_psnr=[psnr(step, x_true[0, 0].numpy()) for step in steps],
    )  # fmt: skip


