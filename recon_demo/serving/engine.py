"""The inference engine: one measurement, several models, images with their metrics and timings.

The device comes from ``RECON_DEVICE`` when set, else cuda, then mps, then the CPU. Each model is built
and loaded once per (name, weights, device) and kept in an explicit cache, in eval mode; inference runs
under ``torch.inference_mode()``. Classical baselines run through the same call, so the UI and the CLIs
compare networks and baselines in one table.
"""

from __future__ import annotations

import os
import threading
import time
import types
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
import torch.nn as nn

from recon_demo.checkpoints import Manifest, ManifestEntry, load_checkpoint
from recon_demo.errors import UnknownName
from recon_demo.methods import registry
from recon_demo.methods.base import Network, Reconstruction, Unavailable, Unrolled, run_methods
from recon_demo.models import knows_operator, list_models, model_info
from recon_demo.physics.blur import Blur
from recon_demo.progress import Report, no_progress
from recon_demo.serving.batching import MicroBatcher
from recon_demo.serving.runtime import native_bf16


def select_device(requested: str | None = None) -> torch.device:
    """``requested``, else ``RECON_DEVICE``, else the best available of cuda, mps and cpu."""
    name = requested or os.environ.get("RECON_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} was asked for but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


PRECISIONS = ("auto", "fp32", "bf16")  # Engine(precision=…), evaluate --precision: see Engine.runs_bf16
BF16_MAX_PSNR_CHANGE_DB = 0.05  # a shipped checkpoint runs in bf16 only if its held-out PSNR moves less than this


def bf16_checked(entry: ManifestEntry | None) -> bool:
    """Whether a shipped checkpoint may run in bf16: its manifest records the held-out PSNR change bf16 causes
    (``evaluate --bf16-check``), within ``BF16_MAX_PSNR_CHANGE_DB``."""
    change = (entry.bf16 or {}).get("psnr_change_db") if entry is not None else None
    return isinstance(change, (int, float)) and abs(change) <= BF16_MAX_PSNR_CHANGE_DB


def keep_float32(model: nn.Module) -> nn.Module:
    """Run the submodules ``model.float32_layers`` names in float32 even under bf16 autocast (their inputs cast up).
    The UNet family names its output convolution: with it in bf16, a course UNet lost 0.085 dB of held-out PSNR;
    with that one 1×1 layer (0.05 % of its FLOPs) in float32, 0.021 dB (bf16 emulated on a 2-core AVX2 CPU). The
    module tree and its names stay as they are (Inspect's layers, hooks); only the forward is wrapped, once, as a
    method of the layer itself (a deep copy's layer runs its own weights)."""
    for name in getattr(model, "float32_layers", ()):
        layer = model.get_submodule(name)
        if getattr(layer.forward, "__func__", None) is not _float32_forward:
            layer.forward = types.MethodType(_float32_forward, layer)
    return model


def _float32_forward(layer: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    with torch.autocast(inputs[0].device.type, enabled=False):
        return type(layer).forward(layer, *(x.float() for x in inputs))


# Convolutions run in channels-last (NHWC) memory layout: measured on this 2-core CPU, all seven architectures
# at 256² went from 0.75 to 0.55 s (`python -m recon_demo bench`), with outputs equal to 2e-7.
MEMORY_FORMAT = torch.channels_last
MAX_FILE_MODELS = 16  # models loaded from checkpoint files (uploads) kept at once; shipped ones always stay


class Engine:
    """Builds, caches and runs the lecture's models and the classical baselines."""

    def __init__(self, device: str | torch.device | None = None, manifest: Manifest | None = None, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.manifest = manifest if manifest is not None else Manifest.load()
        self._models: OrderedDict[tuple[str, str, str], nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.batcher = MicroBatcher(lambda model, x: self.forward(model, x)[0])
        self.precision_mode = precision
        self.bf16 = precision == "bf16" or (precision == "auto" and native_bf16(self.device.type)[0])  # may any network?

    def model(self, name: str, checkpoint: str | Path | None = None, regime: str = "course") -> nn.Module:
        """The model ``name`` with the weights at ``checkpoint``, or its shipped weights of ``regime``.

        Raises ``CheckpointError`` when there are no weights to load (an untrained network would only
        show noise) and ``UnknownName`` for an unknown name.
        """
        model_info(name)  # unknown names fail here, with the list of known ones
        source = f"file:{Path(checkpoint).resolve()}" if checkpoint else f"regime:{regime}"
        key = (name, source, str(self.device))
        with self._lock:
            if key not in self._models:
                model = load_checkpoint(name, checkpoint) if checkpoint else self.manifest.load_model(name, regime)
                self._models[key] = self.prepare(model)
                # a shipped checkpoint within BF16_MAX_PSNR_CHANGE_DB; an attribute, so that a deep copy keeps it
                model.bf16_checked = not checkpoint and bf16_checked(self.manifest.find(name, regime))
                uploaded = [k for k in self._models if k[1].startswith("file:")]
                for old in uploaded[: max(0, len(uploaded) - MAX_FILE_MODELS)]:  # the oldest files' models go first
                    del self._models[old]
            self._models.move_to_end(key)
            return self._models[key]

    def prepare(self, model: nn.Module) -> nn.Module:
        """A model in the engine's form: on its device, in eval mode, with channels-last weights, and the layers it
        names in ``float32_layers`` kept in float32 under bf16 autocast (``keep_float32``)."""
        return keep_float32(model.to(self.device).eval().to(memory_format=MEMORY_FORMAT))

    def runs_bf16(self, model: nn.Module) -> bool:
        """Whether ``model`` runs under bf16 autocast here. ``precision="auto"`` (the app, the API): a shipped checkpoint
        whose held-out PSNR moves by at most ``BF16_MAX_PSNR_CHANGE_DB`` in bf16 (``bf16_checked``), where bf16 is native
        (a CPU with AVX512-BF16 or AMX, a GPU from Ampere on; ``RECON_CPU_BF16`` overrides the CPU's probe); float32
        elsewhere, and always for a checkpoint of one's own. ``"fp32"`` (``evaluate``'s default: the lecture's table
        exact): never. ``"bf16"``: every network, even where bf16 is emulated (many times slower; to measure the change)."""
        if self.precision_mode == "bf16":
            return True
        return self.bf16 and getattr(model, "bf16_checked", False)

    def precision_name(self, model: nn.Module) -> str:
        """"bf16" or "fp32": how ``model`` runs here (``runs_bf16``)."""
        return "bf16" if self.runs_bf16(model) else "fp32"

    def precision(self, model: nn.Module) -> AbstractContextManager:
        """The context ``model`` runs under: bf16 autocast on its device where ``runs_bf16``, else none (float32)."""
        if self.runs_bf16(model):
            return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)
        return nullcontext()

    def available(self, regime: str = "course") -> dict[str, str | None]:
        """For each lecture architecture: ``None`` when shipped weights exist, else the reason there are none."""
        return {name: None if self.manifest.find(name, regime) else f"no {regime} weights yet" for name in list_models()}

    def forward(self, model: nn.Module, y_delta: torch.Tensor, operator=None) -> tuple[torch.Tensor, float]:
        """``model(y_delta)`` on the engine's device (in its ``precision``), clamped to [0, 1]; returns (N, 1, H, W)
        float32 on the CPU and ms. A network that knows the operator is called as ``model(y_delta, operator)``."""
        x = y_delta.to(self.device, torch.float32).contiguous(memory_format=MEMORY_FORMAT)
        with torch.inference_mode(), self.precision(model):
            _synchronize(self.device)
            start = time.perf_counter()
            out = (model(x, operator) if knows_operator(model) else model(x)).contiguous()
            _synchronize(self.device)
            ms = (time.perf_counter() - start) * 1000
        return out.clamp(0, 1).float().cpu(), ms

    def infer(self, model: nn.Module, y_delta: torch.Tensor, operator=None) -> torch.Tensor:
        """``forward``'s image, in one batch with concurrent calls of the same model and shape (``batching``); a
        network handed an operator runs alone (its callers' operators differ)."""
        if operator is not None:
            return self.forward(model, y_delta, operator)[0]
        return self.batcher(model, y_delta.to(torch.float32))

    def network(self, name: str, checkpoint: str | Path | None = None, regime: str = "course",
                architecture: str | None = None) -> Network | Unrolled | Unavailable:  # fmt: skip
        """The method of a network: ``name`` built as ``architecture`` (default ``name``) with the weights at
        ``checkpoint`` or its shipped ones; ``Unavailable`` (saying why) when there are none (``registry.build``)."""
        return registry.build([name], self, regime=regime, checkpoints={name: checkpoint},
                              architectures={name: architecture} if architecture else None)[0]  # fmt: skip

    def methods(self, models: list[str] = (), baselines: list[str] = (), *, checkpoints: dict[str, str | Path] | None = None,
                architectures: dict[str, str] | None = None, regime: str = "course") -> list:  # fmt: skip
        """The methods for named networks and classical blur baselines, in that order (``registry.build``)."""
        for name in baselines:
            if name not in registry.classical():
                raise UnknownName(f"unknown baseline {name!r}; known baselines: {', '.join(registry.classical())}")
        return registry.build([*models, *baselines], self, regime=regime, checkpoints=checkpoints, architectures=architectures)

    def reconstruct(
        self,
        y_delta: torch.Tensor,
        models: list[str] = (),
        *,
        baselines: list[str] = (),
        operator: Blur | None = None,
        x_true: torch.Tensor | None = None,
        checkpoints: dict[str, str | Path] | None = None,
        architectures: dict[str, str] | None = None,
        regime: str = "course",
        with_lpips: bool = False,
        with_activations: bool = False,
        report: Report = no_progress,
    ) -> list[Reconstruction]:
        """Reconstruct one measurement (1, 1, H, W) with every named model and baseline (``run_methods``).

        Metrics against ``x_true`` are filled in when it is given, data consistency when ``operator`` is.
        A model without weights yields a ``Reconstruction`` whose ``error`` says so; the others still run.
        Baselines need the ``operator`` (they are given its kernel). ``architectures`` maps a result name to the
        registry name it is built as (a student's checkpoint ``own:cnn:…`` is a ``cnn``); by default they are equal.
        ``with_activations`` keeps each network's first-layer output; ``report`` hears of each method done.
        """
        if baselines and operator is None:
            raise ValueError("classical baselines need the operator")
        methods = self.methods(models, baselines, checkpoints=checkpoints, architectures=architectures, regime=regime)
        return run_methods(methods, y_delta, operator, x_true, with_lpips=with_lpips, lpips_bf16=self.bf16 and self.device.type == "cpu",
                           with_activations=with_activations,
                           report=report)  # fmt: skip
