"""The app's "my image is already blurred" mode and ``/restore``: the Reconstruct handler in the mode, the link's
``?measured=1``, the lesson, the API through ``gradio_client``, and a real browser uploading a blurred photo at
1440×900 and 390×844 (screenshots to ``RECON_ARTIFACTS``). The shipped weights serve (the unrolled network, TV)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon_demo import images
from recon_demo.evaluate.blind import blur_with_border
from recon_demo.lab.blur import Lab
from recon_demo.lab.lessons import LESSONS
from recon_demo.lab.restore import RestoreLab
from recon_demo.lab.setting import FLAT_FIELDS, Setting
from recon_demo.physics.kernels import motion_kernel
from recon_demo.serving.engine import Engine
from recon_demo.ui import _restore
from recon_demo.ui._restore import render_measured
from recon_demo.ui._setting import control_values, from_url

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("RECON_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def shipped() -> Lab:
    return Lab(Engine("cpu"))


@pytest.fixture(scope="module")
def blurred_photo(tmp_path_factory) -> Path:
    """chelsea (a training image) in colour, blurred by motion 11 @ 30° with real edges, as a phone would send it."""
    rgb = np.asarray(images.load_example("chelsea").convert("RGB"), dtype=np.float32) / 255
    planes = [blur_with_border(np.ascontiguousarray(rgb[..., c]), motion_kernel(11, 30.0, "centered"), 256, 0.01,
                               np.random.default_rng(1), torch.Generator().manual_seed(c))[1][0, 0].clamp(0, 1).numpy()
              for c in range(3)]  # fmt: skip
    path = tmp_path_factory.mktemp("photo") / "shaky.jpg"
    Image.fromarray(np.round(np.stack(planes, -1) * 255).astype(np.uint8)).save(path, quality=92)
    return path


def _values(**changes) -> list:
    setting = Setting.of(image="clock", models=("tv", "unrolled"), regime="general")
    values = dict(zip(FLAT_FIELDS, control_values(setting)))
    return [changes.get(name, value) for name, value in values.items()]


def test_the_mode_estimates_fills_the_blur_controls_then_follows_them(shipped):
    restore_lab = RestoreLab(shipped.engine)
    skipped = 12
    out = render_measured(restore_lab, _values(), None, lambda *a: None, skipped)
    status, kernel, spectra, gallery, rows, files = out[skipped : skipped + 6]
    n = len(_restore.ESTIMATED_FIELDS)  # the blur controls an estimate fills
    fill, estimated_for = out[skipped + 6 : skipped + 6 + n], out[skipped + 6 + n]
    found = restore_lab.estimate("clock")
    assert estimated_for == "clock" and list(fill) == _restore.controls_of(found) and found.spec.blur == "motion"
    assert "Estimated kernel" in status and "PSNR" in status and "no PSNR or SSIM" in status  # none is shown
    assert [r[0] for r in rows] == ["Unrolled (knows K)", "TV"] and all(0 < float(r[1]) < 0.1 for r in rows)
    assert len(gallery) == 3 and len(files) == 2 and Image.open(files[0]).size == (400, 300)  # the clock's own size
    assert spectra.ndim == 2 and spectra.shape[1] > 2 * spectra.shape[0]  # the picture's and the kernel's, side by side
    assert out[-2] == {"visible": False, "__type__": "update"} and out[-1] == {"visible": True, "__type__": "update"}
    # the student corrects the kernel: the controls' kernel is used, the estimate is still said
    corrected = render_measured(restore_lab, _values(kernel_size=15, angle=0.0, kernel_style="centered"), "clock",
                                lambda *a: None, skipped)  # fmt: skip
    assert "Kernel from the controls" in corrected[skipped] and "motion 15 @ 0°" in corrected[skipped]
    assert list(corrected[skipped + 6 : skipped + 6 + n]) == [{"__type__": "update"}] * n  # the controls are left as they are


def test_a_picture_that_cannot_be_restored_says_why_and_nothing_breaks(shipped):
    restore_lab = RestoreLab(shipped.engine)
    restore_lab.keep("upload:" + "1" * 40, np.zeros((64, 64), np.uint8))  # all black
    out = render_measured(restore_lab, _values(image="upload:" + "1" * 40), None, lambda *a: None, 12)
    assert "Cannot restore this picture" in out[12] and "flat" in out[12]


def test_the_link_and_the_lesson_turn_the_mode_on():
    class Request:
        query_params = {"measured": "1", "image": "clock"}

    assert from_url(Request())[-1] is True
    Request.query_params = {"image": "clock"}
    assert from_url(Request())[-1] is False
    lesson = LESSONS["real-photo"]
    assert lesson.measured and lesson.setting().image == "clock" and "unrolled" in lesson.setting().models


@pytest.fixture(scope="module")
def server(shipped):
    from recon_demo.ui import build_app, serve

    app = build_app(shipped)
    serve(app, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield app.local_url
    app.close()


def test_restore_through_the_api_answers_as_the_cli_does(server, blurred_photo, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    out = client.predict(image=handle_file(str(blurred_photo)), methods="unrolled,tv", api_name="/restore")
    assert out["kernel"]["blur"] == "motion" and out["kernel"]["kernel_size"] == 11 and out["colour"] == "each channel restored"
    assert abs((out["kernel"]["angle"] - 30 + 90) % 180 - 90) <= 5 and set(out["ms"]) == {"unrolled", "tv"}
    restored = Image.open(io.BytesIO(base64.b64decode(out["outputs"]["unrolled"])))
    assert restored.mode == "RGB" and restored.size == Image.open(blurred_photo).size
    psf = np.zeros((11, 11), np.uint8)
    psf[5, :] = 255
    Image.fromarray(psf).save(tmp_path / "psf.png")
    told = client.predict(image="clock", methods="tv", psf=handle_file(str(tmp_path / "psf.png")), api_name="/restore")
    assert told["kernel"] == {"file": "psf"} and Image.open(io.BytesIO(base64.b64decode(told["outputs"]["tv"]))).size == (400, 300)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"kernel": "motion:8:20"}, "odd"), ({"noise": "-2"}, "between 0 and 1"), ({"methods": "magic"}, "unknown method"),
     ({"image": {"path": "/etc/passwd"}}, "handle_file"), ({"image": "nonesuch"}, "unknown example image"),
     ({"kernel": "/etc/hostname"}, "send a PSF picture as the psf file"), ({"colour": "sepia"}, "colour must be one of")],  # fmt: skip
    ids=["even-kernel", "negative-noise", "unknown-method", "a-server-path", "unknown-example", "a-path-as-kernel", "bad-colour"],
)
def test_bad_restore_requests_get_a_message_and_the_server_stays(server, kwargs, message):
    from gradio_client import Client

    client = Client(server, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(**({"image": "clock", "methods": "tv"} | kwargs), api_name="/restore")
    assert client.predict(image="clock", methods="input", api_name="/restore")["outputs"]["input"]


@pytest.mark.browser
@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)])
def test_a_student_uploads_a_blurred_photo_and_sees_it_restored(server, blurred_photo, width, height):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"no Chromium at {chromium}: apt-get install -y chromium (as .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install -r requirements-dev.txt)")
    from tests.test_browser import FLAGS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(server + "?models=unrolled,tv&regime=general")
        page.wait_for_selector("#outputs img", timeout=180_000)  # the lab's first result
        page.locator("#measured input[type=checkbox]").check()
        page.locator("#upload input[type=file]").set_input_files(str(blurred_photo))
        try:
            page.wait_for_function("() => (document.querySelector('#restore_status')?.innerText || '').includes('motion 11')",
                                   timeout=180_000)  # fmt: skip
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"restore_failed_{width}x{height}.png"), full_page=True)
            raise
        page.wait_for_function("() => document.querySelectorAll('#restore_gallery img').length >= 3", timeout=60_000)
        status = page.locator("#restore_status").inner_text()
        table = page.locator("#restore_table").inner_text()
        assert "Estimated kernel" in status and "confidence" in status and "each channel restored" in status
        assert "Unrolled (knows K)" in table and "TV" in table and "PSNR" not in table
        assert not page.locator("#lab_results").is_visible()  # no ground truth, so none of the lab's metrics
        page.screenshot(path=str(ARTIFACTS / f"restore_{width}x{height}.png"), full_page=False)
        page.locator("#restore_panel").first.screenshot(path=str(ARTIFACTS / f"restore_panel_{width}x{height}.png"))
        browser.close()
