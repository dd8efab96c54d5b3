"""The Gradio app: one module per tab, each laying out its widgets and calling the core (``recon_demo.lab.blur``,
``training``, ``loss_study``, ``activations``, ``robustness``, ``ct_lab``); nothing numeric happens here. ``build_app``
returns the Blocks without launching, so tests import it freely; ``app.py`` launches it."""

from __future__ import annotations

import os
import sys
import threading
import time

import gradio as gr

from recon_demo.lab.blur import Lab, warm_up
from recon_demo.lab.ct import CTLab
from recon_demo.lab.iterations import IterationLab
from recon_demo.lab.restore import RestoreLab
from recon_demo.ui import about, api, ct, inspector, iterations, lessons, reconstruct, robustness, train
from recon_demo.ui.queue import classroom_queue

# gradio asks matplotlib for its backend around every event; without a backend named, matplotlib resolves one
# by importing pyplot, 0.45 s of the first request here. The app draws off-screen only.
os.environ.setdefault("MPLBACKEND", "agg")

TITLE = "recon-demo: end-to-end neural image reconstruction"
# The results as a projector needs them: tiles of at least 256 px as the width allows (two on a phone; with few
# pictures they widen to fill the row), as many rows as there are pictures (no fixed gallery height that cuts the
# second row), each caption whole, under its image rather than over it; the same for the error maps, the Train
# tab's reconstructions, the CT tab's pictures and the restorations of a picture that is already blurred. On a phone the results come before the controls, with a button
# to jump between them; tables keep their words whole and scroll sideways when they must.
_TILED = ("#outputs", "#errors", "#ct_outputs", "#restore_gallery", "#train_recs", "#activations", "#iterates", "#it_pictures",
          "#ct_steps", "#ft_recs")
