"""The Reconstruct tab (the first screen): image, operator and models in; reconstructions, activations and
metrics out. Widgets are converted to a ``Setting`` and handed to the ``Lab``; nothing is computed here. What other
parts share lives in helpers: the controls and the link in ``ui._setting``, the picture's sources in ``ui._images``,
the results in ``ui._results``, the already-blurred mode's panel and handler in ``ui._restore``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import gradio as gr
import numpy as np

from recon_demo import images
from recon_demo.lab.blur import Lab
from recon_demo.lab.restore import RestoreLab
from recon_demo.lab.setting import (
    CHECKPOINT_SUFFIXES,
    FLAT_FIELDS,
    MAX_UPLOAD_CHECKPOINT,
    Setting,
    SettingError,
    choice_label,
    is_own_checkpoint,
    model_choices,
)
from recon_demo.lab.slide import save_slide
from recon_demo.lab.tables import SORTABLE, TABLE_COLUMNS, metrics_rows
from recon_demo.metrics import METRICS
from recon_demo.models import list_models, model_info
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OPERATOR_FIELDS, OperatorSpec
from recon_demo.physics.kernels import DRAWN, drawing_to_kernel, encode_drawn
from recon_demo.physics.spec import params
from recon_demo.progress import Report, no_progress
from recon_demo.ui import _restore
from recon_demo.ui._files import scratch_dir
from recon_demo.ui._images import UPLOAD_HINT, UPLOAD_TYPES, accept_upload, image_choices
from recon_demo.ui._progress import PROGRESS, shown_by
from recon_demo.ui._results import error_scale_html, pair, render, styled, tiles
from recon_demo.ui._setting import COPY_LINK_JS, Controls, control_values, link_query, setting_from
from recon_demo.ui._widgets import blur_visibility, scoped_fields, spec_widgets

SORT_LABELS = {name: (METRICS[name].label if name in METRICS else "milliseconds") for name in SORTABLE}
PSF_HINT = ("What the blur does to one point. The lecture's (ippy) motion kernel changes only every few degrees; the "
            "centered one with every degree.")
PAD_SIDE = 248  # the sketchpad's canvas, pixels: 8 per cell of the largest (31²) kernel
PAD_BRUSH = 12
MARK_STALE = "() => { document.querySelector('#results_col')?.classList.add('stale'); }"
UNMARK_STALE = "() => { document.querySelector('#results_col')?.classList.remove('stale'); }"
# The pad arrives with the server's answer to the blur change, later on a busy server: look for its brush every
# 100 ms (for up to 10 s) and pick it once it is shown, unless it is already picked (gradio marks it "highlight").
PICK_BRUSH_JS = """(blur) => { if (blur !== "drawn") return; let tries = 0;
    const pick = () => {
        const brush = document.querySelector('#psf_pad button[aria-label="Brush"]');
        if (brush && brush.offsetParent !== null) { if (!brush.classList.contains('highlight')) brush.click(); }
        else if (++tries < 100) setTimeout(pick, 100);
    };
    setTimeout(pick, 100); }"""


@dataclass
class ReconstructTab:
    """What other tabs and the app's load event need from this one (``ui.build_app`` hands it to them)."""

    controls: Controls
    result: gr.State  # the last LabResult of the session
    url_note: list  # the link's note and its dismiss button (``_setting.from_url`` fills both)
    run: object  # the handler: run_inputs' values → run_outputs
    run_inputs: list  # the controls, then the error-map checkbox
    run_outputs: list
    examples: gr.Gallery  # the catalogue's thumbnails, filled by the app's load event (made once, 0.25 s, not at start)
    show_errors: gr.Checkbox  # the error maps' switch (a lesson turns it on)
    measured: gr.Checkbox  # "my image is already blurred" (``?measured=1``, a lesson turns it on)


@dataclass
class LabPanels:
    """The results of a reconstruction, hidden while the picture is already blurred (``lab_panels`` lays them out)."""

    column: gr.Column
    show_errors: gr.Checkbox
    error_scale: gr.HTML
    outputs: gr.Gallery
    sort_by: gr.Dropdown
    table: gr.Dataframe
    acts: gr.Gallery
    left: gr.Dropdown
    right: gr.Dropdown
    compare: gr.ImageSlider
    downloads: gr.File


