"""recon-demo's app: ``python app.py`` serves it on 127.0.0.1:7860; ``--host 0.0.0.0`` serves the room, ``--share``
adds a public link, ``--port`` another port (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT work too); the same file runs
unchanged as a Hugging Face Space. All of the app lives in recon_demo.ui."""

import logging
import time

import gradio  # noqa: F401  torch and gradio first: the import floor, which the bench separates from the app's start
import torch  # noqa: F401

IMPORTS_DONE = time.time()

from recon_demo.serving.runtime import log_to_stderr, tune_allocator  # noqa: E402
from recon_demo.ui import build_app, launch_arguments, serve  # noqa: E402

launch = launch_arguments() if __name__ == "__main__" else {}  # a bad option exits here, before the app is built
demo = build_app()

if __name__ == "__main__":
    tune_allocator()
    log_to_stderr()
    logging.getLogger("recon_demo.app").info("torch and gradio imported at %.3f", IMPORTS_DONE)
    serve(demo, **launch)
