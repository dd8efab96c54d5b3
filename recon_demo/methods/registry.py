"""The one list of methods a person can pick, per task, with each one's label and whether it is handed the operator.

The deblurring choices are the lecture's seven networks, then the network that knows ``K`` (the registry's "beyond"
group), then the classical baselines; CT's are the refiners of the FBP (the "ct" group), the networks handed the
Radon transform, then FBP and SIRT. The app's selectors, the evaluate CLI's labels, the captions ("handed the exact
kernel") and the robustness sweep all ask here.
"""

from __future__ import annotations

from recon_demo import models
from recon_demo.methods.blur import BASELINES
from recon_demo.methods.ct import CT_BASELINES, ct_models

TASKS = ("deblur", "ct")
BLUR_CHOICES = ("wiener", "rl", "tv")  # the classical blur methods offered beside the networks ("input" is the measurement)
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
