"""Where a tab's picture comes from, shared by the Reconstruct and CT tabs: the catalogue (the Image menu's choices,
the examples' thumbnails) and a picture of one's own (a file, or the webcam's or clipboard's picture)."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np

from recon_demo import images
from recon_demo.lab.blur import Lab, working_tensor
from recon_demo.lab.pictures import to_uint8
from recon_demo.lab.restore import RestoreLab

UPLOAD_TYPES = [*images.IMAGE_SUFFIXES, ".dcm"]
UPLOAD_HINT = "Drop or pick a file above: it replaces the image in use (PNG, JPEG, TIFF, 16-bit, RGBA, DICOM)."
LOG = logging.getLogger("recon_demo.ui")


def image_choices(current: str | None = None) -> list[tuple[str, str]]:
    """The Image menu: the catalogue (name, source, split), and first "your upload" when ``current`` is one."""
    choices = [(f"{name} ({e.source}, {e.split.replace('_', '-')})", name) for name, e in images.catalogue().items()]
    if current and current.startswith("upload:"):
        choices.insert(0, ("your upload", current))
    return choices


def accept_upload(lab: Lab, file, restore_lab: RestoreLab | None = None, clear: bool = True) -> tuple:
    """The upload handler (a file, or the webcam's or clipboard's picture as an array): it becomes the chosen image
    (its original kept for the already-blurred mode); else the note says why it cannot and the image in use stays
    (a ``gr.Error`` here turned the Image menu into a red "Error" pill), and the log gets one line. Returns the Image
    menu, the upload box (emptied when ``clear``: a refused file does not stay as if accepted, and the next file needs
    no ×) and the note beside it."""
    box = None if clear else gr.update()
    if file is None:
        return gr.update(), gr.update(), gr.update()
    name = Path(file if isinstance(file, str | Path) else getattr(file, "name", "")).name  # "" for bytes or an array
    try:
        key = lab.add_upload(file)
    except (ValueError, OSError) as err:
        LOG.info("upload refused: %s", err)
        gr.Warning(f"cannot use that file: {err}")
        return gr.update(), box, f"⚠ **Cannot use {name or 'that picture'}:** {err}. The image in use stays."
    if restore_lab is not None:
        restore_lab.keep(key, file)
    what = f"**{name}**" if name else "the picture"
    return gr.update(choices=image_choices(key), value=key), box, f"✓ Using {what} (now “your upload” in the Image menu)."


@cache
def thumbnails() -> list[tuple[np.ndarray, str]]:
    """The example catalogue as 64² thumbnails with their names (made once, on the first page view)."""
    return [(to_uint8(working_tensor(images.load_example(name))[0, 0, ::4, ::4].numpy()), name) for name in images.catalogue()]
