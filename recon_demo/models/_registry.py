"""The model registry: architectures register by name, and the UI, the CLIs and the tests follow it.

``create_model(name, **kwargs)`` builds one; ``list_models()`` names them; ``model_info(name)`` gives the
lecture's label, a display name and a one-line description. Architectures register with the
``register_model`` decorator on a thin factory function, so size variants are one line each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from recon_demo.errors import UnknownName

GROUPS = ("reconstruction", "loss_study", "ct", "beyond")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one architecture."""

    name: str  # registry name: "cnn", "unet", ...
    label: str  # the lecture's label in its results table: "CNN", "Residual UNet", ...
    display_name: str  # the class a student finds in the lecture: "SimpleCNN", "ResidualUNet", ...
    description: str  # one line for tooltips and --help
    group: str  # "reconstruction" (the lecture's seven), "loss_study", "ct" (FBP refiners) or "beyond" (knows K)
    factory: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, label: str, display_name: str, description: str, group: str = "reconstruction"):
    """Register ``factory(**kwargs) -> nn.Module`` under ``name``."""
    if group not in GROUPS:
        raise ValueError(f"unknown model group {group!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, label, display_name, description, group, factory)
        return factory

    return decorator


def list_models(group: str | None = "reconstruction") -> list[str]:
    """Registered names in registration order; ``group=None`` lists every model, the loss-study CNN too."""
    return [name for name, info in _REGISTRY.items() if group is None or info.group == group]


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; ``UnknownName`` (a ``ValueError``) with the known names when there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownName(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the architecture ``name`` with the lecture's defaults, overridden by ``kwargs``."""
    return model_info(name).factory(**kwargs)


def size_multiple(name: str, **kwargs) -> int:
    """What the sides of an input must be a multiple of for the network to run it in one pass (1: anything; others
    run as crops, ``_padding.at_multiple``), read from an instance on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return int(getattr(create_model(name, **kwargs), "size_multiple", 1))


def is_handed_operator(name: str) -> bool:
    """Whether the architecture ``name`` is handed the operator (group "beyond"); ``False`` for an unknown name."""
    return name in _REGISTRY and _REGISTRY[name].group == "beyond"


def knows_operator(model: nn.Module) -> bool:
    """Whether ``model`` is called as ``model(y_delta, operator)`` (the unrolled network) rather than ``model(y_delta)``
    (the lecture's end-to-end networks); a DistributedDataParallel wrapper is looked through."""
    return bool(getattr(getattr(model, "module", model), "knows_operator", False))


def count_parameters(model: nn.Module) -> int:
    """The lecture's parameter count: the sum of ``numel`` over trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
