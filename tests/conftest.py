"""Shared fixtures: the device, the lecture's files beside the checkout, and the golden images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
GOLDEN = SHARED / "fixtures" / "course_golden.json"
COURSE = SHARED / "course"


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def course_dir() -> Path:
    if not (COURSE / "CNN.pth").is_file():
        pytest.skip(f"the lecture's checkpoints are not at {COURSE} (../shared is absent on this machine)")
    return COURSE


@pytest.fixture(scope="session")
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.skip(f"the golden file is not at {GOLDEN} (../shared is absent on this machine)")
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="session")
def golden_images(tmp_path_factory, golden) -> Path:
    """The golden protocol's images: skimage.data.<name>() written losslessly with PIL."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("golden_images")
    for file_name in golden["protocol"]["images"]:
        Image.fromarray(getattr(data, Path(file_name).stem)()).save(folder / file_name)
    return folder
