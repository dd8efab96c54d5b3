"""The CT tab: the lecture's cross-domain problem. An image becomes a sinogram over a chosen number of angles,
with noise; FBP, SIRT and the learned refinement of FBP bring it back, side by side with the same metrics
(data consistency now measured on the sinogram). The computation is ``recon_demo.lab.ct``."""

from __future__ import annotations

from functools import partial

import gradio as gr

from recon_demo.lab.ct import CT_TABLE_COLUMNS, CTLab, CTSetting, ct_rows, sinogram_picture
from recon_demo.lab.pictures import to_uint8
from recon_demo.lab.setting import SettingError
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui._results import styled
from recon_demo.ui._widgets import spec_widgets
from recon_demo.ui.reconstruct import UPLOAD_HINT, UPLOAD_TYPES, accept_upload, image_choices


def ct_outputs(ct_lab: CTLab, image: str, angles, noise, filter: str, seed, size=CTSetting.size,
               progress: gr.Progress | None = None) -> tuple:  # fmt: skip
    """The CT tab's handler: a status line, the sinogram, the pictures with captions, the metrics table. The progress
    bar names each method as it finishes (and the projector's compilation, once per process)."""
    try:
        result = ct_lab.run(CTSetting(image, angles, noise, filter, seed, size), report=shown_by(progress))
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    s = result.setting
    pictures = [(to_uint8(result.x_true), "ground truth")]
    for r in result.reconstructions:
        pictures.append((to_uint8(r.image), f"{r.label}: {r.metrics['psnr']:.2f} dB"))
    status = (f"{s.size}² image, {s.angles} angles over 180°, {result.sinogram.shape[1]} detector bins, sinogram noise "
              f"δ {s.noise:g}, FBP window {s.filter}.")  # fmt: skip
    if result.notes:
        status += "\n\n" + "\n\n".join(f"⚠ {n}" for n in result.notes)
    table = styled(ct_rows(result), CT_TABLE_COLUMNS, reference_row=False)  # every row a method: the best marked
    return status, sinogram_picture(result.sinogram), pictures, table


def build(ct_lab: CTLab, tab: gr.Tab | None = None) -> None:
    """Lay out the tab; with ``tab``, opening it shows the default setting at once."""
    default = CTSetting()
    gr.Markdown("In computed tomography the measurement is a **sinogram**: each column is one projection of the image "
                "(the sums along parallel rays) at one angle. It does not live in the image's domain, so the networks "
                "here refine a crude reconstruction, the filtered back-projection (FBP). Fewer angles: more streaks.")  # fmt: skip
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            image = gr.Dropdown(image_choices(), value=default.image, label="Image", elem_id="ct_image")
            controls = spec_widgets(default, prefix="ct_")  # angles, noise, FBP filter, seed, size: as CTSetting says
            angles, noise, window, seed, size = (controls[name] for name in ("angles", "noise", "filter", "seed", "size"))
            run = gr.Button("Reconstruct", variant="primary", elem_id="ct_run")
            with gr.Group(elem_id="ct_picture_source"):  # below the controls: the angles stay on the first screen
                upload = gr.File(label="Upload an image", show_label=False, file_types=UPLOAD_TYPES, height=150,
                                 elem_id="ct_upload")  # fmt: skip
                upload_note = gr.Markdown(UPLOAD_HINT, elem_id="ct_upload_note")
        with gr.Column(scale=2, min_width=300, elem_id="ct_results_col"):  # first on a phone
            status = gr.Markdown(elem_id="ct_status")
            sinogram = gr.Image(label="Sinogram y_delta (detector bins down, angles 0° → 180° across)", type="numpy",
                                height=260, elem_id="ct_sinogram")  # fmt: skip
            pictures = gr.Gallery(label="Ground truth and reconstructions", columns=4, height=300, object_fit="contain",
                                  elem_id="ct_outputs")  # fmt: skip
            table = gr.Dataframe(headers=list(CT_TABLE_COLUMNS), label="Metrics (the best of each column in bold green; data "
                                 "consistency: ||A x_rec − y_delta|| / ||y_delta||)",
                                 interactive=False, wrap=True, elem_id="ct_metrics")  # fmt: skip
    inputs = [image, angles, noise, window, seed, size]
    outputs = [status, sinogram, pictures, table]

    def handler(image, angles, noise, filter, seed, size, progress=PROGRESS):
        return ct_outputs(ct_lab, image, angles, noise, filter, seed, size, progress)

    run.click(handler, inputs, outputs, api_visibility="private")
    for control in (angles, noise):  # a drag (its first and last value), the arrow keys, a typed value with Enter
        control.input(handler, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    seed.submit(handler, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    for control in (window, size):
        control.change(handler, inputs, outputs, api_visibility="private")
    if tab is not None:
        tab.select(handler, inputs, outputs, api_visibility="private")  # results are cached: reopening is free
    upload.upload(partial(accept_upload, ct_lab.lab), upload, [image, upload, upload_note], api_visibility="private").then(
        handler, inputs, outputs, api_visibility="private"
    )
