"""One shape for every reconstruction method, and one function that runs, times and scores a list of them.

A method is a callable ``method(y_delta, operator) -> x_rec``: ``y_delta`` a measurement (1, 1, …), ``operator``
the forward operator of the task (the blur ``physics.blur.Blur`` or the Radon transform ``physics.ct.Radon``),
``x_rec`` the image (1, 1, H, W) in [0, 1] on the CPU. Every method is handed the operator, so a method that
uses it (a classical baseline, a network that knows ``K``) and one that does not (the lecture's end-to-end
networks) have the same shape; each says itself whether it is a network (``is_network``) and whether it uses the
operator (``handed_operator``):

- ``Network``: an end-to-end network; it never looks at the operator (the lecture's point).
- ``Deconvolution``: a classical blur baseline (Wiener, Richardson-Lucy, TV), given the operator's kernel.
- ``CTClassical``: FBP or SIRT, given the Radon transform.
- ``FBPNetwork``: a CT network refining the filtered back-projection it computes with the operator.
- ``Unrolled``: beyond the lecture, a network that is handed the operator and uses ``K`` and ``Kᵀ`` inside.
- ``Unavailable``: a network without weights here, and why.

``methods.registry.build`` makes them from names. ``run_methods`` runs a list of them on one measurement: each
one's image, time and metrics (against ``x_true``, with data consistency against the operator), reporting each
method done. Evaluate (both tasks, and ``--blind``), the engine (and so the lab), the CT lab, ``restore`` and the
robustness sweep all call it, so a new method appears everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from recon_demo.metrics import compute_metrics, lpips_distances
from recon_demo.pretrained import PretrainedUnavailable
from recon_demo.progress import Report, no_progress

Method = Callable[[torch.Tensor, Any], torch.Tensor]  # (y_delta, operator) -> x_rec


class Engine(Protocol):
    """What a network's method needs of whoever runs it (``serving.engine.Engine`` is one): its device, a call of a
    network on a measurement, and the precision a network runs in. Methods are handed it; they never import it."""

    device: torch.device

    def model(self, name: str, checkpoint: Any = None, regime: str = "course") -> torch.nn.Module: ...  # loaded weights

    def infer(self, model: torch.nn.Module, y_delta: torch.Tensor, operator: Any = None) -> torch.Tensor: ...

    def precision(self, model: torch.nn.Module) -> AbstractContextManager: ...

    def precision_name(self, model: torch.nn.Module) -> str: ...  # "bf16" or "fp32"


@dataclass
class Reconstruction:
    """One method's answer to a measurement."""

    name: str  # registry or baseline name
    label: str  # the lecture's label
    image: np.ndarray | None  # (H, W) float32 in [0, 1]; None when the model could not run
    ms: float = 0.0  # wall time of the method on this measurement, milliseconds
    metrics: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None  # why there is no image, in words
    activation: torch.Tensor | None = None  # a network's first-layer output (C, H, W), when asked for
    precision: str | None = None  # a network's: "fp32" or "bf16" (``Engine.runs_bf16``); None for a classical method


@dataclass
class Named:
    """What every method has: its name and the lecture's label, and whether it is a network and uses the operator."""

    is_network: ClassVar[bool] = False  # a trained network (warmed up once per shape, timed in its precision)
    handed_operator: ClassVar[bool] = False  # whether it is given the operator and uses it

    name: str  # registry or baseline name
    label: str  # the lecture's words for it


@dataclass
class Network(Named):
    """An end-to-end network: ``model(y_delta)`` on the engine's device. The operator is not used: the network
    learned one operator (or a range of them) and must guess which."""

    is_network = True

    engine: Engine
    model: torch.nn.Module

    def __call__(self, y_delta: torch.Tensor, operator: Any = None) -> torch.Tensor:
        return self.engine.infer(self.model, y_delta)

    def first_layer(self, y_delta: torch.Tensor, operator: Any = None) -> torch.Tensor:
        """What the first convolution sees: its output (C, H, W) on ``y_delta``."""
        from recon_demo.activations import first_layer_output

        return first_layer_output(self.model, y_delta)


@dataclass
class Unrolled(Named):
    """A network that knows the operator (``models.unrolled``): ``model(y_delta, operator)`` on the engine's device,
    so one checkpoint serves every blur it is handed."""

    is_network = True
    handed_operator = True

    engine: Engine
    model: torch.nn.Module

    def __call__(self, y_delta: torch.Tensor, operator: Any) -> torch.Tensor:
        if operator is None:
            raise ValueError(f"{self.label} needs the operator")
        return self.engine.infer(self.model, y_delta, operator)

    def first_layer(self, y_delta: torch.Tensor, operator: Any) -> torch.Tensor:
        """What the first convolution sees: the first denoiser's first layer on x_0, (C, H, W)."""
        from recon_demo.activations import first_layer_output

        with torch.inference_mode(), self.engine.precision(self.model):  # as the result was computed
            x_0 = self.model.first_estimate(y_delta.to(self.engine.device, torch.float32), operator)
            return first_layer_output(self.model.denoisers[0], x_0)


def network_method(name: str, label: str, engine: Engine, model: torch.nn.Module) -> Network | Unrolled:
    """The method of a loaded network: ``Unrolled`` when it is called with the operator, else ``Network``."""
    from recon_demo.models import knows_operator

    return (Unrolled if knows_operator(model) else Network)(name, label, engine, model)