CSS = (
    ", ".join(f"{g}, {g} .grid-wrap" for g in _TILED) + " { height: auto !important; max-height: none !important; }\n"
    + ", ".join(f"{g} .thumbnail-item" for g in _TILED) + " { height: auto !important; aspect-ratio: auto !important; flex-direction: column; }\n"
    + ", ".join(f"{g} .thumbnail-item img" for g in _TILED) + " { aspect-ratio: 1 / 1; width: 100%; height: auto; }\n"
    + ", ".join(f"{g} .caption-label" for g in _TILED)
    + " { position: static !important; white-space: normal !important; max-width: none !important; overflow: visible !important;"
      " text-overflow: clip !important; font-size: 0.95rem; }\n"
    + ", ".join(f"{g} .grid-container" for g in _TILED[:4])
    + " { grid-template-columns: repeat(auto-fit, minmax(min(240px, 36vw), 1fr)) !important; }\n"
    + "#train_recs .grid-container, #iterates .grid-container, #ct_steps .grid-container, #ft_recs .grid-container"
    " { grid-template-columns: repeat(auto-fit, minmax(min(200px, 36vw), 1fr)) !important; }\n"
    + """
.sweep-legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 16px; margin: 4px 0 0 8px; }
.sweep-legend .legend-item { display: inline-flex; align-items: center; gap: 6px; }
.sweep-legend .swatch { display: inline-block; width: 26px; height: 4px; border-radius: 2px; }
.error-scale { display: flex; align-items: center; gap: 10px; font-size: 16px; margin: 0 8px; }
.error-scale .bar { flex: 1; max-width: 520px; height: 18px; border-radius: 3px; }
.error-scale-note { font-size: 16px; margin: 4px 8px 0; }
#results_col.stale #outputs img { opacity: 0.45; transition: opacity 0.15s; }
#results_col.stale #status::before { content: "⟳ updating to the new setting…"; display: block; font-weight: 600; }
#it_pictures .grid-container { grid-template-columns: repeat(auto-fit, minmax(min(165px, 40vw), 1fr)) !important; }  /* four in a row */
#activations .grid-container { grid-template-columns: repeat(auto-fill, minmax(min(320px, 80vw), 1fr)) !important; }
#channels, #channels .grid-wrap { height: auto !important; max-height: none !important; }
#channels .grid-container { grid-template-columns: repeat(auto-fill, minmax(88px, 1fr)) !important; }
#examples .grid-container { grid-template-columns: repeat(auto-fill, minmax(84px, 1fr)) !important; }
#about_text table { display: block; overflow-x: auto; }
#about_text th, #about_text td { word-break: normal !important; overflow-wrap: normal !important; hyphens: none; }
#about_text td:nth-child(n+3) { min-width: 14em; }
#about_text td:nth-child(2), #about_text th { white-space: nowrap; }
#metrics th, #ct_metrics th { white-space: nowrap; }
/* the figure's title clear of its full-screen and download buttons */
#figure img, #sweep_plot img { padding-top: 36px; }
/* the plots' own legends are one row of 10-px text that runs off a phone: a legend of our own is under each */
#sweep_plot g.role-legend, #curves g.role-legend, #ft_curves g.role-legend { display: none; }
#curves svg text, #ft_curves svg text { font-size: 16px !important; }  /* the axes, legible on a projector */
#outputs .grid-container, #errors .grid-container, #ct_outputs .grid-container, #restore_gallery .grid-container { grid-auto-rows: auto !important; align-items: start; }
#sweep_plot svg, #curves svg, #sweep_plot .vega-embed, #curves .vega-embed { overflow: visible !important; }
#to_controls, #to_results { display: none; }
/* readable from the back row: captions, table cells and plot text 16 px (the theme sets labels and body text) */
#outputs .caption-label, #errors .caption-label, #ct_outputs .caption-label, #restore_gallery .caption-label, #train_recs .caption-label { font-size: 16px !important; }
#metrics td, #metrics th, #ct_metrics td, #ct_metrics th, #train_table td, #train_table th, #architectures td, #architectures th,
#restore_table td, #restore_table th { font-size: 16px !important; }
#header { align-items: center; gap: 12px; flex-wrap: nowrap; }
/* the selected tab in orange-800 (7:1 on white), not the theme's orange-500 (2.8:1); orange-300 on the dark background */
button[role=tab].selected { color: #9a3412 !important; }
.dark button[role=tab].selected { color: #fdba74 !important; }
#header #title { flex: 1 1 auto; min-width: 0; }
/* the galleries' labels sit over their top edge: the tiles start below them */
#outputs .grid-wrap, #ct_outputs .grid-wrap, #restore_gallery .grid-wrap, #train_recs .grid-wrap, #ft_recs .grid-wrap,
#ct_steps .grid-wrap, #it_pictures .grid-wrap { padding-top: 34px; }
#header h2 { margin: 0; }
#header #present, #header #theme_switch { flex-grow: 0; }
:root.present.present.present #present { background: var(--button-primary-background-fill); color: var(--button-primary-text-color); }
#lesson_bar { align-items: center; }
#status_bar { align-items: center; flex-wrap: nowrap; }
#status_bar #to_controls { flex: 0 0 auto; }
#upload_note p { font-size: 16px; margin: 4px 8px; }
#upload .wrap { font-size: 16px; }
/* presentation: no upload, examples or webcam; bigger text and tiles (the switch, or ?present=1). gradio adds a copy of
   each rule under ".gradio-container.gradio-container-<version> .contain", four classes: ":root.present.present.present"
   outweighs it. */
:root.present { --text-xs: 16px; --text-sm: 18px; --text-md: 20px; --text-lg: 24px; --text-xl: 28px; --text-xxl: 32px; }
:root.present #picture_source, :root.present #ct_picture_source, :root.present #own, :root.present #share, :root.present #link, :root.present #lesson_bar .info { display: none !important; }
:root.present.present.present #outputs .caption-label, :root.present.present.present #ct_outputs .caption-label, :root.present.present.present #train_recs .caption-label { font-size: 20px !important; }
:root.present.present.present #metrics td, :root.present.present.present #metrics th, :root.present.present.present #ct_metrics td, :root.present.present.present #ct_metrics th { font-size: 20px !important; }
:root.present.present.present #outputs .grid-container, :root.present.present.present #ct_outputs .grid-container, :root.present.present.present #restore_gallery .grid-container {
  grid-template-columns: repeat(auto-fit, minmax(min(320px, 44vw), 1fr)) !important; }
@media (max-width: 700px) {
  #lesson_bar { flex-direction: column; }
  #results_col, #ct_results_col, #it_results_col { order: -1; }
  #outputs { order: -1; }
  #metrics, #ct_metrics, #train_table { font-size: 13px; }
  #to_controls { display: block; width: auto !important; min-width: 0 !important; padding: 0 !important; border: none !important;
    background: none !important; box-shadow: none !important; }
  #to_results { display: block; margin: 6px 0; }
  #to_controls *, #to_results * { border: none !important; background: transparent; box-shadow: none; padding: 0; margin: 0; }
  #to_controls a, #to_results a { display: inline-block; padding: 8px 13px; border-radius: 22px; font-weight: 600;
    background: var(--button-primary-background-fill); color: var(--button-primary-text-color); text-decoration: none;
    box-shadow: 0 2px 6px rgba(0, 0, 0, 0.3); }
  #header { flex-wrap: wrap; }
  #header #title { flex: 1 1 100% !important; min-width: 100% !important; }
}
"""
)


# The type a lecture hall reads: labels, body text and tables 16 px, hints 16 px in a grey of contrast 7:1 on white
# (neutral-600; neutral-300 on the dark background), not the default 12-14 px in neutral-400 (2.5:1).
TEXT_SIZES = gr.themes.Size(xxs="12px", xs="14px", sm="16px", md="16px", lg="20px", xl="24px", xxl="28px")


def theme() -> gr.themes.Base:
    """The app's theme: gradio's default with ``TEXT_SIZES`` and hints dark enough for WCAG AA."""
    return gr.themes.Default(text_size=TEXT_SIZES).set(
        body_text_color_subdued="*neutral_600", body_text_color_subdued_dark="*neutral_300",
        block_info_text_color="*neutral_600", block_info_text_color_dark="*neutral_300",
        input_placeholder_color="*neutral_500", input_placeholder_color_dark="*neutral_400",
    )  # fmt: skip


