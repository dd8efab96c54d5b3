"""End to end in a real browser: Debian's Chromium driven by Playwright against `python app.py` on loopback.

Open the page, pick an example, select two models, move a slider, and see reconstructions and a metrics table
with numbers; then run a 20-step training and see its curve. Screenshots go to ``RECON_ARTIFACTS`` (default
``test-artifacts/``). The time from slider release to updated panels is printed, not asserted. Without
Chromium or Playwright the tests skip and say why (`.ci/run` installs both).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from recon_demo.serving.loadtest import start_app, stop_app
from tests._proc import cpu_over, log_size, wait_for_line

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("RECON_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (as .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def weights_dir(trained_weights, tmp_path_factory) -> Path:
    """The briefly trained CNNs, and the shipped CT checkpoints as they are."""
    from recon_demo.checkpoints import Manifest

    folder = tmp_path_factory.mktemp("browser-weights")
    manifest = Manifest.load(folder)
    for source in (Manifest.load(trained_weights), Manifest.load()):
        for entry in source.entries:
            if source.weights_dir == trained_weights or entry.task == "ct":
                shutil.copy(entry.path(source.weights_dir), folder / entry.file)
                manifest.upsert(entry)
    return folder


@pytest.fixture(scope="module")
def app_server(weights_dir, browser):
    log = open(ARTIFACTS.mkdir(parents=True, exist_ok=True) or ARTIFACTS / "app.log", "w")
    try:
        proc, url = start_app(weights_dir, log=log, timeout=90, env={"RECON_DEVICE": "cpu"})
    except RuntimeError as err:
        pytest.fail(f"{err}; see {ARTIFACTS / 'app.log'}")
    yield url, proc.pid
    stop_app(proc, timeout=20)
    log.close()


CAPTIONS = "[...document.querySelectorAll('#outputs .caption-label')].map(e => e.innerText)"


@pytest.fixture(scope="module")
def app_url(app_server) -> str:
    return app_server[0]


def _captions(page) -> list[str]:
    return page.locator("#outputs .caption-label").all_inner_texts()


def test_compare_models_in_the_browser(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    # pick an example from the gallery
    page.locator("#examples").get_by_text("moon", exact=True).click()
    page.wait_for_function("document.querySelector('#image input').value.startsWith('moon')", timeout=30_000)
    # select two models, TV and Richardson-Lucy, beside CNN (trained here); drop UNet and Wiener: three models
    models = page.locator("#models")
    for label, on in (("CNN", True), ("Richardson-Lucy", True), ("TV", True), ("UNet", False), ("Wiener", False)):
        box = models.get_by_label(label, exact=True)
        if box.is_checked() != on:
            box.click()
            page.wait_for_timeout(300)
    page.wait_for_function(
        f"{CAPTIONS}.map(c => c.split(':')[0]).join('|') === 'ground truth|measurement|CNN|Richardson-Lucy|TV'", timeout=60_000
    )
    # move the angle slider with the mouse (press and release on its track); time release → updated panels
    track = page.locator("#angle input[type=range]")
    track.scroll_into_view_if_needed()
    bb = track.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] * 0.3, bb["y"] + bb["height"] / 2)
    page.mouse.down()
    released = time.perf_counter()
    page.mouse.up()
    page.wait_for_function("document.querySelector('#angle input[type=number]').value !== '20'", timeout=10_000)
    angle = page.locator("#angle input[type=number]").input_value()
    page.wait_for_function(f"{CAPTIONS}.some(c => c.includes('@ {angle}°'))", timeout=60_000)
    latency = time.perf_counter() - released
    print(f"\nslider release → updated panels (CNN, Richardson-Lucy, TV; angle {angle}°): {latency * 1000:.0f} ms")
    captions = _captions(page)
    assert [c.split(":")[0] for c in captions] == ["ground truth", "measurement", "CNN", "Richardson-Lucy", "TV"], captions
    assert all(re.search(r"\d+\.\d+ dB", c) for c in captions[2:]), captions
    table = page.locator("#metrics").inner_text()
    assert all(name in table for name in ("Measurement", "CNN", "Richardson-Lucy", "TV"))
    assert re.search(r"CNN.*?\d+\.\d{3}", table, re.S), table
    assert page.locator("#psf img").count() == 1
    page.screenshot(path=str(ARTIFACTS / "reconstruct.png"), full_page=True)
    # the error maps and the link to this setting
    page.locator("#show_errors input").check()
    page.wait_for_function(f"{CAPTIONS}.some(c => c.endsWith('|x_rec − x_true|'))", timeout=30_000)
    page.locator("#share").click()
    page.wait_for_function("document.querySelector('#link textarea, #link input').value.includes('image=moon')", timeout=30_000)
    link = page.locator("#link textarea, #link input").first.input_value()
    assert f"angle={angle}" in link and "models=cnn%2Crl%2Ctv" in link
    page.close()


TILES = """(gallery) => [...document.querySelectorAll(gallery + ' .gallery-item')].map(e => {
    const img = e.querySelector('img').getBoundingClientRect(), cap = e.querySelector('.caption-label');
    return {left: img.left, right: img.right, top: img.top, width: img.width,
            cut: cap.scrollWidth > cap.clientWidth + 1 || cap.scrollHeight > cap.clientHeight + 1, text: cap.innerText};
})"""


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)], ids=["projector", "phone"])
def test_results_are_legible_on_a_projector_and_a_phone(browser, app_url, width, height):
    # the app's CSS reaches the page (gradio 6 takes it in launch()): whole captions, tiles sized for the screen
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 4", timeout=60_000)
    page.wait_for_timeout(500)  # the default CNN, UNet (no weights in this test) and Wiener: 4 pictures
    tiles = page.evaluate(TILES, "#outputs")
    page.screenshot(path=str(ARTIFACTS / f"results-{width}.png"))
    assert not any(t["cut"] for t in tiles), tiles
    assert any("dB" in t["text"] for t in tiles) and "measurement: motion 9 @ 20° (ippy), δ 0.01" in [t["text"] for t in tiles]
    assert all(0 <= t["left"] and t["right"] <= width for t in tiles), tiles  # no tile leaves the screen
    if width >= 1440:
        assert min(t["width"] for t in tiles) >= 240, tiles
        page.locator("#compare").scroll_into_view_if_needed()
        box = page.locator("#compare img").first.bounding_box()  # the before/after slider zooms under the wheel
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
        for _ in range(6):
            page.mouse.wheel(0, -100)
        page.wait_for_function("new DOMMatrix(getComputedStyle(document.querySelector('#compare img')).transform).a > 1.1",
                               timeout=10_000)  # fmt: skip
    else:
        assert tiles[0]["top"] < height  # the first result is on the first screen, above the controls
        assert min(t["width"] for t in tiles) >= 140, tiles
        page.locator("#to_controls a").click()  # the floating button takes a phone to the settings, and back
        page.wait_for_function("Math.abs(document.querySelector('#controls_col').getBoundingClientRect().top) < 60", timeout=10_000)
        page.locator("#to_results a").click()
        page.wait_for_function("Math.abs(document.querySelector('#results_col').getBoundingClientRect().top) < 60", timeout=10_000)
    # the error maps: on the same tiles, switched, whole captions, their colour bar drawn above them, not as a tile
    page.locator("#show_errors input").check()
    page.wait_for_function(f"{CAPTIONS}.filter(c => c.endsWith('− x_true|')).length >= 2", timeout=60_000)
    page.wait_for_timeout(300)
    maps = page.evaluate(TILES, "#outputs")
    assert not any(t["cut"] for t in maps) and all(0 <= t["left"] and t["right"] <= width for t in maps), maps
    assert min(t["width"] for t in maps) >= (240 if width >= 1440 else 140), maps
    assert all(t["text"].endswith("− x_true|") for t in maps[1:]) and page.locator("#error_scale .bar").is_visible()
    page.locator("#show_errors input").uncheck()  # and back to the pictures
    page.wait_for_function(f"{CAPTIONS}.every(c => !c.endsWith('− x_true|'))", timeout=30_000)
    page.close()


def test_a_bad_upload_says_why_and_keeps_the_image(browser, app_server, tmp_path):
    url, _ = app_server
    log = ARTIFACTS / "app.log"
    start = log_size(log)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    bad = tmp_path / "notes.png"
    bad.write_text("these are not pixels")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.get_by_text("cannot use that file: not a readable image").first.wait_for(timeout=30_000)
    assert page.locator("#image input").input_value().startswith("camera")  # the image in use stays
    page.wait_for_timeout(1000)
    assert "Error" not in page.locator("#image").inner_text()  # no red "Error" pill on the Image menu
    line = wait_for_line(log, r"upload refused: not a readable image", 30, start)
    assert "Traceback" not in log.read_text()[start:], line
    # the refused file does not stay in the box as if accepted: it is empty, the reason beside it
    assert "Cannot use notes.png" in page.locator("#upload_note").inner_text()
    assert "notes.png" not in page.locator("#upload").inner_text()
    # and the next file goes straight in, no × first
    from PIL import Image

    good = tmp_path / "ramp.png"
    Image.fromarray((np.add.outer(np.arange(96), np.arange(128)) % 256).astype(np.uint8)).save(good)
    page.locator("#upload input[type=file]").set_input_files(str(good))
    page.wait_for_function("document.querySelector('#image input').value === 'your upload'", timeout=30_000)
    page.wait_for_function("document.querySelector('#upload_note').innerText.includes('Using ramp.png')", timeout=30_000)
    assert "ramp.png" not in page.locator("#upload").inner_text()
    page.close()


FIRST_SCREEN = """() => {
    const inside = e => { const r = e.getBoundingClientRect(); return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight; };
    return {angle: inside(document.querySelector('#angle')),
            tiles: [...document.querySelectorAll('#outputs .thumbnail-item img')].filter(inside).length};
}"""
TYPE = r"""() => {
    const own = e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());  // the element holding the words
    const sizes = s => [...document.querySelectorAll(s)].filter(e => e.offsetParent && own(e))
        .map(e => parseFloat(getComputedStyle(e).fontSize));
    const luminance = c => { const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(v => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
    const hints = [...document.querySelectorAll('.info-text')].filter(e => e.offsetParent);
    return {labels: sizes('#controls_col [data-testid=block-info]'), captions: sizes('#outputs .caption-label'),
            cells: sizes('#metrics td, #metrics td *'), hint_sizes: hints.map(e => parseFloat(getComputedStyle(e).fontSize)),
            hint_contrast: hints.map(e => (1.05) / (luminance(getComputedStyle(e).color) + 0.05))};
}"""


def test_the_first_screen_holds_the_controls_and_the_results_in_type_a_class_reads(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 4", timeout=60_000)
    page.wait_for_timeout(500)
    seen = page.evaluate(FIRST_SCREEN)
    page.screenshot(path=str(ARTIFACTS / "first-screen-1440.png"))
    assert seen["angle"] and seen["tiles"] >= 3, seen  # move the angle and watch three pictures, no scrolling
    sizes = page.evaluate(TYPE)
    assert sizes["labels"] and min(sizes["labels"]) >= 16, sizes
    assert min(sizes["captions"]) >= 16 and min(sizes["cells"]) >= 16, sizes
    assert all(h >= 14 for h in sizes["hint_sizes"]) and all(c >= 4.5 for c in sizes["hint_contrast"]), sizes
    # presentation: the switch (or ?present=1) hides the upload and the examples and enlarges the captions
    page.locator("#present").click()
    page.wait_for_function("document.documentElement.classList.contains('present')", timeout=10_000)
    assert not page.locator("#upload").is_visible() and not page.locator("#examples").is_visible()
    assert min(page.evaluate(TYPE)["captions"]) > 16
    page.locator("#theme_switch").click()  # light / dark
    page.wait_for_function("document.body.classList.contains('dark')", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "presentation-dark-1440.png"))
    page.goto(app_url + "?present=1&image=moon")
    page.wait_for_function("document.documentElement.classList.contains('present')", timeout=30_000)
    page.wait_for_function("document.querySelector('#image input').value.startsWith('moon')", timeout=30_000)
    assert not page.locator("#url_note").is_visible()  # present=1 is no ignored parameter
    page.close()


def test_reset_identity_kernel_and_the_slide(browser, app_url, tmp_path):
    from PIL import Image

    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(app_url + "?angle=45&models=cnn,wiener")
    page.wait_for_function(f"{CAPTIONS}.some(c => c.includes('@ 45°'))", timeout=60_000)
    page.locator("#show_errors input").check()
    box = page.locator("#kernel_size input[type=number]")
    box.fill("1")
    box.press("Enter")  # the identity: its PSF drawn, and the page says "identity", not "inf"
    page.wait_for_function("document.querySelector('#status').innerText.includes('identity')", timeout=60_000)
    assert page.locator("#psf img").count() == 1 and "inf" not in page.locator("#metrics").inner_text()
    # the slide of this comparison, downloaded: one 1920×1080 PNG
    page.locator("#slide").click()
    link = page.locator("#slide_file a").first
    link.wait_for(timeout=60_000)
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "slide.png"
    download.value.save_as(path)
    assert Image.open(path).size == (1920, 1080)
    # Reset: every control back to its default (the angle too, not only the blur), the error maps off
    page.locator("#reset").click()
    page.wait_for_function(f"{CAPTIONS}.some(c => c.startsWith('measurement: motion 9 @ 20°'))", timeout=60_000)
    assert page.locator("#angle input[type=number]").input_value() == "20"
    assert not page.locator("#show_errors input").is_checked()
    page.close()


def test_inspect_fills_itself_when_opened_and_when_a_choice_changes(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    page.get_by_role("tab", name="Inspect").click()  # no button pressed
    page.wait_for_function("document.querySelector('#rf_text').innerText.includes('all 32 channels')", timeout=60_000)
    assert page.locator("#channels img").count() == 32
    page.locator("#inspect_layer input").click()
    page.get_by_role("option", name="conv 2", exact=True).click()
    page.wait_for_function("document.querySelector('#rf_text').innerText.includes('conv 2 (')", timeout=60_000)
    page.close()


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)], ids=["projector", "phone"])
def test_inspect_shows_the_unrolled_networks_estimates_as_whole_tiles(browser, app_url, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    page.get_by_role("tab", name="Inspect").click()
    page.wait_for_function("document.querySelector('#rf_text').innerText.includes('all 32 channels')", timeout=60_000)
    page.locator("#inspect_model input").click()
    page.get_by_role("option", name="Unrolled (knows K)").click()
    page.wait_for_function("document.querySelector('#rf_text').innerText.includes('Its estimates')", timeout=120_000)
    page.wait_for_function("document.querySelectorAll('#iterates .caption-label').length >= 3", timeout=60_000)
    page.locator("#iterates").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    tiles = page.evaluate(TILES, "#iterates")
    page.screenshot(path=str(ARTIFACTS / f"iterates-{width}.png"))
    assert [t["text"].split(":")[0] for t in tiles] == [f"x_{k}" for k in range(len(tiles))], tiles
    assert not any(t["cut"] for t in tiles) and all(0 <= t["left"] and t["right"] <= width for t in tiles), tiles
    assert min(t["width"] for t in tiles) >= (200 if width >= 1440 else 140), tiles  # two or three to a row
    page.close()


def test_ct_tab_shows_the_sinogram_and_four_reconstructions(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="CT", exact=True).click()  # opening the tab shows the default setting
    # the table's cells, not its text: while it runs, the progress bar over the table names each method too
    page.wait_for_function("[...document.querySelectorAll('#ct_metrics [role=gridcell]')].some(c => c.innerText.includes('SIRT'))",
                           timeout=90_000)  # fmt: skip
    table = page.locator("#ct_metrics").inner_text()
    assert all(name in table for name in ("FBP", "SIRT", "FBP + Residual UNet", "Unrolled (knows K)")), table
    assert re.search(r"FBP \+ Residual UNet.*?\d+\.\d{3}", table, re.S), table
    assert page.locator("#ct_sinogram img").count() == 1
    captions = page.locator("#ct_outputs .caption-label").all_inner_texts()
    assert [c.split(":")[0] for c in captions] == ["ground truth", "FBP", "SIRT", "FBP + Residual UNet", "Unrolled (knows K)"], captions
    tiles = page.evaluate(TILES, "#ct_outputs")  # as the Reconstruct tab's: whole captions, tiles a projector shows
    assert not any(t["cut"] for t in tiles) and min(t["width"] for t in tiles) >= 240, tiles  # (240 px: three a row beside the controls)
    assert "60 angles" in page.locator("#ct_status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "ct.png"), full_page=True)
    page.close()


def test_ct_recomputes_on_a_typed_angle_count_and_on_the_arrow_keys(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(app_url)
    page.get_by_role("tab", name="CT", exact=True).click()
    page.wait_for_function("document.querySelector('#ct_status').innerText.includes('60 angles')", timeout=90_000)
    box = page.locator("#ct_angles input[type=number]")
    box.fill("45")
    box.press("Enter")  # a typed value with Enter, as lesson 7 asks the class to move it
    page.wait_for_function("document.querySelector('#ct_status').innerText.includes('45 angles')", timeout=90_000)
    page.locator("#ct_angles input[type=range]").focus()
    page.keyboard.press("ArrowRight")  # one step of the slider by the keyboard
    page.wait_for_function("document.querySelector('#ct_status').innerText.includes('46 angles')", timeout=90_000)
    page.close()


def test_the_link_restores_a_setting(browser, app_url):
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(app_url + "?image=coffee&angle=45&size=7&noise=0.02&models=cnn,wiener&colour=red")
    page.wait_for_function(f"{CAPTIONS}.some(c => c.includes('motion 7 @ 45°'))", timeout=60_000)
    assert [c.split(":")[0] for c in _captions(page)] == ["ground truth", "measurement", "CNN", "Wiener"]
    # the note about the ignored parameter stays after the reconstruction's status arrives, until dismissed
    page.wait_for_timeout(1500)
    assert "ignored the unknown URL parameter 'colour'" in page.locator("#url_note").inner_text()
    page.locator("#dismiss_note").click()
    page.wait_for_function("!document.querySelector('#url_note') || document.querySelector('#url_note').offsetParent === null",
                           timeout=10_000)  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
    page.close()


def test_arrow_keys_and_enter_recompute_and_the_results_are_marked_stale_meanwhile(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(app_url + "?models=cnn")
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    page.locator("#angle input[type=range]").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    # marked in the page, before the server answers (on a loaded machine the browser takes a moment to run the mark)
    page.wait_for_function("document.querySelector('#results_col').classList.contains('stale')", timeout=5_000, polling="raf")
    page.wait_for_function(f"{CAPTIONS}.some(c => c.includes('@ 23°'))", timeout=60_000)
    page.wait_for_function("!document.querySelector('#results_col').classList.contains('stale')", timeout=10_000)
    box = page.locator("#noise input[type=number]")
    box.fill("0.03")
    box.press("Enter")
    page.wait_for_function(f"{CAPTIONS}.some(c => c.includes('δ 0.03'))", timeout=60_000)
    page.locator("#kernel_size input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"{CAPTIONS}.some(c => c.includes('motion 11 @ 23°'))", timeout=60_000)
    page.close()


SELECTED_TAB = "[...document.querySelectorAll('button[role=tab]')].filter(b => b.getAttribute('aria-selected') === 'true')[0]?.innerText"


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)], ids=["projector", "phone"])
def test_a_lesson_sets_the_controls_opens_its_tab_and_its_link_does_too(browser, app_url, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    page.locator("#lesson input").click()
    page.get_by_role("option", name="2. The first networks: CNN and ResCNN").click()
    page.wait_for_function(f"{CAPTIONS}.map(c => c.split(':')[0]).join('|') === 'ground truth|measurement|CNN'", timeout=60_000)
    assert page.locator("#models").get_by_label("ResCNN", exact=True).is_checked()  # (no ResCNN weights in this test)
    assert not page.locator("#models").get_by_label("Wiener", exact=True).is_checked()
    assert "learns only the correction" in page.locator("#lesson_text").inner_text()
    page.locator("#lesson input").click()
    page.get_by_role("option", name="1. The blur, and why undoing it is ill-posed").click()
    page.wait_for_function(f"{SELECTED_TAB} === 'Inspect'", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#channels img').length >= 8", timeout=60_000)  # filled for the lesson
    page.screenshot(path=str(ARTIFACTS / f"lesson_{width}.png"))
    if width >= 1440:  # the lesson is about the kernel's Fourier magnitude: it opens on it, above the fold
        page.evaluate("window.scrollTo(0, 0)")
        box = page.locator("#spectrum img").bounding_box()
        assert box and box["y"] + box["height"] <= height, box
    href = page.locator("#lesson_text a").get_attribute("href")
    assert href == "?lesson=ill-posed"
    page.goto(app_url + "?lesson=one-operator")
    page.wait_for_function(f"{SELECTED_TAB} === 'Robustness'", timeout=60_000)
    page.wait_for_function("document.querySelector('#sweep_parameter input[value=angle]')?.checked", timeout=30_000)
    # the lesson's sweep runs by itself: the plot is not an empty box waiting for a button
    page.wait_for_function("document.querySelector('#sweep_status').innerText.includes('values of motion angle')", timeout=120_000)
    page.goto(app_url + "?lesson=classical")  # "compare the error maps": the lesson shows them
    page.wait_for_function(f"{CAPTIONS}.filter(c => c.endsWith('|x_rec − x_true|')).length >= 2", timeout=60_000)
    assert page.locator("#show_errors input").is_checked() and page.locator("#error_scale .bar").is_visible()
    page.close()


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)], ids=["projector", "phone"])
def test_the_lessons_beyond_the_lecture_iterations_ct_steps_and_no_ground_truth(browser, app_url, width, height):
    """Lessons 10-12 and their views: the iterations (the slider walks the iterates), CT step by step (a click on the
    sinogram draws its ray, a click on the image its sinusoid, a preset sets the window), fine-tuning without ground
    truth beside the supervised run."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(app_url + "?lesson=stop-early")
    page.wait_for_function(f"{SELECTED_TAB} === 'Iterations'", timeout=60_000)
    page.wait_for_function("document.querySelector('#it_status')?.innerText.includes('best iterate')", timeout=180_000)
    status = page.locator("#it_status").inner_text()
    assert "δ 0.05: best iterate" in status and "lost by going on" in status, status
    tiles = "[...document.querySelectorAll('#it_pictures .caption-label')].map(e => e.innerText)"
    page.wait_for_function(f"{tiles}.length === 4", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / f"iterations_{width}.png"), full_page=True)
    page.locator("#it_k input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"{tiles}.some(c => c.includes('iteration 21:'))", timeout=30_000)
    assert "Landweber" in page.locator("#lesson_text").inner_text()

    page.goto(app_url + "?lesson=fbp-steps")
    page.wait_for_function(f"{SELECTED_TAB} === 'CT'", timeout=60_000)
    steps = "[...document.querySelectorAll('#ct_steps .caption-label')].map(e => e.innerText)"
    page.wait_for_function(f"{steps}.join('|') === '1. Sinogram|2. Back-projection Aᵀy|3. Filtered sinogram|4. FBP'", timeout=120_000)
    sinogram = page.locator("#ct_link_sinogram img")
    sinogram.scroll_into_view_if_needed()
    sinogram.click(position={"x": 40, "y": 60})
    page.wait_for_function("document.querySelector('#ct_link_note').innerText.includes('detector bin')", timeout=30_000)
    page.locator("#ct_link_image img").click(position={"x": 50, "y": 50})
    page.wait_for_function("document.querySelector('#ct_link_note').innerText.includes('Pixel (row')", timeout=30_000)
    page.locator("#ct_preset").get_by_label("Bone", exact=True).click()
    page.wait_for_function("document.querySelector('#ct_width input[type=number]').value === '1800'", timeout=30_000)
    assert page.locator("#ct_level input[type=number]").input_value() == "400"
    page.wait_for_function("!document.querySelector('#ct_link_image .pending, #ct_steps .pending')", timeout=30_000)
    page.locator("#ct_steps").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"ct_steps_{width}.png"), full_page=True)

    page.goto(app_url + "?lesson=no-ground-truth")
    page.wait_for_function(f"{SELECTED_TAB} === 'Train'", timeout=60_000)
    page.locator("#ft_model input").click()
    page.get_by_role("option", name="SimpleCNN", exact=False).first.click()  # the test's weights: a general CNN only
    box = page.locator("#ft_steps input[type=number]")
    box.fill("20")
    box.press("Enter")
    page.locator("#ft_run").click()
    page.wait_for_function("document.querySelector('#ft_status').innerText.includes('On the held-out')", timeout=180_000)
    summary = page.locator("#ft_status").inner_text()
    assert "without ground truth (ei)" in summary and "with ground truth (MSE)" in summary and "Equivariant" in summary
    assert page.locator("#ft_recs .caption-label").count() == 8  # truth, measurement, the start, the two runs, three errors
    page.locator("#ft_curves").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"fine_tune_{width}.png"), full_page=True)
    page.close()