def build(lab: Lab, restore_lab: RestoreLab | None = None) -> ReconstructTab:
    """Lay out the tab and wire its events."""
    restore_lab = restore_lab or RestoreLab(lab.engine)
    default = Setting()
    examples = list(images.catalogue())
    result_state = gr.State(None)
    with gr.Row(equal_height=False):
        # The main controls first (image, blur, size, angle, noise, methods), so that on a projector (1440×900) they
        # share the first screen with the results; where the picture comes from (examples, upload, webcam) below them.
        with gr.Column(scale=3, min_width=300, elem_id="controls_col"):  # 30 % of a projector's width
            gr.HTML('<a href="#results_col">↑ back to the results</a>', elem_id="to_results")  # a phone's way back
            image = gr.Dropdown(image_choices(), value=default.image, label="Image", elem_id="image")
            with gr.Group(elem_id="blur_controls"):  # the blur and the noise on the first screen: hints go under the PSF
                # the blur and its sliders, the noise, then the spec's other fields (the style, the drawn PSF's code)
                sliders = tuple(n for n, p in params(default.operator).items() if n == "blur" or p.step is not None)
                made = spec_widgets(default.operator, names=sliders, hints=False)
                own = spec_widgets(default, names=("noise",))
                made |= spec_widgets(default.operator, names=tuple(n for n in OPERATOR_FIELDS if n not in sliders), hints=False)
                operator = {name: made[name] for name in OPERATOR_FIELDS}  # in the spec's order (the lecture button's)
                pad = gr.Sketchpad(label="Your kernel (PSF)",
                                   canvas_size=(PAD_SIDE, PAD_SIDE), fixed_canvas=True, layers=False, transforms=(),
                                   brush=gr.Brush(colors=["#000000"], default_size=PAD_BRUSH, color_mode="fixed"),
                                   type="numpy", image_mode="RGBA", format="png", visible=False, elem_id="psf_pad")  # fmt: skip
            models = gr.CheckboxGroup([(choice_label(n), n) for n in model_choices()], value=list(default.models),
                                      label="Models and classical baselines", elem_id="models")  # fmt: skip
            with gr.Row(elem_id="setting_buttons", equal_height=False):
                psf = gr.Image(label="Kernel (PSF)", height=120, width=120, interactive=False, buttons=[], elem_id="psf",
                               scale=0, min_width=130)  # fmt: skip
                with gr.Column(scale=1, min_width=160):
                    gr.Markdown(PSF_HINT, elem_id="psf_hint")
                    with gr.Row():
                        lecture = gr.Button("Lecture setting", size="sm", elem_id="lecture")
                        reset = gr.Button("Reset", size="sm", elem_id="reset")
            own |= spec_widgets(default, names=("seed",))
            regime = gr.Radio([("course: the lecture's operator", "course"), ("general: random operators", "general")],
                              value=default.regime, label="Weights", elem_id="regime")  # fmt: skip
            availability = gr.Markdown(elem_id="availability")
            with gr.Group(elem_id="picture_source"):  # hidden in presentation mode
                gallery = gr.Gallery(label="Examples: click one", columns=6, height="auto", allow_preview=False, show_label=True,
                                     elem_id="examples")  # fmt: skip  (filled when a page opens: ``ReconstructTab.examples``)
                upload = gr.File(label="Upload a picture (PNG, JPEG, TIFF, 16-bit, RGBA, DICOM)", show_label=False,
                                 file_types=UPLOAD_TYPES, height=150, elem_id="upload")  # fmt: skip
                upload_note = gr.Markdown(UPLOAD_HINT, elem_id="upload_note")
                measured = gr.Checkbox(False, label="My image is already blurred: restore it as it is",
                                       info="the picture becomes the measurement; the kernel is estimated from it",
                                       elem_id="measured")  # fmt: skip
                with gr.Accordion("…or take a photo, or paste a picture", open=False, elem_id="camera_box"):
                    camera = gr.Image(sources=["webcam", "clipboard"], type="numpy", image_mode="RGB",
                                      label="Webcam or clipboard", height=200, elem_id="camera")  # fmt: skip
            with gr.Accordion("Your own checkpoint (e.g. the lecture's CNN.pth)", open=False, elem_id="own"):
                own_arch = gr.Dropdown([(model_info(n).label, n) for n in list_models()], value="cnn", label="Architecture",
                                       elem_id="own_arch")  # fmt: skip
                own_file = gr.File(label=f"Checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}; tensors only, at most "
                                   f"{MAX_UPLOAD_CHECKPOINT / 1e6:.0f} MB)", file_types=list(CHECKPOINT_SUFFIXES), height=90,
                                   elem_id="own_file")  # fmt: skip
                own_status = gr.Markdown(elem_id="own_status")
            with gr.Row():
                share = gr.Button("Copy link to this setting", size="sm", elem_id="share")
            link = gr.Textbox(label="Link", buttons=["copy"], interactive=False, elem_id="link")
        with gr.Column(scale=7, min_width=320, elem_id="results_col"):
            with gr.Row(visible=True):
                url_note = gr.Markdown(visible=False, elem_id="url_note")
                dismiss = gr.Button("Dismiss", size="sm", visible=False, scale=0, elem_id="dismiss_note")
            with gr.Row(elem_id="status_bar"):
                status = gr.Markdown(elem_id="status")
                gr.HTML('<a href="#controls_col">⚙ settings ↓</a>', elem_id="to_controls", min_width=0)  # a phone's: below
            panel = _restore.build()
            results = lab_panels(result_state)

    controls = Controls({"image": image, **operator, **own, "models": models, "regime": regime})
    inputs = controls.inputs()

    estimated_for = gr.State(None)  # the image whose estimate filled the blur controls (the mode's)
    run_inputs = [*inputs, results.show_errors, measured, estimated_for]  # the error maps are made only while they are shown
    estimated = [controls[name] for name in _restore.ESTIMATED_FIELDS]
    lab_outputs = [psf, status, availability, results.outputs, results.acts, results.error_scale, results.left, results.right,
                   results.compare, results.table, results.downloads, result_state]  # fmt: skip

    # the progress bar shows each method as it is done (gradio fills ``progress`` only before *values)
    def run(progress=PROGRESS, *values):
        *setting_values, show, is_measured, estimated_key = values
        if is_measured:
            return _restore.render_measured(restore_lab, setting_values, estimated_key, shown_by(progress), len(lab_outputs))
        keep = [gr.update()] * (len(panel.outputs()) + len(estimated))
        return (*render_setting(lab, *setting_values, show_errors=bool(show), report=shown_by(progress)), *keep,
                estimated_key, gr.update(visible=True), gr.update(visible=False))  # fmt: skip

    run_outputs = [*lab_outputs, *panel.outputs(), *estimated, estimated_for, results.column, panel.group]
    after = {"fn": run, "inputs": run_inputs, "outputs": run_outputs, "api_visibility": "private"}  # `.then(**after)`

    def rerun(trigger):
        # at once, in the page: the results are marked stale (dimmed, "updating…") until the new ones arrive
        trigger(None, None, None, js=MARK_STALE, queue=False, api_visibility="private")
        trigger(run, inputs=run_inputs, outputs=run_outputs, api_visibility="private", trigger_mode="always_last",
                concurrency_id="reconstruct", show_progress_on=[status]).then(None, None, None, js=UNMARK_STALE,
                                                                              queue=False)  # fmt: skip
        # (the progress bar sits on the status line: the dimmed results stay in view instead of a white overlay)

    for name, widget in controls.widgets.items():  # (the kernel size redraws a drawing first: ``wire_pad``)
        if isinstance(widget, gr.Slider) and name != "kernel_size":
            rerun(widget.input)  # a drag, the arrow keys, a typed value with Enter: the last value is computed
        elif isinstance(widget, (gr.Radio, gr.Dropdown, gr.CheckboxGroup)):
            rerun(widget.input)
        elif isinstance(widget, gr.Number):
            rerun(widget.submit)

    wire_pad(controls, pad, after)

    def pick_example(evt: gr.SelectData):
        return examples[evt.index]

    gallery.select(pick_example, None, image, api_visibility="private").then(**after)

    # an upload (accepted or refused) leaves the box empty, ready for the next file; the note beside it says what happened
    upload.upload(partial(accept_upload, lab, restore_lab=restore_lab), upload, [image, upload, upload_note],
                  api_visibility="private").then(**after)  # fmt: skip
    camera.input(partial(accept_upload, lab, restore_lab=restore_lab, clear=False), camera, [image, camera, upload_note],
                 api_visibility="private").then(**after)  # fmt: skip
    rerun(measured.input)
    panel.again.click(lambda: None, None, estimated_for, api_visibility="private", queue=False).then(**after)

    own_file.upload(partial(accept_checkpoint, lab), [own_arch, own_file, models], [models, own_status],
                    api_visibility="private").then(**after)  # fmt: skip

    lecture_values = [*asdict(LECTURE_OPERATOR).values(), LECTURE_NOISE]  # every operator field, then the noise
    lecture.click(lambda: lecture_values, None, [*operator.values(), controls["noise"]], api_visibility="private").then(**after)

    def reset_all():  # every control of the tab back to its default (not only the blur), then a new run
        return (*control_values(Setting()), False, False, None, "psnr", UPLOAD_HINT)

    reset.click(reset_all, None, [*inputs, results.show_errors, measured, estimated_for, results.sort_by, upload_note],
                api_visibility="private").then(**after)  # fmt: skip

    share.click(link_query, [*inputs, measured], link, api_visibility="private").then(None, link, link, js=COPY_LINK_JS)
    dismiss.click(lambda: (gr.update(visible=False), gr.update(visible=False)), None, [url_note, dismiss], queue=False,
                  api_visibility="private")  # fmt: skip
    return ReconstructTab(controls, result_state, [url_note, dismiss], run, run_inputs, run_outputs, gallery,
                          results.show_errors, measured)  # fmt: skip


