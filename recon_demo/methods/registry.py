"""The one list of methods a person can pick, per task, with each one's label and whether it is handed the operator,
and the one place that builds them (``build``).

The deblurring choices are the lecture's seven networks, then the network that knows ``K`` (the registry's "beyond"
group), then the classical baselines; CT's are the refiners of the FBP (the "ct" group), the networks handed the
Radon transform, then FBP and SIRT. The app's selectors, the evaluate CLI's labels, the captions ("handed the exact
kernel") and the robustness sweep all ask here; the engine, evaluate (both tasks), the CT lab, restore and bench build
their methods with ``build``. A built method says itself whether it is a network (``is_network``) and whether it is
handed the operator (``handed_operator``): ``methods.base``.
"""

from __future__ import annotations

from pathlib import Path

from recon_demo import models
from recon_demo.checkpoints import CT_ANY, CheckpointError, ct_regime
from recon_demo.errors import UnknownName
from recon_demo.methods.base import CTClassical, Deconvolution, Engine, FBPNetwork, Unavailable, network_method
from recon_demo.methods.blur import BASELINES
from recon_demo.methods.ct import CT_BASELINES, LECTURE_ANGLES, ct_models

TASKS = ("deblur", "ct")
BLUR_CHOICES = tuple(name for name in BASELINES if name != "input")  # offered beside the networks ("input": the measurement)
# what restores a picture that is already blurred by default (``restore``, ``/restore``, ``evaluate --blind``): the
# network handed the estimated K and TV handed the same, with the general UNet that must guess it
RESTORE_METHODS = ("unrolled", "unet", "tv")


def networks(task: str = "deblur") -> list[str]:
    """The networks of ``task``: for deblurring the lecture's seven, then those handed ``K``; for CT the FBP
    refiners, then those handed the Radon transform."""
    if task == "ct":
        return ct_models()
    return [*models.list_models(), *models.list_models("beyond")]


def baselines(task: str = "deblur") -> list[str]:
    """The classical methods of ``task`` a person may pick."""
    return list(CT_BASELINES) if task == "ct" else list(BLUR_CHOICES)


def choices(task: str = "deblur") -> list[str]:
    """What a selector offers for ``task``: ``networks`` then ``baselines``."""
    return networks(task) + baselines(task)


def is_handed_operator(name: str) -> bool:
    """Whether method ``name`` is given the operator and uses it: a classical method (not the bare measurement,
    "input") or a network of the registry's "beyond" group (the unrolled network). The lecture's end-to-end
    networks are not: they must infer the blur."""
    if name in BASELINES:
        return name != "input"
    return name in CT_BASELINES or models.is_handed_operator(name)


def label(name: str) -> str:
    """The lecture's words for a method: a baseline's label or a network's."""
    if name in BASELINES:
        return BASELINES[name].label
    if name in CT_BASELINES:
        return CT_BASELINES[name].label
    return models.model_info(name).label


def classical(task: str = "deblur") -> dict:
    """The classical methods of ``task`` by name (the measurement itself, "input", among the blur's)."""
    return CT_BASELINES if task == "ct" else BASELINES


def build(names, engine: Engine, task: str = "deblur", *, regime: str = "course",
          checkpoints: dict[str, str | Path | None] | None = None, architectures: dict[str, str] | None = None,
          filter: str = "ramp", angles: int = LECTURE_ANGLES) -> list:  # fmt: skip
    """The methods ``names`` of ``task``, in that order, in the one method shape (``methods.base``).

    A network is loaded by ``engine`` with the weights at ``checkpoints[name]`` or its shipped ones of ``regime`` (for
    CT: those of ``angles`` for a refiner of the FBP, the ``ct-any`` ones for a network handed the Radon transform), and
    is ``Unavailable`` (saying why) when there are none; ``architectures`` maps a name to the registry name it is built
    as (a student's checkpoint ``own:cnn:…`` is a ``cnn``). A classical method is handed the operator; FBP takes the
    window ``filter``, and so does the FBP a refiner starts from. ``UnknownName`` says what there is."""
    checkpoints, architectures = checkpoints or {}, architectures or {}
    table, out = classical(task), []
    for name in names:
        if name in table:
            baseline = table[name]
            out.append(CTClassical(name, baseline.label, baseline, filter) if task == "ct" else Deconvolution(name, baseline.label, baseline))
            continue
        arch = architectures.get(name, name)
        if arch not in networks(task) and not (task == "deblur" and arch in models.list_models("loss_study")):
            raise UnknownName(f"unknown model or method {name!r} for {task}; choose from {', '.join([*networks(task), *table])}")
        caption = label(arch) + (" (your checkpoint)" if arch != name else "")
        own_regime = regime if task != "ct" else CT_ANY if models.is_handed_operator(arch) else ct_regime(angles)
        try:
            model = engine.model(arch, checkpoints.get(name), own_regime)
        except CheckpointError as err:
            out.append(Unavailable(name, caption, str(err)))
            continue
        refines_fbp = task == "ct" and not models.is_handed_operator(arch)
        out.append(FBPNetwork(name, caption, engine, model, filter) if refines_fbp else network_method(name, caption, engine, model))
    return out
