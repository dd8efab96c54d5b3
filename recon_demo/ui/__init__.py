"""The Gradio app: one module per tab, each laying out its widgets and calling the core (``recon_demo.lab.blur``,
``training``, ``loss_study``, ``activations``, ``robustness``, ``ct_lab``); nothing numeric happens here. ``build_app``
returns the Blocks without launching, so tests import it freely; ``app.py`` launches it."""

from __future__ import annotations

import os
import threading

import gradio as gr

from recon_demo.lab.blur import Lab, warm_up
from recon_demo.lab.ct import CTLab
from recon_demo.lab.restore import RestoreLab
from recon_demo.ui import about, api, ct, inspector, lessons, reconstruct, robustness, train

# gradio asks matplotlib for its backend around every event; without a backend named, matplotlib resolves one
# by importing pyplot, 0.45 s of the first request here. The app draws off-screen only.
os.environ.setdefault("MPLBACKEND", "agg")

TITLE = "recon-demo: end-to-end neural image reconstruction"
# The results as a projector needs them: tiles of at least 256 px as the width allows (two on a phone; with few
# pictures they widen to fill the row), as many rows as there are pictures (no fixed gallery height that cuts the
# second row), each caption whole, under its image rather than over it; the same for the error maps, the Train
# tab's reconstructions, the CT tab's pictures and the restorations of a picture that is already blurred. On a phone the results come before the controls, with a button
# to jump between them; tables keep their words whole and scroll sideways when they must.
_TILED = ("#outputs", "#errors", "#ct_outputs", "#restore_gallery", "#train_recs", "#activations", "#iterates")
CSS = (
    ", ".join(f"{g}, {g} .grid-wrap" for g in _TILED) + " { height: auto !important; max-height: none !important; }\n"
    + ", ".join(f"{g} .thumbnail-item" for g in _TILED) + " { height: auto !important; aspect-ratio: auto !important; flex-direction: column; }\n"
    + ", ".join(f"{g} .thumbnail-item img" for g in _TILED) + " { aspect-ratio: 1 / 1; width: 100%; height: auto; }\n"
    + ", ".join(f"{g} .caption-label" for g in _TILED)
    + " { position: static !important; white-space: normal !important; max-width: none !important; overflow: visible !important;"
      " text-overflow: clip !important; font-size: 0.95rem; }\n"
    + ", ".join(f"{g} .grid-container" for g in _TILED[:4])
    + " { grid-template-columns: repeat(auto-fit, minmax(min(256px, 36vw), 1fr)) !important; }\n"
    + "#train_recs .grid-container, #iterates .grid-container"
    " { grid-template-columns: repeat(auto-fit, minmax(min(200px, 36vw), 1fr)) !important; }\n"
    + """
.sweep-legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 16px; margin: 4px 0 0 8px; }
.sweep-legend .legend-item { display: inline-flex; align-items: center; gap: 6px; }
.sweep-legend .swatch { display: inline-block; width: 26px; height: 4px; border-radius: 2px; }
.error-scale { display: flex; align-items: center; gap: 10px; font-size: 16px; margin: 0 8px; }
.error-scale .bar { flex: 1; max-width: 520px; height: 18px; border-radius: 3px; }
.error-scale-note { font-size: 14px; margin: 4px 8px 0; }
#results_col.stale #outputs img { opacity: 0.45; transition: opacity 0.15s; }
#results_col.stale #status::before { content: "⟳ updating to the new setting…"; display: block; font-weight: 600; }
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
#figure img { padding-top: 36px; }
/* the plots' own legends are one row of 10-px text that runs off a phone: a legend of our own is under each */
#sweep_plot g.role-legend, #curves g.role-legend { display: none; }
#sweep_plot svg text, #curves svg text { font-size: 13px !important; }  /* the axes, legible on a projector */
#outputs .grid-container, #errors .grid-container, #ct_outputs .grid-container, #restore_gallery .grid-container { grid-auto-rows: auto !important; align-items: start; }
#sweep_plot svg, #curves svg, #sweep_plot .vega-embed, #curves .vega-embed { overflow: visible !important; }
#to_controls, #to_results { display: none; }
@media (max-width: 700px) {
  #lesson_bar { flex-direction: column; }
  #results_col, #ct_results_col { order: -1; }
  #outputs { order: -1; }
  #metrics, #ct_metrics, #train_table { font-size: 13px; }
  #to_controls { display: block; position: fixed; left: auto; right: 12px; bottom: 14px; z-index: 50; width: auto !important;
    min-width: 0 !important; padding: 0 !important; border: none !important; background: none !important; box-shadow: none !important; }
  #to_results { display: block; margin: 6px 0; }
  #to_controls *, #to_results * { border: none !important; background: transparent; box-shadow: none; padding: 0; margin: 0; }
  #to_controls a, #to_results a { display: inline-block; padding: 8px 13px; border-radius: 22px; font-weight: 600;
    background: var(--button-primary-background-fill); color: var(--button-primary-text-color); text-decoration: none;
    box-shadow: 0 2px 6px rgba(0, 0, 0, 0.3); }
}
"""
)


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
    the page's CSS here: ``launch()`` resets ``Blocks.css`` to what it is given."""
    return {"max_file_size": MAX_UPLOAD, "css": CSS}


