"""Shared fixtures: the device, the lecture's files beside the checkout, and the golden images; and how the suite
shares the machine's cores when pytest-xdist runs it in several workers (``.ci/run``: ``-n 2 --dist loadgroup``).

Under xdist each worker is its own process with its own session fixtures. Each module's tests stay on one worker
(an ``xdist_group`` per module), so that a module's fixtures (a server, a browser, a trained model) are made once,
except the modules in ``SPREAD``: many slow tests and no costly fixture, run test by test on whichever worker is
free. The slowest work goes first (``FIRST``), so that no worker is left alone with it at the end. Each worker
uses its share of the cores (two workers with two threads each on two cores would contend), and the trained CNNs of
``trained_weights`` are trained once for all the workers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
GOLDEN = SHARED / "fixtures" / "course_golden.json"
COURSE = SHARED / "course"

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # 0: not under xdist
SPREAD = {"test_weights.py"}  # the shipped checkpoints' checks: up to 90 s each (2-core AVX2 CPU), no module fixture
# The longest modules, in this order: the browser and the load tests mostly wait for a server (one worker), while
# the other worker computes; then the checkpoints' checks, spread over both, and the next slowest.
FIRST = ("test_browser.py", "test_load.py", "test_weights.py", "test_bench.py", "test_distributed.py", "test_loss_study.py",
         "test_restore_app.py")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    if WORKERS:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    if WORKERS:  # a stable sort: within a module the order is kept
        rank = {name: i for i, name in enumerate(FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


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
    """A weights folder with a briefly trained CNN in each regime, written by the train CLI (as a user would).
    Under xdist the first worker to ask trains them in the run's shared temporary folder; the others wait and read."""
    if not WORKERS:
        return _train_weights(tmp_path_factory.mktemp("weights"))
    from filelock import FileLock  # a dependency of torch

    shared = tmp_path_factory.getbasetemp().parent  # the run's folder above each worker's own
    folder, done = shared / "trained_weights", shared / "trained_weights.done"
    with FileLock(str(shared / "trained_weights.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed half-way left
            folder.mkdir()
            _train_weights(folder)
            done.touch()
    return folder


def _train_weights(folder: Path) -> Path:
    from recon_demo.__main__ import main as cli

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
