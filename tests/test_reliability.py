"""Hostile inputs: every kind of broken or odd image gives a result or a clear message, never a traceback; the
loader survives fuzzing; the server serves no local file it need not."""

from __future__ import annotations

import io
import struct
import urllib.error
import urllib.request
import zlib

import gradio as gr
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from recon_demo.lab.blur import Lab
from recon_demo.lab.setting import Setting, SettingError
from recon_demo.ui._images import accept_upload
from recon_demo.ui._setting import control_values
from recon_demo.ui.reconstruct import render_setting

RNG = np.random.default_rng(0)


def _save(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height but holds almost no data (a decompression bomb's front)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def _exif_rotated() -> bytes:
    img = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8)[None] * 6, (20, 1)))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° on display
    return _save(img, "JPEG", exif=exif)


def _gif() -> bytes:
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (10, 250)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:])


GOOD = {
    "1x1": _save(Image.fromarray(np.full((1, 1), 128, np.uint8))),
    "7x7": _save(Image.fromarray(RNG.integers(0, 255, (7, 7), dtype=np.uint8))),
    "4000x16": _save(Image.fromarray(RNG.integers(0, 255, (16, 4000), dtype=np.uint8))),
    "16-bit": _save(Image.fromarray(RNG.integers(0, 65535, (50, 60), dtype=np.uint16))),
    "RGBA": _save(Image.fromarray(RNG.integers(0, 255, (30, 40, 4), dtype=np.uint8))),
    "palette": _save(Image.fromarray(RNG.integers(0, 255, (30, 40, 3), dtype=np.uint8)).convert("P")),
    "CMYK": _save(Image.new("CMYK", (40, 30), (10, 20, 30, 40)), "JPEG"),
    "EXIF-rotated": _exif_rotated(),
    "animated GIF": _gif(),
}
BAD = {
    "empty": (b"", "the file is empty"),
    "random bytes": (RNG.bytes(3000), "no image format known here"),
    "truncated PNG": (GOOD["16-bit"][:200], "truncated"),
    "truncated JPEG": (GOOD["CMYK"][: len(GOOD["CMYK"]) // 2], "(?i)truncated"),
    "30000² bomb": (_png_header(30000, 30000), "limit is 40,000,000 pixels"),
    "8000² image": (_png_header(8000, 8000), "8000×8000 pixels; the limit is 40,000,000 pixels"),
    "DICOM without pixel data": (b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\x00", "DICOM"),
}


@pytest.fixture(scope="module")
def fresh_lab(lab) -> Lab:
    return Lab(lab.engine)


@pytest.mark.parametrize("kind", GOOD)
def test_odd_but_valid_images_give_a_result(fresh_lab, kind):
    update, box, note = accept_upload(fresh_lab, GOOD[kind])
    key = update["value"]
    assert box is None and note.startswith("✓ Using")  # the upload box emptied for the next file
    x = fresh_lab.x_true(key)
    assert x.shape == (1, 1, 256, 256) and 0 <= float(x.min()) and float(x.max()) <= 1
    outputs = render_setting(fresh_lab, *control_values(Setting.of(image=key, models=("cnn", "wiener"))))[3]
    assert [c.split(":")[0] for _, c in outputs] == ["ground truth", "measurement", "CNN", "Wiener"]


def test_exif_orientation_and_the_first_gif_frame_are_honoured(fresh_lab):
    rotated = fresh_lab.x_true(fresh_lab.add_upload(GOOD["EXIF-rotated"]))[0, 0]
    assert float(rotated[0].std()) < float(rotated[:, 0].std())  # the ramp now runs down, not across
    gif = fresh_lab.x_true(fresh_lab.add_upload(GOOD["animated GIF"]))
    assert float(gif.mean()) < 0.2  # frame 0 is dark, frame 1 bright


@pytest.mark.parametrize("kind", BAD)
def test_broken_images_give_a_clear_message(fresh_lab, kind):
    data, message = BAD[kind]
    with pytest.warns(UserWarning, match=message) as heard:  # gr.Warning outside an event: a Python warning
        update, box, note = accept_upload(fresh_lab, data)
    assert update == gr.update()  # the image in use stays; no error state on the Image menu
    assert box is None and note.startswith("⚠ **Cannot use") and "The image in use stays" in note  # the box emptied
    text = str(heard[0].message)
    assert text.startswith("cannot use that file: ") and "Traceback" not in text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=4096))
def test_fuzz_random_bytes(fresh_lab, data):
    try:
        x = fresh_lab.x_true(fresh_lab.add_upload(data))
    except ValueError:
        return  # refused with a message: fine
    assert x.shape == (1, 1, 256, 256) and bool(x.isfinite().all())


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
FORMATS = ["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(MODES), fmt=st.sampled_from(FORMATS), w=st.integers(1, 80), h=st.integers(1, 80),
       seed=st.integers(0, 2**16), cut=st.floats(0.0, 1.0))  # fmt: skip
def test_fuzz_pil_made_variants(fresh_lab, mode, fmt, w, h, seed, cut):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode) if mode != "F" else Image.fromarray(
        rng.normal(size=(h, w)).astype(np.float32)
    )
    try:
        data = _save(img, fmt)
    except (OSError, ValueError, KeyError):
        return  # PIL cannot write this mode in this format: nothing to test
    data = data[: max(0, int(len(data) * cut))] if cut < 0.5 else data  # half the cases are truncated
    try:
        x = fresh_lab.x_true(fresh_lab.add_upload(data))
    except ValueError as err:
        assert str(err)
        return
    assert x.shape == (1, 1, 256, 256) and bool(x.isfinite().all()) and 0 <= float(x.min()) and float(x.max()) <= 1


