"""The core's progress reports (``recon_demo.progress.Report``) on gradio's progress bar, over the outputs."""

from __future__ import annotations

import gradio as gr

from recon_demo.progress import Report

# A handler's ``progress=PROGRESS`` parameter: gradio recognises it by this default and passes a tracker of the
# event's own at each call (so one shared default is safe). It must come before any ``*values`` parameter.
PROGRESS = gr.Progress()


def shown_by(progress: gr.Progress | None) -> Report:
    """A ``Report`` that moves ``progress`` (a handler's ``gr.Progress()`` argument); silent without one."""

    def report(done: int, total: int, what: str) -> None:
        if progress is not None:
            progress((done, total) if total else None, desc=what)

    return report
