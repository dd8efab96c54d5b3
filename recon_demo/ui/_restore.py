"""The Reconstruct tab's "my image is already blurred" mode: the picture is the measurement, there is no ground
truth, so the panel shows what can be known: the kernel (estimated, or as the controls set it) with its numbers and
how sure the estimate is, the measurement's Fourier magnitude beside the kernel's (why that kernel), each method's
restoration with its data consistency and time. The numbers come from ``lab.restore``; this module only lays them out."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from recon_demo.errors import RestoreError
from recon_demo.lab.pictures import kernel_spectrum, measurement_spectrum, psf_preview, to_uint8
from recon_demo.lab.restore import Restored, RestoreLab
from recon_demo.lab.setting import FLAT_FIELDS
from recon_demo.methods.estimate import KernelEstimate
from recon_demo.methods.registry import RESTORE_METHODS, is_handed_operator
from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.kernels import DRAWN
from recon_demo.physics.spec import params
from recon_demo.picture import Picture, write_picture
from recon_demo.progress import Report
from recon_demo.ui._files import scratch_dir

LOW_CONFIDENCE = 0.4  # below it the panel says another kernel explains the picture almost as well
ESTIMATED_FIELDS = tuple(name for name, p in params(OperatorSpec).items() if p.widget)  # the blur controls an estimate fills
TABLE_HEADERS = ("method", "data consistency ‖K x − y‖ / ‖y‖", "ms")
MEASURED_HELP = ("**Already blurred:** your picture is the measurement: there is no ground truth, so no PSNR or SSIM. "
                 "The kernel below was estimated from the picture itself; correct it with the blur controls (the "
                 "estimate filled them), or press *Estimate the kernel again*. In the Fourier magnitude a motion blur draws dark "
                 "parallel stripes across the direction of motion, a Gaussian a dark ring.")  # fmt: skip


@dataclass
class RestorePanel:
    """The mode's widgets (in the results column)."""

    group: gr.Group
    status: gr.Markdown
    kernel: gr.Image
    spectrum: gr.Image
    gallery: gr.Gallery
    table: gr.Dataframe
    downloads: gr.File
    again: gr.Button

    def outputs(self) -> list:
        return [self.status, self.kernel, self.spectrum, self.gallery, self.table, self.downloads]


def build() -> RestorePanel:
    """The panel, hidden until the mode is on."""
    with gr.Group(visible=False, elem_id="restore_panel") as group:
        status = gr.Markdown(MEASURED_HELP, elem_id="restore_status")
        with gr.Row(equal_height=False):
            kernel = gr.Image(label="Kernel used (PSF)", height=170, interactive=False, buttons=[], min_width=170, scale=1,
                              elem_id="restore_kernel")  # fmt: skip
            spectrum = gr.Image(label="Fourier magnitude: your picture (left), the kernel (right)", height=170,
                                interactive=False, buttons=["fullscreen"], min_width=300, scale=2,
                                elem_id="restore_spectrum")  # fmt: skip  (on a phone it goes below the kernel)
        again = gr.Button("Estimate the kernel again", size="sm", elem_id="estimate_again")
        gallery = gr.Gallery(label="Your picture (the measurement) and each restoration", columns=4,
                             format="png", object_fit="contain", elem_id="restore_gallery")  # fmt: skip
        table = gr.Dataframe(headers=list(TABLE_HEADERS), interactive=False, wrap=False, elem_id="restore_table",
                             label="What can be measured without a ground truth")  # fmt: skip
        downloads = gr.File(label="Downloads: restorations at your picture's size (PNG)", file_count="multiple",
                            interactive=False, elem_id="restore_downloads")  # fmt: skip
    return RestorePanel(group, status, kernel, spectrum, gallery, table, downloads, again)


def controls_of(found: KernelEstimate) -> list:
    """The blur controls' values for an estimate, in ``ESTIMATED_FIELDS`` order."""
    return [getattr(found.spec, name) for name in ESTIMATED_FIELDS]


def spec_of(values: dict, estimated: OperatorSpec) -> OperatorSpec:
    """The kernel the blur controls describe, of the kind they chose. A drawn kernel is not offered here (the mode
    takes parametric ones): with the drawn blur chosen, the kernel is of the ``estimated`` kind, with the controls' numbers."""
    described = params(OperatorSpec)
    chosen = {name: described[name].kind(values[name]) for name in ESTIMATED_FIELDS}
    return OperatorSpec(**chosen | {"blur": estimated.blur if values["blur"] == DRAWN else values["blur"]})


