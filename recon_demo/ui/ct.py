"""The CT tab: the lecture's cross-domain problem. An image becomes a sinogram over a chosen number of angles,
with noise; FBP, SIRT and the learned refinement of FBP bring it back, side by side with the same metrics
(data consistency now measured on the sinogram). The computation is ``recon_demo.lab.ct``."""

from __future__ import annotations

from functools import partial

import gradio as gr

from recon_demo.lab import ct_steps
from recon_demo.lab.ct import CT_TABLE_COLUMNS, CTLab, CTSetting, ct_rows, sinogram_picture
from recon_demo.lab.pictures import to_uint8
from recon_demo.lab.setting import WORK_SIZE, SettingError
from recon_demo.physics.ct import detector_bins
from recon_demo.physics.spec import params
from recon_demo.ui._images import UPLOAD_HINT, UPLOAD_TYPES, accept_upload, image_choices
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui._results import styled
from recon_demo.ui._widgets import spec_widgets


def ct_outputs(ct_lab: CTLab, image: str, angles, noise, filter: str, seed, size=WORK_SIZE,
               progress: gr.Progress | None = None) -> tuple:  # fmt: skip
    """The CT tab's handler: a status line, the sinogram, the pictures with captions, the metrics table. The progress
    bar names each method as it finishes (and the projector's compilation, once per process)."""
    try:
        result = ct_lab.run(CTSetting.of(image=image, angles=angles, noise=noise, filter=filter, seed=seed, size=size), report=shown_by(progress))
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


def step_outputs(ct_lab: CTLab, cache: ct_steps.StepsCache, image: str, angles, noise, filter: str, seed, size, width, level,
                 mark) -> tuple:  # fmt: skip
    """The step-by-step section: the row of FBP's pictures, the windows' responses, and the linked sinogram and image
    (the FBP at the window chosen), with the ray of a clicked sinogram point or the sinusoid of a clicked pixel."""
    try:
        result = ct_lab.run(CTSetting.of(image=image, angles=angles, noise=noise, filter=filter, seed=seed, size=size))
        s = cache.get(result)
        shown = ct_steps.window(s.fbp, float(width), float(level))
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    sinogram, picture, note = sinogram_picture(s.sinogram), shown, LINK_HINT
    kind, a, b = mark or ("", 0, 0)
    n_angles, bins = s.sinogram.shape
    if kind == "ray" and a < n_angles and b < bins:
        sinogram = ct_steps.sinogram_with_point(s.sinogram, a, b)
        picture = ct_steps.image_with_ray(shown, n_angles, a, b)
        where = f"The point at angle {180 * a / n_angles:.0f}°, detector bin {b}"
        note = (f"{where} is the sum along a ray that passes beside the image: it sees only air."
                if ct_steps.ray_misses(shown.shape[0], n_angles, a, b)
                else f"{where} is the sum along this ray (orange) through the image.")  # fmt: skip
    elif kind == "pixel" and max(a, b) < shown.shape[0]:
        sinogram = ct_steps.sinogram_with_sinusoid(s.sinogram, a, b, shown.shape[0])
        picture = ct_steps.image_with_pixel(shown, a, b)
        note = f"Pixel (row {a}, column {b}) is seen by one ray per angle: together they trace this sinusoid (orange)."
    picture = ct_steps.enlarged(picture, ct_steps.link_scale(shown.shape[0]))  # a click is mapped back (click_image)
    return ct_steps.step_pictures(s), ct_steps.filter_figure(s.filter, s.sinogram.shape[1]), sinogram, picture, note


ACQUISITION = tuple(params(CTSetting().acquisition))  # the controls that make the CTSpec
LINK_HINT = "Click a point of the sinogram to see its ray in the image, or a pixel of the image to see its sinusoid."


