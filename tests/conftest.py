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


@pytest.fixture(scope="session")
def trained_weights(tmp_path_factory) -> Path:
    """A weights folder with a briefly trained CNN in each regime, written by the train CLI (as a user would)."""
    from recon_demo.__main__ import main as cli

    folder = tmp_path_factory.mktemp("weights")
    common = ["--model", "cnn", "--batch-size", "4", "--patch-size", "48", "--phantoms", "4", "--max-images", "8",
              "--val-size", "64", "--lr", "3e-3", "--eval-every", "0"]  # fmt: skip
    assert cli(["train", *common, "--steps", "40", "--out", str(folder / "cnn_course.safetensors")]) == 0
    assert cli(["train", *common, "--steps", "10", "--regime", "general", "--out", str(folder / "cnn_general.safetensors")]) == 0
    return folder


@pytest.fixture(scope="session")
def lab(trained_weights):
    """The app's lab on the CPU, with the trained CNNs as its shipped weights."""
    from recon_demo.checkpoints import Manifest
    from recon_demo.lab.blur import Lab
    from recon_demo.serving.engine import Engine

    return Lab(Engine("cpu", manifest=Manifest.load(trained_weights)))