def test_draw_your_own_kernel_and_share_it(browser, app_url):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(app_url + "?models=cnn,wiener")
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    page.locator("#blur").get_by_text("draw your own").click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('Draw the kernel on the pad')", timeout=30_000)
    assert page.locator("#outputs .caption-label").count() >= 3  # the last result stays; no error pills
    # the brush is picked for the student once the pad is shown (on a busy server, later than the status)
    page.wait_for_function("document.querySelector('#psf_pad button[aria-label=\"Brush\"]')?.classList.contains('highlight')",
                           timeout=30_000)  # fmt: skip
    canvas = page.locator("#psf_pad canvas").first
    canvas.scroll_into_view_if_needed()
    bb = canvas.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] * 0.25, bb["y"] + bb["height"] * 0.25)
    page.mouse.down()
    for i in range(1, 16):  # a diagonal stroke
        page.mouse.move(bb["x"] + bb["width"] * (0.25 + 0.03 * i), bb["y"] + bb["height"] * (0.25 + 0.03 * i))
    page.mouse.up()
    page.wait_for_function(f"{CAPTIONS}.some(c => c.startsWith('measurement: drawn 9×9'))", timeout=60_000)
    captions = _captions(page)
    assert any(c.startswith("CNN:") and "⚠" in c for c in captions), captions  # an end-to-end network was not told
    assert any(c.startswith("Wiener:") and "handed the exact kernel" in c for c in captions), captions
    page.screenshot(path=str(ARTIFACTS / "drawn_kernel.png"), full_page=True)
    page.locator("#share").click()
    page.wait_for_function("document.querySelector('#link textarea, #link input').value.includes('psf=')", timeout=30_000)
    link = page.locator("#link textarea, #link input").first.input_value()
    page.goto(link)  # the link restores the drawn kernel
    page.wait_for_function(f"{CAPTIONS}.some(c => c.startsWith('measurement: drawn 9×9'))", timeout=60_000)
    page.close()