@dataclass
class Deconvolution(Named):
    """A classical blur baseline, handed the operator's kernel (``methods.blur.Baseline``: numpy in, numpy out)."""


    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    @property
    def handed_operator(self) -> bool:
        """Every classical blur method uses the kernel, but the measurement itself ("input")."""
        return self.name != "input"

    def __call__(self, y_delta: torch.Tensor, operator: Any) -> torch.Tensor:
        if operator is None:
            raise ValueError("classical baselines need the operator")
        return self._run(y_delta, operator, scene=False)

    @property
    def has_scene(self) -> bool:
        """Whether the baseline has a variant for a scene that goes on past the frame (``methods.edges``)."""
        return getattr(self.fn, "scene", None) is not None

    def on_scene(self, y_delta: torch.Tensor, operator: Any) -> torch.Tensor:
        """The baseline's variant for a scene past the frame, the measurement (1, 1, H, W) its frame."""
        return self._run(y_delta, operator, scene=True)

    def _run(self, y_delta: torch.Tensor, operator: Any, scene: bool) -> torch.Tensor:
        y = y_delta[0, 0].detach().cpu().numpy()
        image = self.fn(y, operator.kernel.numpy(), scene=True) if scene else self.fn(y, operator.kernel.numpy())
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]


@dataclass
class CTClassical(Named):
    """FBP or SIRT (``ct_baselines.CTBaseline``), handed the Radon transform; ``filter`` is FBP's window."""

    handed_operator = True

    fn: Callable[..., torch.Tensor]
    filter: str = "ramp"

    def __call__(self, y_delta: torch.Tensor, operator: Any) -> torch.Tensor:
        return self.fn(operator, y_delta, self.filter)


@dataclass
class FBPNetwork(Named):
    """A CT network: it refines the filtered back-projection of the sinogram ("first a crude reconstruction,
    then a learned refinement"); the FBP's time is part of its own."""

    is_network = True

    engine: Engine
    model: torch.nn.Module
    filter: str = "ramp"

    def __call__(self, y_delta: torch.Tensor, operator: Any) -> torch.Tensor:
        return self.engine.infer(self.model, operator.fbp(y_delta, self.filter))


@dataclass
class Unavailable(Named):
    """A method that cannot run here (a network without weights): ``run_methods`` reports why, runs the rest."""


    error: str


def run_methods(
    methods: list,
    y_delta: torch.Tensor,
    operator: Any,
    x_true: torch.Tensor | None = None,
    *,
    with_lpips: bool = False,
    lpips_bf16: bool = False,
    with_dc: bool = True,
    warm: set | None = None,
    with_activations: bool = False,
    wrap: Callable[[Any], Method] | None = None,
    report: Report = no_progress,
) -> list[Reconstruction]:
    """Run each method on one measurement: image, milliseconds and metrics (against ``x_true`` when given; data
    consistency against ``operator`` when ``with_dc``). With ``warm``, a network's first call on a new input
    shape runs once untimed (the backend picks its kernels then) and ``warm`` remembers the (name, shape).
    ``with_activations`` keeps each network's first-layer output; ``lpips_bf16`` computes LPIPS in bf16 (the app's engine, where bf16 is native). ``report`` hears of each method done.

    ``wrap(method)``, when given, runs in the method's place (``methods.edges.RealEdges``: a photo's real edges); the
    warm-up, the precision and the activations stay the method's own. A measurement of C > 1 planes (C, 1, H, W), a
    colour picture's channels, runs plane by plane: the image is their stack (H, W, C) and the time theirs together;
    the caller scores it (no ``x_true``, ``with_dc=False``, no activations)."""
    planes = [y_delta] if y_delta.shape[0] == 1 else list(y_delta.split(1))  # each (1, 1, …)
    if len(planes) > 1 and (x_true is not None or with_dc or with_activations):
        raise ValueError("a measurement of several planes is scored by its caller: pass no x_true, with_dc=False "
                         "and no activations")  # fmt: skip
    results = []
    for i, method in enumerate(methods, start=1):
        if isinstance(method, Unavailable):
            results.append(Reconstruction(method.name, method.label, None, error=method.error))
            report(i, len(methods), method.label)
            continue
        run = method if wrap is None else wrap(method)
        if warm is not None and method.is_network and (method.name, tuple(planes[0].shape)) not in warm:
            run(planes[0], operator)
            warm.add((method.name, tuple(planes[0].shape)))
        start = time.perf_counter()
        x_rec = [run(plane, operator) for plane in planes]
        ms = (time.perf_counter() - start) * 1000
        planes_rec = [x[0, 0].detach().cpu().numpy() for x in x_rec]
        image = planes_rec[0] if len(planes) == 1 else np.stack(planes_rec, -1)  # (H, W) or (H, W, C)
        metrics = compute_metrics(image, x_true, y_delta=y_delta if with_dc else None, operator=operator if with_dc else None)
        activation = method.first_layer(y_delta, operator) if with_activations and hasattr(method, "first_layer") else None
        precision = method.engine.precision_name(method.model) if method.is_network else None
        results.append(Reconstruction(method.name, method.label, image, ms, metrics, activation=activation, precision=precision))
        report(i, len(methods), method.label)
    if with_lpips and x_true is not None:
        add_lpips([r for r in results if r.image is not None], x_true, lpips_bf16)
    return results


def add_lpips(results: list[Reconstruction], x_true: torch.Tensor, bf16: bool = False) -> None:
    """Every result's LPIPS in one batch (``metrics.lpips_distances``); left ``None`` where LPIPS is unavailable."""
    try:
        distances = lpips_distances([r.image for r in results], x_true, bf16)
    except PretrainedUnavailable:
        return
    for r, d in zip(results, distances):
        r.metrics["lpips"] = d
