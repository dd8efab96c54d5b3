"""The Gradio app: one module per tab, each laying out its widgets and calling the core (``recon_demo.lab``:
``blur``, ``ct``, ``loss_study``, ``robustness``…; ``training``, ``activations``); nothing numeric happens here. ``build_app``
returns the Blocks without launching, so tests import it freely; ``app.py`` launches it."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import gradio as gr

from recon_demo.lab.blur import Lab, warm_up
from recon_demo.lab.ct import CTLab
from recon_demo.lab.iterations import IterationLab
from recon_demo.lab.restore import RestoreLab
from recon_demo.ui import about, api, ct, inspector, iterations, lessons, reconstruct, robustness, train
from recon_demo.ui._images import thumbnails
from recon_demo.ui._setting import from_url
from recon_demo.ui.queue import classroom_queue

# gradio asks matplotlib for its backend around every event; without a backend named, matplotlib resolves one
# by importing pyplot, 0.45 s of the first request here. The app draws off-screen only.
os.environ.setdefault("MPLBACKEND", "agg")

TITLE = "recon-demo: end-to-end neural image reconstruction"
# The page's style (tiles and captions sized for a projector, presentation mode, the phone layout: see its comments),
# read next to this module, so the app finds it from any working directory.
CSS = (Path(__file__).parent / "app.css").read_text(encoding="utf-8")


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


# The header's switches run in the page: presentation mode is a class on <html> (styled in app.css), light/dark gradio's own
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


def launch_arguments(argv: list[str] | None = None) -> dict:
    """``python3 app.py``'s options as ``launch`` overrides: ``--host``, ``--port``, ``--share`` (argparse exits with
    status 2 and says what is allowed on a bad one). Without them, gradio's environment variables apply."""
    parser = argparse.ArgumentParser(prog="app.py", description="Serve recon-demo (default: http://127.0.0.1:7860, "
                                     "this computer only).")  # fmt: skip
    parser.add_argument("--host", help="the address to serve on: 127.0.0.1 (this computer only, the default), 0.0.0.0 "
                        "(every network this computer is on: the students' laptops on the room's network open "
                        "http://<this computer's address>:7860) or one address; GRADIO_SERVER_NAME sets it too")  # fmt: skip
    parser.add_argument("--port", type=_port, help="the port (default 7860; GRADIO_SERVER_PORT sets it too)")
    parser.add_argument("--share", action="store_true", help="also a public https://….gradio.live link through "
                        "Gradio's tunnel, for 72 hours: anyone with the link uses the app on this computer (needs the "
                        "internet; gradio fetches its tunnel client the first time)")  # fmt: skip
    args = parser.parse_args(argv)
    out: dict = {"share": True} if args.share else {}
    if args.host:
        out["server_name"] = args.host
    if args.port is not None:
        out["server_port"] = args.port
    return out


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, got {text!r}")
    return port


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
        demo.load(thumbnails, None, rec.examples, api_visibility="private")
        # what a lesson sets lies in other tabs: handed over here (a tab never imports another)
        targets = lessons.Targets(rec.controls.inputs(), tabs, sweep_parameter, rec.show_errors, rec.measured,
                                  {"fn": rec.run, "inputs": rec.run_inputs, "outputs": rec.run_outputs})  # fmt: skip
        lessons.wire(bar, targets)
        demo.load(None, None, None, js=PAGE_ON_LOAD_JS, api_visibility="private")
        demo.load(from_url, None, [*rec.controls.inputs(), *rec.url_note, bar.menu, rec.measured],
                  api_visibility="private").then(
            lessons.show, bar.menu, lessons.show_outputs(bar, targets), api_visibility="private").then(
            rec.run, rec.run_inputs, rec.run_outputs, api_visibility="private"
        )
    return demo
