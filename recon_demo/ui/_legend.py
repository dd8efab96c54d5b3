"""Fixed colours per series and a legend of our own under a line plot (Robustness, Train): a series keeps its
colour from one run to the next, and the legend wraps in 16-px type; the plot's own legend is one row of 10-px
text that runs off a phone's screen and under the plot's frame."""

from __future__ import annotations

import html

PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#b279a2", "#ff9da6", "#9d755d", "#eeca3b", "#17becf",
           "#bcbd22", "#8c564b")  # fmt: skip


def series_colours(names: list[str], fixed: dict[str, str] | None = None) -> dict[str, str]:
    """A colour per series: those in ``fixed`` as given, the others from ``PALETTE`` in order."""
    fixed = fixed or {}
    others = iter(PALETTE * 2)
    return {n: fixed.get(n) or next(others) for n in names}


def legend_html(colours: dict[str, str]) -> str:
    """The series as a wrapping list of coloured line swatches with their names, readable on a projector and a phone."""
    items = "".join(f'<span class="legend-item"><span class="swatch" style="background:{c}"></span>{html.escape(n)}</span>'
                    for n, c in colours.items())  # fmt: skip
    return f'<div class="sweep-legend">{items}</div>'