def render_measured(restore_lab: RestoreLab, values: list, estimated_key: str | None, report: Report, skipped: int) -> tuple:
    """The Reconstruct tab's handler in the already-blurred mode, given the controls' values (``FLAT_FIELDS``): the
    picture restored (``render``), the blur controls filled by the estimate when the picture is new to them
    (afterwards they are the student's), the lab's own ``skipped`` panels left as they are."""
    flat = dict(zip(FLAT_FIELDS, values))
    key = flat["image"]
    fill = [gr.update()] * len(ESTIMATED_FIELDS)
    try:
        found = restore_lab.estimate(key)  # cached: estimated once per picture
    except ValueError as err:
        gr.Warning(f"cannot restore that picture: {err}")
        return (*[gr.update()] * skipped, f"**Cannot restore this picture:** {err}", *[None] * 5, *fill, estimated_key,
                gr.update(visible=False), gr.update(visible=True))  # fmt: skip
    if estimated_key != key:
        fill, spec, estimated_key = controls_of(found), found.spec, key
    else:
        spec = spec_of(flat, found.spec)
    panel = render(restore_lab, key, spec, list(flat["models"] or []), flat["regime"], report)
    kernel_picture = psf_preview(spec.kernel().numpy())
    lab_side = [kernel_picture, "Already blurred: the picture is the measurement.", "", *[gr.update()] * (skipped - 3)]
    return (*lab_side, *panel, *fill, estimated_key, gr.update(visible=False), gr.update(visible=True))


def render(lab: RestoreLab, key: str, spec: OperatorSpec, methods: list[str], regime: str, report) -> tuple:
    """The panel's outputs for picture ``key`` restored with ``spec``; a ``RestoreError`` becomes a warning."""
    try:
        picture, note = lab.picture(key)
        found = lab.estimate(key)
        result = lab.run(key, spec, methods or list(RESTORE_METHODS), regime, report)
    except (RestoreError, ValueError) as err:
        gr.Warning(f"cannot restore that picture: {err}")
        return (f"**Cannot restore this picture:** {err}", None, None, [], None, None)
    return (_status(result, found, note), psf_preview(result.kernel.numpy()), _spectra(picture, result), *_pictures(key, picture, result))


def _status(result: Restored, found: KernelEstimate, note: str) -> str:
    estimated = result.estimated
    lines = [MEASURED_HELP]
    if estimated:
        lines.append(f"**Estimated kernel:** {found.spec.describe()}, confidence **{found.confidence:.0%}** "
                     f"(how far it explains the picture better than any distant kernel); noise δ ≈ {found.noise:.3f}.")  # fmt: skip
        if found.negligible:
            lines.append("The picture looks sharp already: the estimate is no blur to speak of.")
        elif found.confidence < LOW_CONFIDENCE:
            lines.append("Low confidence: another kernel explains the picture almost as well; try correcting it.")
    else:
        lines.append(f"**Kernel from the controls:** {result.spec.describe()} (the estimate was {found.spec.describe()}, "
                     f"confidence {found.confidence:.0%}); noise δ ≈ {found.noise:.3f}.")  # fmt: skip
    lines.append(f"Colour: {result.colour_mode}." + (f" Your picture was {note}." if note else ""))
    handed = [result.labels[n] for n in result.outputs if is_handed_operator(n)]
    if handed:
        lines.append(f"{', '.join(handed)} {'is' if len(handed) == 1 else 'are'} handed this kernel, with the picture's real "
                     "edges (the scene goes on past its frame); the end-to-end networks see the picture alone.")  # fmt: skip
    lines += [f"**{result.labels[n]}**: {e}" for n, e in result.errors.items()]
    return "\n\n".join(lines)


def _spectra(picture: Picture, result: Restored) -> np.ndarray:
    left = measurement_spectrum(picture.grey)
    right = kernel_spectrum(result.kernel.numpy(), size=left.shape[0])
    gap = np.ones((left.shape[0], 6))
    return to_uint8(np.concatenate([left, gap, right], axis=1))


def _pictures(key: str, picture: Picture, result: Restored) -> tuple:
    folder = scratch_dir()
    stem = key.replace(":", "-")[:20]
    measured = folder / f"{stem}_measurement.png"
    write_picture(measured, picture.pixels)
    gallery = [(str(measured), "your picture: the measurement")]
    files = []
    rows = []
    for name, pixels in result.outputs.items():
        path = folder / f"{stem}_{name}.png"
        write_picture(path, pixels)
        files.append(str(path))
        gallery.append((str(path), f"{result.labels[name]}: {result.ms[name]:.0f} ms"))
        rows.append([result.labels[name], f"{result.dc[name]:.4f}", f"{result.ms[name]:.0f}"])
    return gallery, rows, files
