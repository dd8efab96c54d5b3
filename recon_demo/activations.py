"""Looking inside the networks: activations, receptive fields, parameters and FLOPs.

``capture_activations`` is the lecture's hook-based figure as a context manager: it registers forward
hooks by module name, collects the outputs and always removes its handles. ``conv_layers`` lists every
convolution of a model (the first one is what the app shows by default). The receptive field is given by
the lecture's formula for plain convolution chains and, for every architecture, empirically: the gradient
of the centre output pixel with respect to the input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recon_demo.errors import UnknownName
from recon_demo.models import count_parameters

CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's convolutions (transposed ones too), in the order they were defined."""
    return [name for name, m in model.named_modules() if isinstance(m, CONV_TYPES)]


_BLOCKS = ((r"^enc(\d+)\.", "encoder block {}"), (r"^dec(\d+)\.", "decoder block {}"), (r"^bottleneck\.", "bottleneck"),
           (r"^conv(\d)_(\d)\.", "node X{},{}"), (r"^decoder\.", "decoder"))  # fmt: skip
_PARTS = ((r"(?:^|\.)net\.(\d+)$", lambda i: f"conv {int(i) // 2 + 1}"), (r"(?:^|\.)conv(\d)$", lambda i: f"conv {i}"),
          (r"^decoder\.(\d+)$", lambda i: f"conv {int(i) // 2 + 1}"), (r"\.shortcut$", lambda: "shortcut (1×1)"),
          (r"\.up$", lambda: "up-convolution"), (r"\.gate\.(W_g|W_x|psi)$", lambda g: f"attention gate, {g}"))  # fmt: skip
_WHOLE = {"out_conv": "output conv (1×1)", "patch_embed": "patch embedding (8×8, stride 8)"}


_DENOISER = re.compile(r"^denoisers\.(\d+)\.(head|down|tail|up)(?:\.(\d+))?$")  # the unrolled network's D_k
_DENOISER_PARTS = {"head": "full resolution, conv {}", "down": "half resolution, conv {}", "tail": "output, conv {}"}