# The header's switches run in the page: presentation mode is a class on <html> (the CSS above), light/dark gradio's own
# "dark" class on <body>; the choice of colours is remembered in the browser.
PRESENT_JS = "() => { document.documentElement.classList.toggle('present'); }"
THEME_JS = """() => { const dark = !document.body.classList.contains('dark'); document.body.classList.toggle('dark', dark);
    try { localStorage.setItem('recon-theme', dark ? 'dark' : 'light'); } catch (e) {} }"""
PAGE_ON_LOAD_JS = """() => { const present = new URLSearchParams(location.search).get('present');
    if (['1', 'true', 'yes', 'on'].includes((present || '').toLowerCase())) document.documentElement.classList.add('present');
    try { const t = localStorage.getItem('recon-theme'); if (t) document.body.classList.toggle('dark', t === 'dark'); } catch (e) {} }"""


# Two CPU cores: two inferences at a time, one training at a time (its own queue), at most 64 waiting; past
# that, gradio answers "the queue is full, try again". Uploads above 50 MB are refused before they are stored.
INFERENCE_CONCURRENCY = 2
MAX_QUEUE = 64
MAX_UPLOAD = "50mb"


def queue_settings() -> dict:
    """``Blocks.queue`` arguments for a 2-core machine (see docs/app.md, "Limits")."""
    return {"default_concurrency_limit": INFERENCE_CONCURRENCY, "max_size": MAX_QUEUE}


def launch_settings() -> dict:
    """``Blocks.launch`` arguments (the address comes from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT). gradio 6 takes
    the page's CSS and theme here: ``launch()`` resets ``Blocks.css`` to what it is given."""
    return {"max_file_size": MAX_UPLOAD, "css": CSS, "theme": theme()}


def serve(demo: gr.Blocks, **launch: object):
    """Queue and launch the app as ``app.py`` does; ``launch`` overrides ``launch_settings()``. The queue is the
    classroom's (``ui.queue``: the last request of a client wins, fair turns, asleep when idle). The libraries a first
    reconstruction needs are loaded in the background meanwhile (``lab.blur.warm_up``), while the server starts.
    As gradio's own ``launch``, it then blocks while the server runs (unless ``prevent_thread_lock=True`` or in an
    interactive session), but waking once a second instead of ten times, and closes the server on Ctrl-C."""
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    classroom_queue(demo.queue(**queue_settings()))
    block = not launch.pop("prevent_thread_lock", False) and not getattr(sys, "ps1", sys.flags.interactive)
    served = demo.launch(**(launch_settings() | launch), prevent_thread_lock=True)
    try:
        while block and demo.is_running:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("Keyboard interruption in main thread... closing server.")
        demo.close()
    return served


def build_app(lab: Lab | None = None) -> gr.Blocks:
    """The whole app (Reconstruct, Inspect, Iterations, Train, Robustness, CT, About), unlaunched."""
    lab = lab or Lab()
    restore_lab = RestoreLab(lab.engine)
    # Uploads and the files gradio caches for outputs are deleted after an hour (checked hourly).
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        with gr.Row(elem_id="header", equal_height=True):
            gr.Markdown(f"## {TITLE}", elem_id="title")
            present = gr.Button("▣ Presentation", size="sm", elem_id="present", scale=0, min_width=150)  # also ?present=1
            theme_switch = gr.Button("◐ Light / dark", size="sm", elem_id="theme_switch", scale=0, min_width=150)
        present.click(None, None, None, js=PRESENT_JS, api_visibility="private")
        theme_switch.click(None, None, None, js=THEME_JS, api_visibility="private")
        bar = lessons.build()
        with gr.Tabs() as tabs:
            with gr.Tab("Reconstruct", id="reconstruct"):
                rec = reconstruct.build(lab, restore_lab)
            with gr.Tab("Inspect", id="inspect") as inspect_tab:
                inspector.build(lab, rec, inspect_tab)
            with gr.Tab("Iterations", id="iterations") as iterations_tab:
                iterations.build(IterationLab(lab), iterations_tab)
            with gr.Tab("Train", id="train"):
                train.build(rec)
            with gr.Tab("Robustness", id="robustness"):
                sweep_parameter = robustness.build(lab, rec)
            with gr.Tab("CT", id="ct") as ct_tab:
                ct.build(CTLab(lab), ct_tab)
            with gr.Tab("About", id="about"):
                about.build()
        api.register(lab, restore_lab)
        demo.load(reconstruct.thumbnails, None, rec.examples, api_visibility="private")
        lessons.wire(bar, rec, tabs, sweep_parameter)
        demo.load(None, None, None, js=PAGE_ON_LOAD_JS, api_visibility="private")
        demo.load(reconstruct.from_url, None, [*rec.controls.inputs(), *rec.url_note, bar.menu, rec.measured],
                  api_visibility="private").then(
            lessons.show, bar.menu, lessons.show_outputs(bar, rec, tabs, sweep_parameter), api_visibility="private").then(
            rec.run, rec.run_inputs, rec.run_outputs, api_visibility="private"
        )
    return demo