def lab_panels(result_state: gr.State) -> LabPanels:
    """The results column's panels for a reconstruction, wired to the session's last result (``result_state``): the
    error maps' switch, the sort, the before/after pair and the slide work on it without a new run."""
    with gr.Column(elem_id="lab_results") as column:  # hidden while the picture is already blurred
        # the tiles first; the error maps are the same tiles, switched (their colour bar above them)
        show_errors = gr.Checkbox(False, label="Show error maps |x_rec − x_true| on the tiles (black 0, yellow ≥ 0.25)",
                                  elem_id="show_errors")  # fmt: skip
        error_scale = gr.HTML(error_scale_html(), visible=False, elem_id="error_scale")
        outputs = gr.Gallery(label="Ground truth, measurement, reconstructions", columns=4, height="auto",
                             format="png", object_fit="contain", elem_id="outputs")  # fmt: skip
        sort_by = gr.Dropdown([(label, name) for name, label in SORT_LABELS.items()], value="psnr", label="Sort by",
                              elem_id="sort_by")  # fmt: skip
        table = gr.Dataframe(headers=list(TABLE_COLUMNS), interactive=False, wrap=False, elem_id="metrics",
                             label="Metrics (the best of each column in bold green)")  # fmt: skip
        acts = gr.Gallery(label="What each network's first layer sees (16 channels)", columns=4, height=280, visible=False,
                          format="png", object_fit="contain", elem_id="activations")  # fmt: skip
        with gr.Row(elem_id="slide_row"):
            slide = gr.Button("Make a slide of this comparison (PNG, 1920×1080)", size="sm", elem_id="slide")
            slide_file = gr.File(label="Slide", interactive=False, visible=False, elem_id="slide_file")
        with gr.Row():
            left = gr.Dropdown(label="Compare: left", elem_id="left")
            right = gr.Dropdown(label="right", elem_id="right")
        compare = gr.ImageSlider(label="Before / after: drag; scroll to zoom", type="numpy", image_mode="L", format="png",
                                 height=420, max_height=420, buttons=["fullscreen", "download"], elem_id="compare")  # fmt: skip
        downloads = gr.File(label="Downloads: reconstructions (PNG) and metrics (CSV)", file_count="multiple",
                            interactive=False, elem_id="downloads")  # fmt: skip

    def toggle_errors(show, result):  # the same tiles, switched between the pictures and their error maps
        return (tiles(result, show) if result else gr.update()), gr.update(visible=show)

    show_errors.input(toggle_errors, [show_errors, result_state], [outputs, error_scale], api_visibility="private")

    def make_slide(result):
        if result is None:
            raise gr.Error("nothing to put on a slide yet: wait for the first results")
        return gr.update(value=str(save_slide(result, scratch_dir() / f"slide_{result.setting.image[:20]}.png".replace(":", "-"))),
                         visible=True)  # fmt: skip

    slide.click(make_slide, result_state, slide_file, api_visibility="private")

    def resort(key, result):
        return styled(metrics_rows(result, key)) if result else gr.update()

    sort_by.input(resort, [sort_by, result_state], table, api_visibility="private")

    def pick_pair(a, b, result):
        return pair(result, a, b) if result else gr.update()

    for side in (left, right):
        side.input(pick_pair, [left, right, result_state], compare, api_visibility="private")
    return LabPanels(column, show_errors, error_scale, outputs, sort_by, table, acts, left, right, compare, downloads)