def layer_label(name: str) -> str:
    """A convolution's name as a student reads it: ``enc2.conv.net.2`` → "encoder block 2, conv 2",
    ``bottleneck.conv.conv1`` → "bottleneck, conv 1", ``conv1_1.net.0`` → "node X1,1, conv 1", ``conv2`` → "conv 2",
    ``denoisers.0.head.0`` → "denoiser 1, full resolution, conv 1" (the unrolled network)."""
    if name in _WHOLE:
        return _WHOLE[name]
    if m := _DENOISER.match(name):  # denoisers.1.down.2 → "denoiser 2, half resolution, conv 2"
        k, part, index = m.groups()
        where = "up-convolution" if part == "up" else _DENOISER_PARTS[part].format(int(index) // 2 + 1)
        return f"denoiser {int(k) + 1}, {where}"
    block = next((fmt.format(*m.groups()) for pattern, fmt in _BLOCKS if (m := re.match(pattern, name))), None)
    part = next((f(*m.groups()) for pattern, f in _PARTS if (m := re.search(pattern, name))), None)
    if part is None:
        return name
    return f"{block}, {part}" if block else part


def first_conv(model: nn.Module) -> str:
    """The name of the first convolution: ``conv1`` for the CNNs, ``patch_embed`` for the ViT."""
    return conv_layers(model)[0]


@contextmanager
def capture_activations(model: nn.Module, layer_names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Collect the outputs of the named modules during forward passes inside the ``with`` block.

    Yields a dict that fills in as the model runs (name → detached output). The hooks are removed on exit,
    also when the block raises.
    """
    modules = dict(model.named_modules())
    unknown = [n for n in layer_names if n not in modules]
    if unknown:
        raise UnknownName(f"no layer named {', '.join(unknown)}; convolutions are: {', '.join(conv_layers(model))}")
    captured: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in layer_names:

            def hook(_module, _inputs, output, name=name):
                captured[name] = output.detach().clone()  # a copy: an in-place ReLU after the layer would overwrite it

            handles.append(modules[name].register_forward_hook(hook))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def first_layer_output(model: nn.Module, y_delta: torch.Tensor) -> torch.Tensor:
    """The first convolution applied to ``y_delta``: (C, H, W). Every lecture architecture feeds its input straight
    to that layer (where a side is not a multiple of its pooling, crop by crop, and each crop's half that the result
    keeps sees the same values as here), so this is the hooked activation, computed without a hook, which a model
    shared between threads cannot safely carry."""
    conv = dict(model.named_modules())[first_conv(model)]
    with torch.inference_mode():
        return conv(y_delta.to(conv.weight.device, conv.weight.dtype))[0].float().cpu()


def activations(model: nn.Module, y_delta: torch.Tensor, layer: str | None = None) -> torch.Tensor:
    """The output (C, h, w) of ``layer`` (default: the first convolution) when the model sees ``y_delta``: at the
    input's H×W for a full-resolution layer, its share of it below (H/8 × W/8 for the ViT's patches, rounded up).
    Where a side is not a multiple of the network's pooling, the hooks see one pass over the input zero-padded to
    it (the forward itself would run crops; zeros make the first layer exactly what the crops compute), and the
    padded rows and columns are cut off again."""
    layer = layer or first_conv(model)
    device = next(model.parameters()).device
    h, w = y_delta.shape[-2:]
    multiple = getattr(model, "size_multiple", 1)
    padded = F.pad(y_delta, (0, (-w) % multiple, 0, (-h) % multiple))
    with capture_activations(model, [layer]) as captured, torch.inference_mode():
        model(padded.to(device))
    act = captured[layer][0]
    ah, aw = act.shape[-2:]
    H, W = padded.shape[-2:]
    return act[:, : math.ceil(h * ah / H), : math.ceil(w * aw / W)].float().cpu()


def scale_channels(act: torch.Tensor, scale: str = "shared") -> np.ndarray:
    """Channels (C, H, W) mapped to [0, 1]: with one min-max for all (``"shared"``: strengths comparable across
    channels) or each on its own (``"channel"``: every pattern visible)."""
    if scale not in ("shared", "channel"):
        raise ValueError(f"scale must be 'shared' or 'channel', got {scale!r}")
    a = act.float().cpu().numpy()
    if scale == "shared":
        lo, hi = a.min(), a.max()
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    lo = a.min(axis=(1, 2), keepdims=True)
    hi = a.max(axis=(1, 2), keepdims=True)
    return np.where(hi > lo, (a - lo) / np.where(hi > lo, hi - lo, 1), 0)


def activation_grid(act: torch.Tensor, max_channels: int = 16, scale: str = "shared", pad: int = 2) -> np.ndarray:
    """Channels of an activation (C, H, W) tiled in a near-square grey grid in [0, 1], as the lecture's 4×4 figure.

    ``scale="shared"`` maps all channels with one min-max (strengths comparable across channels);
    ``"channel"`` stretches each channel on its own (every pattern visible). Gaps are white.
    """
    a = scale_channels(act[:max_channels], scale)
    c, h, w = a.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    grid = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i in range(c):
        r, q = divmod(i, cols)
        grid[r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = a[i]
    return grid


def receptive_field(chain: list[tuple[int, int]]) -> int:
    """The lecture's formula for a plain chain of (kernel, stride) layers.

    ``r_0 = 1`` and ``r_l = r_{l-1} + (k_l − 1) · j_l`` where ``j_l`` is the product of the strides of the
    layers before ``l`` (the distance between neighbouring pixels of layer l−1, in input pixels). For the
    stride-1 chains the lecture applies it to, this is ``1 + Σ (k_l − 1)``: linear in depth.
    """
    r, jump = 1, 1
    for k, s in chain:
        r += (k - 1) * jump
        jump *= s
    return r


def formula_receptive_field(model: nn.Module) -> int | None:
    """The formula's answer for models that are plain chains (they expose ``spatial_chain()``), else ``None``."""
    chain = getattr(model, "spatial_chain", None)
    return receptive_field(chain()) if callable(chain) else None


def empirical_receptive_field(model: nn.Module, x: torch.Tensor | None = None, size: int = 64) -> np.ndarray:
    """|∂ x_rec[centre] / ∂ y_delta|: which input pixels the centre output pixel depends on, scaled to [0, 1].

    ``x`` is the input (1, 1, H, W) at which the gradient is taken (the app passes the current
    measurement); by default a uniform random image of ``size``². For residual models the identity path
    is removed, so the map shows what the network itself looks at.
    """
    device = next(model.parameters()).device
    if x is None:
        x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    x = x.detach().to(device, torch.float32).clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(x)
            h, w = out.shape[-2:]
            centre = out[0, 0, h // 2, w // 2] - x[0, 0, h // 2, w // 2] * float(getattr(model, "residual", False))
            (grad,) = torch.autograd.grad(centre, x)
    finally:
        model.train(was_training)
    g = grad[0, 0].abs().cpu().numpy()
    return g / g.max() if g.max() > 0 else g


def receptive_field_extent(rf_map: np.ndarray, threshold: float = 0.0) -> tuple[int, int]:
    """Height and width of the box holding every pixel of ``rf_map`` above ``threshold``."""
    rows = np.flatnonzero((rf_map > threshold).any(axis=1))
    cols = np.flatnonzero((rf_map > threshold).any(axis=0))
    if rows.size == 0:
        return 0, 0
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def count_flops(model: nn.Module, height: int = 256, width: int = 256) -> int:
    """Floating-point operations of one forward pass on a (1, 1, height, width) input (a multiply-add is 2), by
    torch's per-operator formulas. Not through ``FlopCounterMode``: its module tracker registers global module
    hooks, which reach every model of the process, and broke another request's backward pass in the app."""
    from torch.utils._python_dispatch import TorchDispatchMode  # with flop_counter: imports triton where installed
    from torch.utils.flop_counter import flop_registry

    class Counting(TorchDispatchMode):  # thread-local, like every dispatch mode: only this call's operators
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            formula = flop_registry.get(func._overloadpacket)
            if formula is None and func is not torch.ops.prim.device.default:
                with self:  # a composite operator (conv2d): counted through the operators it decomposes into
                    out = func.decompose(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
            out = func(*args, **kwargs)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    device = next(model.parameters()).device
    x = torch.zeros(1, 1, height, width, device=device)
    counter = Counting()
    with counter, torch.inference_mode():
        model(x)
    return int(counter.total)


def summary(model: nn.Module, height: int = 256, width: int = 256) -> dict[str, int | None]:
    """Parameters, FLOPs at height×width and the formula receptive field (None where it does not apply)."""
    return {
        "parameters": count_parameters(model),
        "flops": count_flops(model, height, width),
        "receptive_field": formula_receptive_field(model),
    }
