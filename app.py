"""recon-demo's app: ``python app.py`` serves it on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
override both); the same file runs unchanged as a Hugging Face Space. All of the app lives in recon_demo.ui."""

from recon_demo.runtime import log_to_stderr, tune_allocator
from recon_demo.ui import build_app, serve

demo = build_app()

if __name__ == "__main__":
    tune_allocator()
    log_to_stderr()
    serve(demo)
