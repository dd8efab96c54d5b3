"""The Reconstruct tab's results: the tiles with their captions, the before/after pair, the metrics table with the
best of each column marked, the error maps and the downloads, from one ``LabResult`` (every picture encoded once)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from recon_demo.lab.pictures import ERROR_RANGE, error_map, error_scale_colours, png_bytes, psf_preview, to_uint8
from recon_demo.lab.setting import LabResult, choice_label
from recon_demo.lab.tables import TABLE_COLUMNS, best_cells, metrics_csv, metrics_rows
from recon_demo.methods.registry import is_handed_operator
from recon_demo.ui._files import scratch_dir


def _precisions(result: LabResult) -> str:
    """", float32" when every network ran in float32; which ran in bf16 otherwise (``Engine.runs_bf16``)."""
    ran = [r for r in result.reconstructions if r.precision is not None]
    bf16 = [r.label for r in ran if r.precision == "bf16"]
    if not ran:
        return ""
    if not bf16:
        return ", float32"
    return ", bf16 for " + ", ".join(bf16) + ("" if len(bf16) == len(ran) else ", float32 for the other networks")


def render(result: LabResult, sort_by: str, show_errors: bool) -> tuple:
    """Every Reconstruct panel of ``result``: the PSF, the status, what is missing, the tiles (their error maps while
    ``show_errors``), the activations, the error maps' colour bar, the before/after pair, the table, the downloads."""
    # Every picture is encoded once, here (``lab.pictures.PNG_LEVEL``), and the gallery, the slider and the downloads
    # share its file: handing gradio arrays made it encode each at zlib's default level, 240 ms a result here.
    files = _picture_files(result)
    acts = [(files[f"act:{name}"], f"{choice_label(name)}: first layer") for name in result.activations]
    names = _pair_choices(result)
    status = f"Device: **{result.device}**{_precisions(result)}."
    if result.setting.operator.is_identity():
        status += " The kernel is the **identity** (size 1): the measurement is the image plus noise, nothing to deblur."
    if result.badges:
        status += (" ⚠ " + "; ".join(f"{choice_label(n)} was {t}" for n, t in result.badges.items())
                   + f", and sees {_here(result)}: an end-to-end network never sees the kernel, so it reverses the blur it"
                   " learned, not this one.")  # fmt: skip
    given = [r.label for r in result.reconstructions if is_handed_operator(r.name) and r.image is not None]
    if given:
        who = given[0] if len(given) == 1 else ", ".join(given[:-1]) + " and " + given[-1]
        status += f" {who} {'is' if len(given) == 1 else 'are'} handed the exact kernel; the end-to-end networks must infer it."
    missing = [f"**{r.label}**: {r.error}" for r in result.reconstructions if r.image is None]
    rows = metrics_rows(result, sort_by)
    done = [r for r in result.reconstructions if r.image is not None]
    best = max(done, key=lambda r: r.metrics.get("psnr") or -np.inf).name if done else "x_true"
    left, right = names[1][1], best  # the slider opens on the measurement against the best reconstruction
    return (
        psf_preview(result.kernel),
        status,
        "\n\n".join(missing),
        tiles(result, show_errors, files),
        gr.update(value=acts, visible=bool(acts)),
        gr.update(visible=show_errors),
        gr.update(choices=names, value=left),
        gr.update(choices=names, value=right),
        (files[left], files[right]),
        styled(rows),
        _downloads(result, rows, files),
    )


def _here(result: LabResult) -> str:
    s = result.setting
    return f"{s.operator.describe()}, noise {s.noise:g}"


def captions(result: LabResult) -> list[tuple[str, str]]:
    """(picture key, caption) of each tile: the ground truth, the measurement, each reconstruction with its PSNR and
    SSIM (an exact copy of the ground truth says "identical" rather than an infinite PSNR), a note where a method was
    handed the kernel or was trained for another operator."""
    s = result.setting
    out = [("x_true", "ground truth"), ("y_delta", f"measurement: {s.operator.describe()}, δ {s.noise:g}")]
    for r in result.reconstructions:
        if r.image is None:
            continue
        psnr = r.metrics["psnr"]
        caption = f"{r.label}: " + (f"{psnr:.2f} dB" if np.isfinite(psnr) else "identical to the ground truth")
        caption += f", SSIM {r.metrics['ssim']:.3f}"
        if is_handed_operator(r.name):
            caption += " (handed the exact kernel)"
        if r.name in result.badges:
            caption += f" ⚠ {result.badges[r.name]}; here {_here(result)}"
        out.append((r.name, caption))
    return out


