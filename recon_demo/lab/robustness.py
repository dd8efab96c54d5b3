"""The lecture's warning, measured: how reconstructions degrade when the noise level or the operator moves
away from what a model was trained for.

``sweep`` changes one parameter of a setting (``noise``, ``angle`` or ``kernel_size``) over a list of values
and reports each model's PSNR at each value. End-to-end networks see the measurement and nothing else. The
methods that are handed ``K`` (the classical baselines and the unrolled network) are given either the setting's
own (nominal) kernel while the measurement is made with the changed one, so an operator mismatch hurts them too
(neither side is told the truth), or, with ``told=True``, the changed kernel itself: the blur was measured, and a
method that uses it should hold up where the end-to-end networks fall.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recon_demo.lab.blur import Lab
from recon_demo.lab.setting import Setting, SettingError, architecture_of, choice_label
from recon_demo.methods.registry import is_handed_operator
from recon_demo.progress import Report, no_progress

PARAMETERS = {
    "noise": (0.0, 0.005, 0.01, 0.02, 0.05, 0.1),
    "angle": (0.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 90.0),
    "kernel_size": (3, 5, 7, 9, 11, 13, 15),
}
MAX_POINTS = 12  # values in one sweep
MEASUREMENT = "Measurement (no reconstruction)"
MAX_MODELS = 6


@dataclass
class SweepPoint:
    model: str  # display label
    value: float  # the swept parameter's value
    psnr: float | None  # None where the model has no weights


def sweep(
    lab: Lab, setting: Setting, parameter: str, values: tuple[float, ...] | None = None, regimes: tuple[str, ...] | None = None,
    report: Report = no_progress, told: bool = False,
) -> list[SweepPoint]:
    """PSNR of each of the setting's models as ``parameter`` takes each of ``values`` (default: ``PARAMETERS``).

    End-to-end networks run with the weights of each of ``regimes`` (default: the setting's) and are labelled
    "UNet (course)"; the methods handed ``K`` run once, with the nominal kernel or (``told``) the true one; the
    measurement's own PSNR is a series too (``MEASUREMENT``). ``report`` hears of each value done.
    """
    if parameter not in PARAMETERS:
        raise SettingError(f"sweep one of {', '.join(PARAMETERS)}, got {parameter!r}")
    values = tuple(values or PARAMETERS[parameter])
    if not 1 <= len(values) <= MAX_POINTS:
        raise SettingError(f"a sweep takes 1 to {MAX_POINTS} values, got {len(values)}")
    nominal = setting.validated()
    if not nominal.models or len(nominal.models) > MAX_MODELS:
        raise SettingError(f"choose 1 to {MAX_MODELS} models for a sweep, got {len(nominal.models)}")
    given_k = tuple(m for m in nominal.models if is_handed_operator(architecture_of(m)))
    networks = tuple(m for m in nominal.models if m not in given_k)
    assumed = None if told else nominal.operator  # what the methods using K are handed (None: the true operator)
    points: list[SweepPoint] = []
    for i, value in enumerate(values):
        report(i, len(values), f"{parameter.replace('_', ' ')} = {value:g}")
        moved = nominal.moved(**{parameter: value}).validated()
        # through the lab: its caches serve a sweep run twice, or a point the Reconstruct tab has shown
        for regime in regimes or (moved.regime,):
            if networks:
                result = lab.run(replace(moved, models=networks, regime=regime), with_lpips=False, max_channels=0)
                points += [SweepPoint(f"{r.label} ({regime})", float(value), r.metrics.get("psnr") if r.image is not None else None)
                           for r in result.reconstructions]  # fmt: skip
        if given_k:
            result = lab.run(replace(moved, models=given_k), with_lpips=False, max_channels=0, assumed=assumed)
            points += [SweepPoint(choice_label(r.name), float(value), r.metrics.get("psnr") if r.image is not None else None)
                       for r in result.reconstructions]  # fmt: skip
        # the measurement itself: the line a method must stay above to be worth running
        points.append(SweepPoint(MEASUREMENT, float(value), result.measurement_metrics["psnr"]))
    report(len(values), len(values), "done")
    return points


def as_rows(points: list[SweepPoint]) -> list[tuple[float, float, str]]:
    """(value, PSNR, model) for plotting; models without weights are left out."""
    return [(p.value, p.psnr, p.model) for p in points if p.psnr is not None and np.isfinite(p.psnr)]


FIGURE_PX = (1200, 560)  # the sweep's figure, pixels
FIGURE_TEXT_PT = 14  # its text at 100 dpi: 19 px in the figure's own pixels, 14 px or more where the page shrinks it


def sweep_positions(values: list[float], current: float) -> tuple[list[float], float, bool]:
    """Where the sweep's values and the current setting sit on the figure's x axis: the values evenly spaced (the
    noise levels 0, 0.005, …, 0.1 would crowd at 0 on a linear axis), the current one interpolated between its
    neighbours; and whether it lies inside the swept range (outside, it is drawn at the nearest end)."""
    ordered = sorted(set(values))
    inside = ordered[0] <= current <= ordered[-1]
    return [float(ordered.index(v)) for v in values], float(np.interp(current, ordered, range(len(ordered)))), inside


def save_sweep_figure(points: list[SweepPoint], parameter: str, current: float, x_title: str, colours: dict[str, str],
                      path, marker: str) -> str:  # fmt: skip
    """``sweep_figure`` written to ``path`` (PNG, ``FIGURE_PX``); returns the path as a string."""
    import matplotlib.pyplot as plt

    fig = sweep_figure(points, parameter, current, x_title, colours, marker)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def sweep_figure(points: list[SweepPoint], parameter: str, current: float, x_title: str, colours: dict[str, str],
                 marker: str):  # fmt: skip
    """The sweep as a matplotlib figure of ``FIGURE_PX``: each model's PSNR against the swept values (one tick per
    value), and a vertical line (``marker``, in its colour) at the current setting, whatever parameter is swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = as_rows(points)
    values = sorted({v for v, _, _ in rows}) or list(PARAMETERS[parameter])
    fig, ax = plt.subplots(figsize=(FIGURE_PX[0] / 100, FIGURE_PX[1] / 100), dpi=100)
    positions, where, inside = sweep_positions(values, current)
    at = dict(zip(values, positions))
    for model in dict.fromkeys(m for _, _, m in rows):
        mine = sorted((v, p) for v, p, m in rows if m == model)
        ax.plot([at[v] for v, _ in mine], [p for _, p in mine], "o-", lw=2.4, ms=6, color=colours.get(model), label=model)
    ax.axvline(where, color=colours.get(marker, "#222222"), lw=2.4, ls="--", label=marker)
    if not inside:
        ax.annotate("your setting is outside the sweep", (where, 0.02), xycoords=("data", "axes fraction"),
                    fontsize=FIGURE_TEXT_PT, ha="left" if where == 0 else "right")  # fmt: skip
    ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
    ax.set_xlabel(x_title, fontsize=FIGURE_TEXT_PT)
    ax.set_ylabel("PSNR (dB)", fontsize=FIGURE_TEXT_PT)
    ax.tick_params(labelsize=FIGURE_TEXT_PT)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