def wire_pad(controls: Controls, pad: gr.Sketchpad, after: dict) -> None:
    """The drawn kernel: the pad shown (its brush picked) while the blur is drawn, the other blurs' own fields while
    theirs is; each stroke, and each new kernel size, turned into the kernel's code (``drawn_code``), then ``after``."""
    blur, kernel_size, drawn = controls["blur"], controls["kernel_size"], controls["drawn"]

    def resize_drawing(drawing, size, blur_type):  # a drawn kernel is redrawn at the new size before the run
        return drawn_code(drawing, size) if blur_type == DRAWN else gr.update()

    kernel_size.input(resize_drawing, [pad, kernel_size, blur], drawn, api_visibility="private", trigger_mode="always_last",
                      show_progress="hidden").then(**after)  # fmt: skip
    scoped = [controls[name] for name in scoped_fields(OperatorSpec)]  # angle, variance, style: shown for their blur
    blur.change(lambda b: (*blur_visibility(OperatorSpec, b), gr.update(visible=b == DRAWN)), inputs=blur,
                outputs=[*scoped, pad], api_visibility="private")  # fmt: skip
    blur.change(None, blur, None, js=PICK_BRUSH_JS, api_visibility="private")  # the pad opens ready to draw
    # a stroke on the pad: its code (the kernel at the chosen size), then the reconstruction; empty → a message
    pad.change(drawn_code, [pad, kernel_size], drawn, api_visibility="private", trigger_mode="always_last",
               show_progress="hidden").then(**after)  # fmt: skip