def tiles(result: LabResult, show_errors: bool, files: dict[str, str] | None = None) -> list:
    """The gallery's tiles: the pictures with their captions, or (``show_errors``) on the same tiles the error maps
    |x − x_true| of the measurement and of each reconstruction, the ground truth kept first as the reference."""
    if not show_errors:
        files = files or _picture_files(result)
        return [(files[key], caption) for key, caption in captions(result)]
    out = [(to_uint8(result.x_true), "ground truth"), (error_map(result.y_delta, result.x_true), "measurement: |y_delta − x_true|")]
    out += [(error_map(r.image, result.x_true), f"{r.label}: |x_rec − x_true|") for r in result.reconstructions if r.image is not None]
    return out


BEST = "font-weight: 700; color: #15803d; background-color: #dcfce7"


def styled(rows: list[list], columns: tuple[str, ...] = TABLE_COLUMNS, reference_row: bool = True):
    """A metrics table with the best value of each column marked (``lab.tables.best_cells``): a pandas Styler,
    which gr.Dataframe shows with its colours; the numbers stay as they are (the CSV has them plain)."""
    import pandas as pd

    best = best_cells(rows, reference_row)
    frame = pd.DataFrame(rows, columns=list(columns))
    marks = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, j in best:
        marks.iat[i, j] = BEST
    return frame.style.apply(lambda _: marks, axis=None)


def _picture_files(result: LabResult) -> dict[str, str]:
    """Each picture of a result as a PNG file, encoded once: "x_true", "y_delta", each reconstruction by name
    (``IMAGE_NAME_reconstruction.png``, the download's name) and "act:NAME" for each activation grid."""
    folder = scratch_dir()
    stem = result.setting.image.replace(":", "-")[:20]
    pictures = {"x_true": result.x_true, "y_delta": result.y_delta}
    pictures |= {r.name: r.image for r in result.reconstructions if r.image is not None}
    pictures |= {f"act:{name}": grid for name, grid in result.activations.items()}
    files = {}
    for key, image in pictures.items():
        path = folder / f"{stem}_{key.replace(':', '-')}.png"
        path.write_bytes(png_bytes(image))
        files[key] = str(path)
    return files


def _pair_choices(result: LabResult) -> list[tuple[str, str]]:
    return [("ground truth", "x_true"), ("measurement", "y_delta")] + [
        (r.label, r.name) for r in result.reconstructions if r.image is not None
    ]


def _image_of(result: LabResult, key: str) -> np.ndarray:
    if key == "x_true":
        return result.x_true
    if key == "y_delta":
        return result.y_delta
    rec = result.by_name(key)
    if rec is None or rec.image is None:
        raise gr.Error(f"no reconstruction named {key!r} in this result")
    return rec.image


def pair(result: LabResult, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    return to_uint8(_image_of(result, a)), to_uint8(_image_of(result, b))


def error_scale_html() -> str:
    """The error maps' colour bar, drawn above them as a gradient with its ends labelled."""
    gradient = ", ".join(error_scale_colours())
    return (f'<div class="error-scale"><span>0</span><span class="bar" style="background: linear-gradient(to right, {gradient})">'
            f"</span><span>≥ {ERROR_RANGE:g}</span></div>"
            f'<div class="error-scale-note">|x_rec − x_true|: black where the reconstruction is exact, yellow where it is off '
            f"by {ERROR_RANGE:g} or more (a quarter of the grey range)</div>")  # fmt: skip


def _downloads(result: LabResult, rows: list[list], files: dict[str, str]) -> list[str]:
    """The reconstructions' PNGs (the files the gallery shows) and the metrics as CSV."""
    pngs = [files[r.name] for r in result.reconstructions if r.image is not None]
    csv_path = Path(pngs[0] if pngs else files["x_true"]).with_name(f"{result.setting.image.replace(':', '-')[:20]}_metrics.csv")
    csv_path.write_text(metrics_csv(rows))
    return pngs + [str(csv_path)]