def test_train_twenty_steps_and_see_the_curve(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    for elem, value in (("#n_images", "8"), ("#epochs", "10")):  # 10 epochs × 2 batches of 4 = 20 steps
        box = page.locator(f"{elem} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.locator("#size").get_by_label("64").check()
    page.locator("#train").click()
    page.wait_for_function("document.querySelector('#train_status').innerText.startsWith('Done')", timeout=120_000)
    assert "3 configurations" in page.locator("#train_status").inner_text()
    table = page.locator("#train_table").inner_text()
    assert all(label in table for label in ("MSE", "L1", "SSIM")) and "Measurement" in table
    assert "MSE 27.070 dB / SSIM 0.7348" in page.locator("#train_lecture").inner_text()  # the lecture's, as other data
    page.wait_for_function("document.querySelector('#curves svg, #curves canvas') !== null", timeout=30_000)
    _assert_our_legend_shows(page, "#curves_legend", {"MSE", "L1", "SSIM"}, 1400)
    assert page.locator("#train_recs img").count() >= 5  # ground truth, measurement, three reconstructions
    page.wait_for_function("document.querySelector('#figure img')?.naturalWidth > 300", timeout=30_000)  # the figure, inline
    page.screenshot(path=str(ARTIFACTS / "train.png"), full_page=True)
    page.close()


def test_the_sweep_shows_its_progress_while_it_runs(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.wait_for_function("document.querySelectorAll('#outputs .caption-label').length >= 3", timeout=60_000)
    models = page.locator("#models")
    for label, on in (("CNN", True), ("TV", True), ("UNet", False), ("Wiener", False)):  # TV: a sweep of seconds
        box = models.get_by_label(label, exact=True)
        if box.is_checked() != on:
            box.click()
            page.wait_for_timeout(300)
    page.get_by_role("tab", name="Robustness").click()
    page.locator("#sweep_parameter").get_by_label("motion angle (°)").check()
    page.locator("#sweep").click()
    # the progress bar names the value being computed ("angle = 15"), then the plot and the note arrive
    page.wait_for_function("/angle = \\d+/.test(document.querySelector('#sweep_plot').closest('.column, .gap, body').innerText)",
                           timeout=60_000, polling=50)  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "sweep-progress.png"))
    page.wait_for_function("document.querySelector('#sweep_status').innerText.includes('values of motion angle')", timeout=120_000)
    # every curve is named in a legend that shows (not cut by the plot's height), the axis says what moved
    page.wait_for_function("document.querySelector('#sweep_plot img')?.naturalWidth >= 1200", timeout=30_000)
    # the sweep's own legend under the plot: every series, in type a class can read, wrapping inside the screen
    _assert_our_legend_shows(page, "#sweep_legend", {"CNN (course)", "TV", "Measurement (no reconstruction)", "your setting (20)"}, 1400)
    page.screenshot(path=str(ARTIFACTS / "sweep.png"), full_page=True)
    # another parameter: the sweep runs again and its marker is drawn (in the figure, named in the legend)
    first = page.locator("#sweep_plot img").get_attribute("src")
    page.locator("#sweep_parameter").get_by_label("kernel size (pixels)").check()
    page.wait_for_function("document.querySelector('#sweep_status').innerText.includes('values of kernel size')", timeout=120_000)
    page.wait_for_function(f"document.querySelector('#sweep_plot img')?.src !== {first!r}", timeout=30_000)
    _assert_our_legend_shows(page, "#sweep_legend", {"CNN (course)", "your setting (9)"}, 1400)
    page.close()


def _assert_our_legend_shows(page, legend: str, names: set[str], width: int) -> None:
    """The legend of our own under a plot: every series named, in type a class can read, inside the screen."""
    items = page.evaluate("""(legend) => [...document.querySelectorAll(legend + ' .legend-item')].map(e => {
        const r = e.getBoundingClientRect();
        return {text: e.innerText, right: r.right, size: parseFloat(getComputedStyle(e).fontSize), height: r.height};
    })""", legend)  # fmt: skip
    assert {i["text"] for i in items} >= names, items
    assert all(i["size"] >= 14 and 0 < i["height"] and i["right"] <= width for i in items), items


def test_closing_the_page_stops_its_training(browser, app_server):
    # What is checked is what the server reports: the study it started ends as "abandoned" once the page is
    # gone. CPU time is printed, and only bounded generously: a loaded machine gives an idle server less CPU.
    url, pid = app_server
    log, start = ARTIFACTS / "app.log", log_size(ARTIFACTS / "app.log")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#epochs input[type=number]").fill("20")
    page.locator("#epochs input[type=number]").press("Enter")
    page.locator("#train").click()
    page.wait_for_function("document.querySelector('#train_status').innerText.startsWith('Training')", timeout=60_000)
    wait_for_line(log, r"loss study started", 30, start)
    page.close()  # the student closes the tab mid-training
    ended = wait_for_line(log, r"loss study (abandoned|cancelled|done)", 60, start)
    assert "abandoned" in ended, ended  # 20 epochs at the default size: far from done when the page closed
    idle = cpu_over(pid, 2.0)
    print(f"\n{ended.split(': ', 1)[1]}; afterwards the server used {idle / 2:.2f} CPU s/s")
    assert idle < 1.0, f"the server still used {idle:.2f} CPU seconds in 2 s after its training ended"


def test_artifacts_are_kept():
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png")) if ARTIFACTS.exists() else []
    if shutil.which("chromium") is None and not CHROMIUM.exists():
        pytest.skip("no browser, no screenshots")
    assert {"reconstruct.png", "train.png", "phone.png", "ct.png", "sweep-progress.png"} <= set(shots)