# gradio's queue looks for new events every 1 ms while no worker is free or nothing waits, and for progress every
# 10 ms: an idle server (no page open) woke ~850 times a second and used 7-8 % of a core here. Every 20 ms and
# 100 ms it wakes ~77 times a second (2 %); the cost is at most 20 ms more before a request is picked up (also when
# all workers are busy), and progress bars that update ten times a second.
IDLE_POLL_S = 0.02
PROGRESS_POLL_S = 0.1


def quiet_when_idle(demo: gr.Blocks) -> gr.Blocks:
    """Slow the queue's idle polling (``IDLE_POLL_S``, ``PROGRESS_POLL_S``); call after ``demo.queue()``."""
    queue = demo._queue  # gradio exposes no setting for these; tests check the attributes still exist
    if not hasattr(queue, "sleep_when_free") or not hasattr(queue, "progress_update_sleep_when_free"):
        raise RuntimeError("this gradio's queue has no idle polling intervals to set; update quiet_when_idle")
    queue.sleep_when_free = IDLE_POLL_S
    queue.progress_update_sleep_when_free = PROGRESS_POLL_S
    return demo


def serve(demo: gr.Blocks, **launch: object):
    """Queue, quiet and launch the app as ``app.py`` does; ``launch`` overrides ``launch_settings()``. The libraries a
    first reconstruction needs are loaded in the background meanwhile (``lab.blur.warm_up``), while the server starts."""
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    quiet_when_idle(demo.queue(**queue_settings()))
    return demo.launch(**(launch_settings() | launch))


def build_app(lab: Lab | None = None) -> gr.Blocks:
    """The whole app (Reconstruct, Inspect, Train, Robustness, CT, About), unlaunched."""
    lab = lab or Lab()
    restore_lab = RestoreLab(lab.engine)
    # Uploads and the files gradio caches for outputs are deleted after an hour (checked hourly).
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## {TITLE}\nBlur an image, add noise, and watch the lecture's networks and classical methods undo it.")
        bar = lessons.build()
        with gr.Tabs() as tabs:
            with gr.Tab("Reconstruct", id="reconstruct"):
                rec = reconstruct.build(lab, restore_lab)
            with gr.Tab("Inspect", id="inspect") as inspect_tab:
                inspector.build(lab, rec, inspect_tab)
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
        demo.load(reconstruct.from_url, None, [*rec.controls.inputs(), *rec.url_note, bar.menu, rec.measured],
                  api_visibility="private").then(
            lessons.show, bar.menu, lessons.show_outputs(bar, rec, tabs, sweep_parameter), api_visibility="private").then(
            rec.run, rec.run_inputs, rec.run_outputs, api_visibility="private"
        )
    return demo