# ---------------------------------------------------------------------------------------------- the handlers


def drawn_code(drawing, kernel_size) -> str:
    """The sketchpad's handler: the drawing as the code of a kernel_size² PSF (``operators.encode_drawn``); an
    empty pad gives "" (the run then says to draw), a size that is not allowed raises ``gr.Error``."""
    composite = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if composite is None:
        return ""
    try:
        return encode_drawn(drawing_to_kernel(np.asarray(composite), int(kernel_size)))
    except ValueError as err:
        if "empty" in str(err):
            return ""
        raise gr.Error(str(err)) from None


def accept_checkpoint(lab: Lab, architecture: str, file, selected: list[str] | None) -> tuple:
    """The checkpoint handler: a valid file joins the model selection, selected; ``gr.Error`` names what is wrong."""
    if file is None:
        return gr.update(), ""
    path = file if isinstance(file, str) else getattr(file, "name", file)
    try:
        key = lab.add_checkpoint(architecture, path)
    except (SettingError, ValueError, OSError) as err:
        raise gr.Error(f"cannot use that checkpoint: {err}") from None
    selected = [m for m in selected or [] if m != key] + [key]
    choices = [(choice_label(n), n) for n in model_choices()] + [(choice_label(m), m) for m in selected if is_own_checkpoint(m)]
    return gr.update(choices=choices, value=selected), f"Loaded as **{choice_label(key)}**: every key and shape fits."


def render_setting(lab: Lab, *values, show_errors: bool = False, report: Report = no_progress) -> tuple:
    """The Reconstruct tab's handler: the controls' values in, every output panel (and the result state) out.

    The error maps are made only when ``show_errors`` (the checkbox is on); otherwise their panel is cleared.
    ``report`` hears of each method done.
    """
    flat = dict(zip(FLAT_FIELDS, values))
    if flat.get("blur") == DRAWN and not flat.get("drawn"):  # just switched to drawing: nothing to run yet
        waiting = "Draw the kernel on the pad (drag on it): every stroke updates the results."
        return (gr.update(), waiting, *[gr.update()] * 10)
    setting = setting_from(*values)
    try:
        result = lab.run(setting, report=report)
    except (SettingError, ValueError) as err:
        raise gr.Error(str(err)) from None
    return render(result, "psnr", show_errors) + (result,)