def build(ct_lab: CTLab, tab: gr.Tab | None = None) -> None:
    """Lay out the tab; with ``tab``, opening it shows the default setting at once."""
    default = CTSetting()
    gr.Markdown("In computed tomography the measurement is a **sinogram**: each column is one projection of the image "
                "(the sums along parallel rays) at one angle. It does not live in the image's domain, so the networks "
                "here refine a crude reconstruction, the filtered back-projection (FBP). Fewer angles: more streaks.")  # fmt: skip
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            image = gr.Dropdown(image_choices(), value=default.image, label="Image", elem_id="ct_image")
            controls = {name: spec_widgets(default.acquisition if name in ACQUISITION else default, "ct_", (name,))[name]
                        for name in ("angles", "noise", "filter", "seed", "size")}  # as CTSetting and its CTSpec say
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
    gr.Markdown("### Step by step: from back-projection to FBP\n" + "  \n".join(
        f"**{i}. {title}.** {sentence}" for i, (title, sentence) in enumerate(ct_steps.STEP_SENTENCES, start=1)),
        elem_id="ct_steps_text")
    steps_row = gr.Gallery(label="The four steps of filtered back-projection", columns=4, height="auto", object_fit="contain",
                           elem_id="ct_steps")  # fmt: skip
    filters = gr.Plot(label="The ramp and its windows in the frequency domain", show_label=False, elem_id="ct_filters")
    gr.Markdown("### The sinogram and the image, linked")
    with gr.Row(equal_height=False):
        linked_sinogram = gr.Image(label="Sinogram (click a point)", type="numpy", interactive=False,
                                   elem_id="ct_link_sinogram")  # fmt: skip
        linked_image = gr.Image(label="FBP: click a pixel", type="numpy", interactive=False, elem_id="ct_link_image")
    link_note = gr.Markdown(LINK_HINT, elem_id="ct_link_note")  # under the pictures: seen after a tap on a phone
    with gr.Row():
        preset = gr.Radio(list(ct_steps.PRESETS), value="Full range", label="Window of the linked FBP: preset",
                          elem_id="ct_preset")  # fmt: skip
        width = gr.Slider(50, 4000, value=ct_steps.PRESETS["Full range"][0], step=10, label="Window width (HU)", elem_id="ct_width")
        level = gr.Slider(-1000, 1000, value=ct_steps.PRESETS["Full range"][1], step=10, label="Window level (HU)", elem_id="ct_level")
    gr.Markdown(f"The lab's images run from 0 to 1; here they are read as Hounsfield units, {ct_steps.AIR_HU:.0f} HU (air) "
                f"+ {ct_steps.HU_PER_UNIT:.0f} × value. Lung W1500/L−600, soft tissue W400/L40, bone W1800/L400.")  # fmt: skip
    mark = gr.State(None)
    inputs = [image, angles, noise, window, seed, size]
    outputs = [status, sinogram, pictures, table]
    link_inputs = [*inputs, width, level, mark]
    link_outputs = [steps_row, filters, linked_sinogram, linked_image, link_note]

    cache = ct_steps.StepsCache()

    def linked(image, angles, noise, filter, seed, size, width, level, mark):
        return step_outputs(ct_lab, cache, image, angles, noise, filter, seed, size, width, level, mark)

    def click_sinogram(angles, size, evt: gr.SelectData):
        k, b = ct_steps.sinogram_point(tuple(evt.index), int(angles), detector_bins(int(size)))
        return ("ray", k, b)

    def click_image(size, evt: gr.SelectData):
        col, row = evt.index  # in the enlarged picture's pixels
        scale = ct_steps.link_scale(int(size))
        return ("pixel", int(row) // scale, int(col) // scale)

    def handler(image, angles, noise, filter, seed, size, progress=PROGRESS):
        return ct_outputs(ct_lab, image, angles, noise, filter, seed, size, progress)

    def both(event):  # the results, then the step-by-step section from the same (cached) result, its old click forgotten
        event.then(lambda: None, None, mark, api_visibility="private").then(
            linked, link_inputs, link_outputs, api_visibility="private")

    both(run.click(handler, inputs, outputs, api_visibility="private"))
    for control in (angles, noise):  # a drag (its first and last value), the arrow keys, a typed value with Enter
        both(control.input(handler, inputs, outputs, api_visibility="private", trigger_mode="always_last"))
    both(seed.submit(handler, inputs, outputs, api_visibility="private", trigger_mode="always_last"))
    for control in (window, size):
        both(control.change(handler, inputs, outputs, api_visibility="private"))
    if tab is not None:
        both(tab.select(handler, inputs, outputs, api_visibility="private"))  # results are cached: reopening is free
    both(upload.upload(partial(accept_upload, ct_lab.lab), upload, [image, upload, upload_note], api_visibility="private").then(
        handler, inputs, outputs, api_visibility="private"
    ))
    linked_sinogram.select(click_sinogram, [angles, size], mark, api_visibility="private").then(
        linked, link_inputs, link_outputs, api_visibility="private")
    linked_image.select(click_image, size, mark, api_visibility="private").then(
        linked, link_inputs, link_outputs, api_visibility="private")
    preset.input(lambda name: list(ct_steps.PRESETS[name]), preset, [width, level], api_visibility="private").then(
        linked, link_inputs, link_outputs, api_visibility="private")
    for control in (width, level):  # a window of one's own: no preset is chosen any more
        control.input(linked, link_inputs, link_outputs, api_visibility="private", trigger_mode="always_last").then(
            lambda: None, None, preset, api_visibility="private")
