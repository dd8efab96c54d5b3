"""The lab's tables: the metrics table of a reconstruction (best first by any metric, each knowing its
direction), its cells (shared with the CT table), its CSV, and the size and cost of each architecture."""

from __future__ import annotations

import csv
import io
from functools import cache

from recon_demo.activations import summary
from recon_demo.lab.setting import WORK_SIZE, LabResult, SettingError, architecture_of
from recon_demo.methods.base import Reconstruction
from recon_demo.methods.blur import BASELINES
from recon_demo.metrics import METRICS
from recon_demo.models import count_parameters, create_model, knows_operator
from recon_demo.physics.blur import LECTURE_OPERATOR

METRIC_COLUMNS = tuple(m.heading for m in METRICS.values())  # MSE, PSNR (dB), SSIM, LPIPS, data consistency
TABLE_COLUMNS = ("model", *METRIC_COLUMNS, "ms", "parameters")
SORTABLE = ("psnr", "ssim", "mse", "lpips", "dc", "ms")


def metrics_rows(result: LabResult, sort_by: str = "psnr") -> list[list]:
    """The metrics table, best first by ``sort_by`` (each metric knows its direction); models without an image last."""
    if sort_by not in SORTABLE:
        raise SettingError(f"sort by one of {', '.join(SORTABLE)}, got {sort_by!r}")
    higher = METRICS[sort_by].higher_is_better if sort_by in METRICS else False

    def key(r: Reconstruction):
        value = r.ms if sort_by == "ms" else r.metrics.get(sort_by)
        if r.image is None or value is None:
            return (1, 0.0)
        return (0, -value if higher else value)

    rows = [["Measurement", *metric_cells(result.measurement_metrics), "", ""]]
    for r in sorted(result.reconstructions, key=key):
        label = r.label + (" (no weights)" if r.image is None else "") + (" ⚠" if r.name in result.badges else "")
        params = f"{count_parameters_of(architecture_of(r.name)):,}" if r.name not in BASELINES else "—"
        cells = metric_cells(r.metrics) if r.image is not None else ["—"] * 5
        rows.append([label, *cells, f"{r.ms:.1f}" if r.image is not None else "—", params])
    return rows


# the metrics table's numeric columns (after "model": each metric's, then ms) and whether higher is better in each
_DIRECTIONS = {i: m.higher_is_better for i, m in enumerate(METRICS.values(), start=1)} | {len(METRICS) + 1: False}


def best_cells(rows: list[list], reference_row: bool = True) -> set[tuple[int, int]]:
    """(row, column) of the best value of each metric column among the methods (with ``reference_row``, the first
    row is the measurement: the reference, not a contender; the CT table has none); ties are all marked. What the
    page highlights."""
    best: set[tuple[int, int]] = set()
    first = 1 if reference_row else 0
    for col, higher in _DIRECTIONS.items():
        values = {}
        for i, row in enumerate(rows[first:], start=first):
            try:
                values[i] = float(row[col])
            except (ValueError, TypeError, IndexError):
                continue  # "—": no image, or LPIPS unavailable
        if values:
            target = max(values.values()) if higher else min(values.values())
            best |= {(i, col) for i, v in values.items() if v == target}
    return best


IDENTICAL = "identical"  # a PSNR cell where the picture is the ground truth exactly (its PSNR is infinite)


def metric_cells(metrics: dict[str, float | None]) -> list[str]:
    """MSE, PSNR, SSIM, LPIPS and data consistency as table cells ("—" where missing, ``IDENTICAL`` for an infinite
    PSNR: an identity kernel without noise); the CT table's too."""
    def cell(m: str) -> str:
        value = metrics.get(m)
        if value is None:
            return "—"
        return IDENTICAL if m == "psnr" and value == float("inf") else METRICS[m].format(value).replace(" dB", "")

    return [cell(m) for m in ("mse", "psnr", "ssim", "lpips", "dc")]


_SUMMARIES: dict[str, dict[str, int | None]] = {}


def architecture_summary(name: str) -> dict[str, int | None]:
    """Parameters, FLOPs at 256² and the formula receptive field of an architecture (computed once, cached); a
    network that knows the operator is counted with the lecture's ``K`` (its data steps included)."""
    if name not in _SUMMARIES:
        model = create_model(name).eval()
        if knows_operator(model):
            model.bind(LECTURE_OPERATOR.build())
        _SUMMARIES[name] = summary(model, WORK_SIZE, WORK_SIZE)
    return _SUMMARIES[name]


@cache
def count_parameters_of(name: str) -> int:
    """The lecture's parameter count of an architecture (built once)."""
    return count_parameters(create_model(name))


def metrics_csv(rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TABLE_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()
