"""Scratch folders for files the app hands to gradio (downloads, figures). Gradio copies a returned file into
its own cache, so only the newest folders are kept; older ones are removed as new ones are made."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path

KEPT = 32
_FOLDERS: deque[Path] = deque()
_LOCK = threading.Lock()


def scratch_dir() -> Path:
    """A new, empty folder under the system's temp dir."""
    folder = Path(tempfile.mkdtemp(prefix="recon-demo-"))
    with _LOCK:
        _FOLDERS.append(folder)
        while len(_FOLDERS) > KEPT:
            shutil.rmtree(_FOLDERS.popleft(), ignore_errors=True)
    return folder