@pytest.mark.parametrize(
    "change, message",
    [({"angle": float("nan")}, "angle"), ({"angle": float("inf")}, "angle"), ({"noise": -1}, "noise"), ({"kernel_size": 10**9}, "kernel size"),
     ({"kernel_size": 0}, "kernel size"), ({"kernel_size": -3}, "kernel size"), ({"models": ("cnn", "nope")}, "unknown model"),
     ({"regime": "mayo"}, "regime"), ({"seed": 2**40}, "seed"), ({"image": "/etc/passwd"}, "unknown image")],
)  # fmt: skip
def test_parameters_from_anywhere_are_validated(lab, change, message):
    values = {**Setting().flat(), **change}
    with pytest.raises(gr.Error, match=message):
        render_setting(lab, *[list(v) if isinstance(v, tuple) else v for v in values.values()])


@pytest.fixture(scope="module")
def server(lab):
    from recon_demo.ui import build_app, queue_settings

    app = build_app(lab)
    app.queue(**queue_settings()).launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield app.local_url
    app.close()


@pytest.mark.parametrize("path", ["/etc/passwd", "app.py", "README.md", "../README.md", "weights/manifest.json",
                                  "recon_demo/lab/blur.py", "%2Fetc%2Fpasswd"])  # fmt: skip
def test_the_server_serves_no_local_file(server, path):
    for prefix in ("gradio_api/file=", "file="):
        try:
            with urllib.request.urlopen(server + prefix + path, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            assert err.code in (403, 404), err.code
            continue
        assert b"root:" not in body and b"import" not in body and b"checkpoints" not in body, (prefix, path, body[:200])


# ---------------------------------------------------------------------------------------------- checkpoints

from recon_demo.ui.reconstruct import accept_checkpoint  # noqa: E402


class _RunsCode:
    """Unpickling this object would create the marker file: a checkpoint that tries to run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_lectures_own_checkpoint_can_be_uploaded(fresh_lab, course_dir):
    update, message = accept_checkpoint(fresh_lab, "cnn", str(course_dir / "CNN.pth"), ["wiener"])
    key = update["value"][-1]
    assert key.startswith("own:cnn:") and update["value"] == ["wiener", key] and "every key and shape fits" in message
    assert (key, "CNN (your checkpoint)") in [(v, label) for label, v in update["choices"]]
    result = fresh_lab.run(Setting.of(image="camera", models=("wiener", key)))
    mine = result.by_name(key)
    # the same numbers as the engine gives the file directly
    direct = fresh_lab.engine.reconstruct(fresh_lab.measurement(Setting.of(image="camera")), ["cnn"],
                                          checkpoints={"cnn": course_dir / "CNN.pth"})[0]  # fmt: skip
    assert mine.label == "CNN (your checkpoint)" and np.array_equal(mine.image, direct.image)
    assert key in result.activations


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(fresh_lab, tmp_path):
    import pickle

    marker = tmp_path / "ran.txt"
    evil = tmp_path / "CNN.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": _RunsCode(marker)}))
    with pytest.raises(gr.Error, match="not a tensor checkpoint that can be read safely"):
        accept_checkpoint(fresh_lab, "cnn", str(evil), [])
    assert not marker.exists()


@pytest.mark.parametrize(
    "name, data, arch, message",
    [
        ("model.txt", b"hello", "cnn", r"a checkpoint is a \.pth, \.pt, \.safetensors file, not \.txt"),
        ("model.pth", b"", "cnn", "not a tensor checkpoint"),
        ("model.pth", b"\x00" * 100, "cnn", "not a tensor checkpoint"),
        ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "cnn", "does not fit SimpleCNN"),
        ("model.pth", None, "resnet", "unknown architecture 'resnet'"),
    ],
)
def test_bad_checkpoints_give_a_clear_message(fresh_lab, tmp_path, name, data, arch, message):
    path = tmp_path / name
    path.write_bytes(data if data is not None else b"x")
    with pytest.raises(gr.Error, match=message):
        accept_checkpoint(fresh_lab, arch, str(path), [])


def test_a_checkpoint_of_another_architecture_names_the_mismatch(fresh_lab, tmp_path):
    import torch

    from recon_demo.models import create_model

    torch.save(create_model("rescnn", n_filters=8).state_dict(), tmp_path / "small.pth")
    with pytest.raises(gr.Error, match=r"does not fit SimpleCNN \(cnn\): wrong shapes conv1.bias \(8,\) \(expected \(32,\)\)"):
        accept_checkpoint(fresh_lab, "cnn", str(tmp_path / "small.pth"), [])


def test_an_oversized_checkpoint_is_refused_unread(fresh_lab, tmp_path):
    big = tmp_path / "big.pth"
    with open(big, "wb") as f:
        f.truncate(40 * 1024 * 1024)  # sparse: 40 MB declared, nothing written
    with pytest.raises(gr.Error, match="uploads are limited to 32 MB"):
        accept_checkpoint(fresh_lab, "cnn", str(big), [])


def test_a_forgotten_checkpoint_says_so(fresh_lab):
    with pytest.raises(SettingError, match="no longer on the server"):
        fresh_lab.run(Setting.of(models=("own:cnn:" + "0" * 40,)))
