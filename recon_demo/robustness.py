"""The lecture's warning, measured: how reconstructions degrade when the noise level or the operator moves
away from what a model was trained for.

``sweep`` changes one parameter of a setting (``noise``, ``angle`` or ``kernel_size``) over a list of values
and reports each model's PSNR at each value. Networks see the measurement and nothing else. The classical
baselines are given the setting's own (nominal) kernel while the measurement is made with the changed one,
so an operator mismatch hurts them too: neither side is told the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recon_demo.baselines import BASELINES
from recon_demo.lab import Lab, Setting, SettingError, choice_label
from recon_demo.metrics import psnr
from recon_demo.progress import Report, no_progress

PARAMETERS = {
    "noise": (0.0, 0.005, 0.01, 0.02, 0.05, 0.1),
    "angle": (0.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 90.0),
    "kernel_size": (3, 5, 7, 9, 11, 13, 15),
}
MAX_POINTS = 12  # values in one sweep
MAX_MODELS = 6


@dataclass
class SweepPoint:
    model: str  # display label
    value: float  # the swept parameter's value
    psnr: float | None  # None where the model has no weights


def sweep(
    lab: Lab, setting: Setting, parameter: str, values: tuple[float, ...] | None = None, regimes: tuple[str, ...] | None = None,
    report: Report = no_progress,
) -> list[SweepPoint]:
    """PSNR of each of the setting's models as ``parameter`` takes each of ``values`` (default: ``PARAMETERS``).

    Networks run with the weights of each of ``regimes`` (default: the setting's) and are labelled
    "UNet (course)"; baselines run once. ``report`` hears of each value done.
    """
    if parameter not in PARAMETERS:
        raise SettingError(f"sweep one of {', '.join(PARAMETERS)}, got {parameter!r}")
    values = tuple(values or PARAMETERS[parameter])
    if not 1 <= len(values) <= MAX_POINTS:
        raise SettingError(f"a sweep takes 1 to {MAX_POINTS} values, got {len(values)}")
    nominal = setting.validated()
    if not nominal.models or len(nominal.models) > MAX_MODELS:
        raise SettingError(f"choose 1 to {MAX_MODELS} models for a sweep, got {len(nominal.models)}")
    networks = [m for m in nominal.models if m not in BASELINES]
    baselines = [m for m in nominal.models if m in BASELINES]
    nominal_kernel = nominal.operator().kernel().numpy()
    points: list[SweepPoint] = []
    for i, value in enumerate(values):
        report(i, len(values), f"{parameter.replace('_', ' ')} = {value:g}")
        moved = replace(nominal, **{parameter: value}).validated()
        x_true = lab.x_true(moved.image)[0, 0].numpy()
        y_delta = lab.measurement(moved)
        for regime in regimes or (moved.regime,):
            for r in lab.engine.reconstruct(y_delta, networks, regime=regime):
                score = psnr(r.image, x_true) if r.image is not None else None
                points.append(SweepPoint(f"{r.label} ({regime})", float(value), score))
        for name in baselines:
            x_rec = BASELINES[name](y_delta[0, 0].numpy(), nominal_kernel)
            points.append(SweepPoint(choice_label(name), float(value), psnr(x_rec, x_true)))
    report(len(values), len(values), "done")
    return points


def as_rows(points: list[SweepPoint]) -> list[tuple[float, float, str]]:
    """(value, PSNR, model) for plotting; models without weights are left out."""
    return [(p.value, p.psnr, p.model) for p in points if p.psnr is not None and np.isfinite(p.psnr)]
