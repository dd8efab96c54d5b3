"""A slide of one comparison (the Reconstruct tab's "Make a slide"): one 1920×1080 PNG with the setting as its title,
the ground truth, the measurement and each reconstruction as tiles with their captions, and the metrics table, in
type a lecture hall reads (every text at least ``MIN_TEXT_PX`` pixels high in the picture's own pixels)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from recon_demo.lab.setting import LabResult
from recon_demo.lab.tables import TABLE_COLUMNS, metrics_rows

SLIDE_PX = (1920, 1080)  # width, height: a full-HD projector
DPI = 100
MIN_TEXT_PX = 20  # the smallest text on the slide, pixels
MAX_TILES = 8  # the ground truth, the measurement and up to six reconstructions; the table lists every method
TABLE_SHOWN = ("model", "PSNR (dB)", "SSIM", "LPIPS", "ms")  # the columns a slide has room for


def _points(px: float) -> float:
    return px * 72 / DPI


def tile_captions(result: LabResult) -> list[tuple[np.ndarray, str]]:
    """(picture, caption) of each tile on the slide, the ground truth first, at most ``MAX_TILES``."""
    out = [(result.x_true, "ground truth"), (result.y_delta, "measurement")]
    for r in result.reconstructions:
        if r.image is not None:
            psnr = r.metrics["psnr"]
            out.append((r.image, f"{r.label}\n{psnr:.2f} dB" if math.isfinite(psnr) else f"{r.label}\nidentical"))
    return out[:MAX_TILES]


def tile_grid(n: int, width: float, height: float, caption: float, gap: float) -> tuple[int, float]:
    """(columns, side) of the square tiles that are largest for ``n`` pictures in ``width`` × ``height`` pixels, each
    with ``caption`` pixels under it and ``gap`` pixels between tiles."""
    best = (1, 0.0)
    for columns in range(1, n + 1):
        rows = math.ceil(n / columns)
        side = min((width - (columns - 1) * gap) / columns, (height - rows * caption - (rows - 1) * gap) / rows)
        if side > best[1]:
            best = (columns, side)
    return best


def save_slide(result: LabResult, path: str | Path) -> Path:
    """Draw the slide of ``result`` to ``path`` (PNG, ``SLIDE_PX``) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.setting
    W, H = SLIDE_PX
    fig = plt.figure(figsize=(W / DPI, H / DPI), dpi=DPI, facecolor="white")
    title = f"{s.image}: {s.operator.describe()}, noise δ {s.noise:g}, {s.regime} weights"
    fig.text(40 / W, 1 - 50 / H, title, fontsize=_points(44), weight="bold", va="center")
    # the tiles in the left 62 % (pixels from the top left), the table on the right
    pictures = tile_captions(result)
    area = (40, 110, 0.62 * W - 60, H - 110 - 70)  # x, y, width, height
    caption, gap = 76, 20
    columns, side = tile_grid(len(pictures), area[2], area[3], caption, gap)
    for i, (image, text) in enumerate(pictures):
        row, col = divmod(i, columns)
        x, y = area[0] + col * (side + gap), area[1] + row * (side + caption + gap)
        ax = fig.add_axes((x / W, 1 - (y + side) / H, side / W, side / H))
        ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        fig.text((x + side / 2) / W, 1 - (y + side + 6) / H, text, fontsize=_points(28), ha="center", va="top",
                 linespacing=1.05)  # fmt: skip
    keep = [TABLE_COLUMNS.index(c) for c in TABLE_SHOWN]
    cells = [[row[j] for j in keep] for row in metrics_rows(result, "psnr")]
    ax = fig.add_axes((0.63, 0.08, 0.35, 0.80))
    ax.set_axis_off()
    widths = [0.41, 0.20, 0.14, 0.14, 0.11]
    table = ax.table(cellText=cells, colLabels=list(TABLE_SHOWN), colWidths=widths, loc="upper center",
                     cellLoc="center", colLoc="center")  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(_points(22))
    table.scale(1, 3.0)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("#9ca3af")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e5e7eb")
        elif c == 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.04
    fig.text(40 / W, 30 / H, f"recon-demo · device {result.device} · metrics against the ground truth; the first row is "
             "the measurement, the one to beat", fontsize=_points(MIN_TEXT_PX + 2), color="#374151")  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    plt.close(fig)
    return path
