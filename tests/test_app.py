"""The app: it builds without launching, each tab's handler works with real models on a small image, and the
named API endpoints answer through gradio_client on a loopback server."""

from __future__ import annotations

import html
import json
import re
import threading
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from recon_demo.activations import conv_layers
from recon_demo.lab.loss_study import LIVE_DEFAULTS
from recon_demo.lab.robustness import FIGURE_PX
from recon_demo.lab.setting import FLAT_FIELDS, Setting, SettingError
from recon_demo.lab.tables import best_cells
from recon_demo.models import create_model
from recon_demo.ui import CSS, build_app, launch_settings, queue_settings, serve
from recon_demo.ui._images import accept_upload
from recon_demo.ui._results import BEST, error_scale_html, tiles
from recon_demo.ui._setting import from_url
from recon_demo.ui.inspector import inspect_outputs
from recon_demo.ui.queue import ClassroomQueue
from recon_demo.ui.reconstruct import drawn_code, render_setting
from recon_demo.ui.robustness import sweep_outputs
from recon_demo.ui.train import RAW, curves, faded, run_study, study_config


def values(**change) -> list:
    setting = Setting.of(**{"image": "moon", "models": ("cnn", "wiener"), **change})
    flat = setting.flat()
    return [list(flat[name]) if name == "models" else flat[name] for name in FLAT_FIELDS]


@pytest.fixture(scope="module")
def app(lab):
    return build_app(lab)


def test_the_blocks_build_without_launching(app):
    assert isinstance(app, gr.Blocks) and not app.is_running
    config = app.get_config_file()
    tabs = [c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"]
    assert tabs == ["Reconstruct", "Inspect", "Iterations", "Train", "Robustness", "CT", "About"]
    named = {d.get("api_name") for d in config["dependencies"] if d.get("api_visibility", "public") == "public"}
    assert {"reconstruct", "train"} <= named
    assert queue_settings() == {"default_concurrency_limit": 2, "max_size": 64}
    values = {c["props"].get("elem_id"): c["props"].get("value") for c in config["components"]}
    assert (values["train_model"], values["size"]) == (LIVE_DEFAULTS["model"], LIVE_DEFAULTS["size"])  # the Train tab's defaults
    assert values["inspect_layer"] == "conv1"  # Inspect names the convolution it shows from the start (the CNN's first)


def test_reconstruct_handler_fills_every_panel(lab):
    psf, status, availability, outputs, acts, scale, left, right, compare, table, downloads, result = render_setting(
        lab, *values(models=["cnn", "rescnn", "tv"])
    )
    assert not scale["visible"]  # the error maps' colour bar only while the tiles show them
    assert psf.dtype == np.uint8 and "Device: **cpu**" in status
    assert "ResCNN**: no course weights shipped yet" in availability
    assert [caption.split(":")[0] for _, caption in outputs] == ["ground truth", "measurement", "CNN", "TV"]
    assert acts["visible"] and [c for _, c in acts["value"]] == ["CNN: first layer"]
    scale_html = error_scale_html()  # the colour bar over the maps: inferno from black to yellow, its ends labelled
    first, last = re.search(r"linear-gradient\(to right, (#\w{6}).*(#\w{6})\)", scale_html).groups()
    assert max(bytes.fromhex(first[1:])) < 8 and min(bytes.fromhex(last[1:])[:2]) > 150 and "≥ 0.25" in scale_html
    assert outputs[-1][1].endswith("(handed the exact kernel)") and "handed the exact kernel" in status
    assert [v for _, v in left["choices"]] == ["x_true", "y_delta", "cnn", "tv"] and left["value"] == "y_delta"
    assert right["value"] == max(("cnn", "tv"), key=lambda n: result.by_name(n).metrics["psnr"])  # the best one
    # each picture is encoded once: the gallery, the slider and the downloads share the files
    assert compare == (outputs[1][0], outputs[-1][0]) and all(Image.open(p).size == (256, 256) for p in compare)
    assert {outputs[2][0], outputs[3][0]} <= set(downloads) and Image.open(acts["value"][0][0]).mode == "L"
    rows = table.data.values.tolist()  # a pandas Styler: the rows, with the best of each column marked
    assert rows[0][0] == "Measurement" and any(row[0] == "CNN" and float(row[2]) > 0 for row in rows)
    assert BEST.split(";")[0] in table.to_html() and best_cells(rows)  # the best cells styled (tables.best_cells)
    assert sorted(p.rsplit("_", 1)[-1] for p in downloads) == ["cnn.png", "metrics.csv", "tv.png"]
    assert result.setting.models == ("cnn", "rescnn", "tv")
    # the error maps are the same tiles, switched: the ground truth first, then |y_delta − x_true| and each |x_rec − x_true|
    _, _, _, maps, _, scale, *_ = render_setting(lab, *values(models=["cnn", "rescnn", "tv"]), show_errors=True)
    assert scale["visible"] and [c for _, c in maps] == ["ground truth", "measurement: |y_delta − x_true|",
                                                         "CNN: |x_rec − x_true|", "TV: |x_rec − x_true|"]  # fmt: skip
    assert maps[2][0].shape == (256, 256, 3) and [c for _, c in tiles(result, show_errors=False)] == [c for _, c in outputs]


def test_the_device_line_says_which_precision_ran(lab, monkeypatch):
    from recon_demo.lab.blur import Lab
    from recon_demo.serving.engine import Engine

    status = render_setting(lab, *values(models=["cnn", "wiener"]))[1]
    assert "Device: **cpu**, float32." in status  # no bf16 here: every network in float32
    bf16 = Lab(Engine("cpu", manifest=lab.engine.manifest, precision="bf16"))
    status, *_, result = render_setting(bf16, *values(models=["cnn", "wiener"]))[1:]
    assert "Device: **cpu**, bf16 for CNN." in status and [r.precision for r in result.reconstructions] == ["bf16", None]
    monkeypatch.setenv("RECON_CPU_BF16", "1")  # native, as on an AVX512-BF16 CPU; the CNN's checkpoint is not checked
    status = render_setting(Lab(Engine("cpu", manifest=lab.engine.manifest)), *values(models=["cnn"]))[1]
    assert "Device: **cpu**, float32." in status


def test_an_identity_kernel_shows_its_psf_and_says_identical(lab):
    psf, status, _, outputs, *_, table, _, result = render_setting(lab, *values(kernel_size=1, noise=0.0, models=["rl"]))
    assert "identity" in status and outputs[1][1].startswith("measurement: identity (kernel size 1)")
    assert psf.max() == 255 and psf.min() == 0 and (psf == 255).mean() < 0.1  # a white dot on black, not a white box
    rows = table.data.values.tolist()
    assert rows[0][:3] == ["Measurement", "0.000000", "identical"]  # no "inf" in the table


def test_reconstruct_handler_refuses_bad_values_with_a_message(lab):
    with pytest.raises(gr.Error, match="kernel size must be odd"):
        render_setting(lab, *values(kernel_size=8))
    with pytest.raises(gr.Error, match="noise must be a number"):
        render_setting(lab, *values(noise=float("nan")))


def test_the_url_sets_the_controls():
    request = SimpleNamespace(query_params={"image": "moon", "angle": "45", "size": "7", "models": "cnn,tv", "noise": "x"})
    *controls, note, dismiss, lesson_key, measured = from_url(request)
    named = dict(zip(list(FLAT_FIELDS), controls))
    assert named["image"] == "moon" and named["angle"] == 45 and named["kernel_size"] == 7 and named["models"] == ["cnn", "tv"]
    assert "ignored noise='x'" in note["value"] and note["visible"] and dismiss["visible"] and lesson_key is None
    assert measured is False
    *_, note, dismiss, _, _ = from_url(SimpleNamespace(query_params={"angle": "45"}))
    assert not note["visible"] and not dismiss["visible"]


def test_a_lesson_sets_the_controls_opens_its_tab_and_has_a_link():
    from recon_demo.lab.lessons import LESSONS, TABS
    from recon_demo.lab.robustness import PARAMETERS
    from recon_demo.ui.lessons import apply, show

    assert len(LESSONS) >= 7
    for key, item in LESSONS.items():
        assert item.tab in TABS and (item.sweep is None or item.sweep in PARAMETERS) and len(item.text) > 60
        *controls, text, tab, sweep, errors, measured = apply(key)
        named = dict(zip(list(FLAT_FIELDS), controls))
        assert named["models"] == list(item.setting().models) and f"(?lesson={key})" in text
        assert tab.selected == item.tab and show(key)[1].selected == item.tab
        if item.sweep:
            assert sweep["value"] == item.sweep
        assert errors == ({"value": True, "__type__": "update"} if item.errors else {"__type__": "update"})
        assert measured == {"value": item.measured, "__type__": "update"}  # a lesson turns the already-blurred mode on or off
    assert LESSONS["classical"].errors  # "compare the error maps": they are shown
    *controls, note, dismiss, key, _ = from_url(SimpleNamespace(query_params={"lesson": "knows-k", "noise": "0.02"}))
    named = dict(zip(list(FLAT_FIELDS), controls))
    assert key == "knows-k" and named["angle"] == 60 and named["noise"] == 0.02 and not note["visible"]  # the link's own values win
    *_, note, _, key, _ = from_url(SimpleNamespace(query_params={"lesson": "nope"}))
    assert key is None and "ignored lesson='nope'" in note["value"]


def test_train_handler_streams_curves_and_ends_with_a_table(lab):
    cfg = study_config(
        ["MSE", "SSIM"],
        "mse + 0.1*fourier",
        "loss_study_cnn",
        2,
        8,
        64,
        Setting.of(kernel_size=9, angle=20, variance=1, noise=0.01, image="moon"),
    )
    assert list(cfg.losses) == ["MSE", "SSIM", "mse + 0.1*fourier"] and cfg.test_image == "moon" and cfg.steps == 4
    updates = list(run_study(cfg, threading.Event()))
    plot, gallery, status, table, figure, legend, lecture = updates[-1]
    assert status.startswith("Done: 3 configurations") and "the measurement" in status  # beaten or not, it says
    frame, colours = plot["value"], plot["color_map"]
    labels = ["MSE", "SSIM", "mse + 0.1*fourier"]  # each one's moving average, and faint, each step
    assert set(frame["configuration"]) == {*labels, *(n + RAW for n in labels)} and len(frame) == 24
    assert all(u[0]["color_map"] == colours for u in updates) and len({colours[n] for n in labels}) == 3  # a colour each, kept
    assert all(colours[n + RAW] == faded(colours[n]) != colours[n] for n in labels)
    assert all(f"background:{colours[n]}\"></span>{html.escape(n)}" in legend for n in labels) and "faint" in legend
    mse = frame[frame["configuration"] == "MSE"]["relative_loss"].tolist()
    raw = frame[frame["configuration"] == "MSE" + RAW]["relative_loss"].tolist()
    assert mse == pytest.approx([sum(raw[: i + 1]) / (i + 1) for i in range(len(raw))])  # 4 steps < the window: the running mean
    frame = table.data  # the best of each column marked; the lecture's figures beside the table, said to be other data
    assert list(frame.columns) == ["loss", "MSE", "PSNR dB", "SSIM", "LPIPS", "time"] and "font-weight: 700" in table.to_html()
    assert list(frame["loss"]) == ["Measurement (no training)", "MSE", "SSIM", "mse + 0.1*fourier"]
    assert float(frame.iloc[0]["PSNR dB"]) > 15  # the measurement: the row to beat
    assert "MSE 27.070 dB / SSIM 0.7348" in lecture and "another data set" in lecture and "fourier" not in lecture
    captions = [c for _, c in gallery]
    assert all(p.shape == (64, 64) for p, _ in gallery)  # the centre, zoomed: the size of the picture again
    assert captions[0] == "ground truth" and captions[1].startswith("measurement: ") and captions[1].endswith(" dB")
    assert all(re.fullmatch(r".+: \d+\.\d\d dB", c) for c in captions[2:]) and figure.endswith(".png")


def test_train_handler_stops_and_says_so():
    cfg = study_config(
        ["MSE", "L1"],
        "",
        "loss_study_cnn",
        20,
        8,
        64,
        Setting.of(kernel_size=9, angle=20, variance=1, noise=0.01, image="camera"),
    )
    cancel = threading.Event()
    cancel.set()
    *_, (plot, gallery, status, table, figure, legend, lecture) = run_study(cfg, cancel)
    assert status.startswith("Stopped") and list(table.data["loss"]) == ["Measurement (no training)", "MSE (stopped)", "L1 (not run: stopped)"]


@pytest.mark.parametrize(
    "args, message",
    [
        ((["MSE"], "", "loss_study_cnn", 200, 8, 64), r"epochs must be an integer in \[1, 20\]"),
        ((["MSE"], "", "loss_study_cnn", 2, 8, 512), r"size must be an integer in \[64, 256\]"),
        ((["MSE"], "", "loss_study_cnn", 2, 8, 96), "size must be one of 64, 128, 256"),
        ((["MSE"], "", "unet", 2, 8, 64), "model must be one of"),
        ((["Best"], "", "loss_study_cnn", 2, 8, 64), "unknown preset Best"),
        (([], "mse + nope", "loss_study_cnn", 2, 8, 64), "unknown loss 'nope'"),
        (([], "", "loss_study_cnn", 2, 8, 64), "no loss to study"),
    ],
)
def test_train_handler_bounds_what_clients_send(args, message):
    with pytest.raises(gr.Error, match=message):
        study_config(*args, Setting.of(kernel_size=9, angle=20, variance=1, noise=0.01, image="camera"))


def test_curves_keep_a_place_for_configurations_not_started():
    frame = curves({"MSE": [1.0, 0.5]}, ["MSE", "L1"])
    assert list(frame["relative_loss"][:2]) == [1.0, 0.5] and frame["relative_loss"].isna().sum() == 1


def test_a_webcam_or_clipboard_picture_becomes_the_image(lab):
    photo = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)  # what gr.Image(type="numpy") gives
    update, box, note = accept_upload(lab, photo, clear=False)  # the webcam keeps its picture
    assert update["value"].startswith("upload:") and update["choices"][0] == ("your upload", update["value"])
    assert box == gr.update() and note.startswith("✓ Using the picture")
    assert accept_upload(lab, None) == (gr.update(), gr.update(), gr.update())


def test_drawing_on_the_pad_sets_the_kernel_and_an_empty_pad_waits(lab):
    pad = np.full((248, 248, 4), 255, dtype=np.uint8)
    pad[..., 3] = 0
    assert drawn_code({"composite": pad, "layers": [], "background": None}, 9) == ""  # nothing drawn yet
    waiting = render_setting(lab, *values(blur="drawn", drawn=""))
    assert "Draw the kernel on the pad" in waiting[1] and len(waiting) == 12  # no run, no error pills
    pad[100:140, 100:140] = (0, 0, 0, 255)  # a blot in the middle
    code = drawn_code({"composite": pad}, 9)
    *_, result = render_setting(lab, *values(blur="drawn", kernel_size=9, drawn=code))
    assert result.setting.operator.describe() == "drawn 9×9" and result.kernel[4, 4] == result.kernel.max()
    with pytest.raises(gr.Error, match="kernel size must be an odd integer"):
        drawn_code({"composite": pad}, 8)


def test_inspect_handler(lab):
    channels, note, text, rf_map, spectrum, residual, table, iterates = inspect_outputs(lab, "cnn", None, "channel", *values())
    assert len(channels) == 32 and note == "" and "conv 1 (`conv1`): all 32 channels" in text and "lecture's formula gives 7×7" in text
    assert channels[0][1] == "1/32" and iterates["visible"] is False  # an end-to-end network has no iterates
    assert rf_map.shape == (256, 256, 3) and spectrum.shape == residual.shape == (256, 256) and len(table) == 8
    assert table[-1][0] == "Unrolled (knows K)"
    *_, iterates = inspect_outputs(lab, "unrolled", None, "shared", *values())
    captions = [c.split(": ")[0] for _, c in iterates["value"]]  # x_0, then one after each of its denoisers
    assert iterates["visible"] and len(captions) > 2 and captions == [f"x_{k}" for k in range(len(captions))]
    deeper = conv_layers(create_model("unet"))[3]
    _, note, text, *_ = inspect_outputs(lab, "unet", deeper, "shared", *values())
    assert "no course weights yet" in note and f"encoder block 2, conv 2 (`{deeper}`)" in text
    _, _, text, *_ = inspect_outputs(lab, "unet", "bottleneck.conv.net.2", "shared", *values())
    assert "the first 64 of its 256 channels" in text  # only so many are drawn: the page says so
    with pytest.raises(gr.Error, match="unknown architecture"):
        inspect_outputs(lab, "resnet", None, "shared", *values())


def test_robustness_handler(lab):
    note, figure, legend = sweep_outputs(lab, "noise", ["course", "general"], "true", *values(models=["cnn", "rescnn", "wiener"]))
    assert Image.open(figure).size == FIGURE_PX  # the figure, drawn by lab.robustness
    names = ["CNN (course)", "CNN (general)", "Wiener", "Measurement (no reconstruction)", "your setting (0.01)"]
    assert all(f"background:{c}" in legend for c in ("#7f7f7f", "#222222")) and all(n in legend for n in names)
    assert "No weights yet for: ResCNN (course), ResCNN (general)" in note and "setting (noise level δ (relative) = 0.01)" in note
    # after another parameter, the marker is drawn too: the angle sweep's figure has its dashed line at 20°
    _, figure, legend = sweep_outputs(lab, "angle", ["course"], "true", *values(models=["cnn"]))
    assert "your setting (20)" in legend and Image.open(figure).size == FIGURE_PX
    with pytest.raises(gr.Error, match="choose course and/or general"):
        sweep_outputs(lab, "noise", [], "true", *values())


def test_the_sweep_figure_marks_the_setting_with_one_tick_per_value():
    from recon_demo.lab.robustness import PARAMETERS, SweepPoint, sweep_figure, sweep_positions

    for param, current in (("noise", 0.01), ("angle", 20.0), ("kernel_size", 9), ("angle", 60.0), ("noise", 0.5)):
        values = list(PARAMETERS[param])
        points = [SweepPoint("CNN", v, 20.0 + i) for i, v in enumerate(values)]
        fig = sweep_figure(points, param, current, param, {"CNN": "#123456"}, "your setting")
        ax = fig.axes[0]
        _, where, inside = sweep_positions(values, current)
        marker = [line for line in ax.lines if line.get_label() == "your setting"]
        assert len(marker) == 1 and set(marker[0].get_xdata()) == {where}, param  # a vertical line at the setting
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{v:g}" for v in values]  # a tick per value, no more
        assert inside == (values[0] <= current <= values[-1])
        assert all(t.get_fontsize() * 100 / 72 >= 14 for t in ax.get_xticklabels())  # ≥ 14 px in the figure's pixels
    assert sweep_positions([0.0, 0.005, 0.01, 0.02], 0.015) == ([0.0, 1.0, 2.0, 3.0], 2.5, True)




@pytest.fixture(scope="module")
def server(app):
    serve(app, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)  # as app.py launches
    yield app.local_url
    app.close()


def test_the_served_page_carries_the_apps_css_and_the_classroom_queue(server, app):
    import urllib.request

    config = json.loads(urllib.request.urlopen(server + "config", timeout=30).read())
    assert config["css"] == launch_settings()["css"] == CSS and "#outputs" in config["css"]  # gradio 6 resets it in launch
    assert isinstance(app._queue, ClassroomQueue)  # serve installs it, as app.py launches


def _png(tmp_path, name: str, array: np.ndarray) -> str:
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return str(path)


def test_the_api_takes_your_own_image_as_a_file_or_an_array(server, lab, tmp_path):
    from gradio_client import Client, handle_file

    from recon_demo.ui.api import reconstruct_answer

    client = Client(server, verbose=False)
    photo = (np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)
    out = client.predict(image=handle_file(_png(tmp_path, "mine.png", photo)), models="cnn,wiener", api_name="/reconstruct")
    assert out["setting"]["image"].startswith("upload:") and all(r["png_base64"] for r in out["results"])
    direct = reconstruct_answer(lab, photo, models="cnn,wiener")  # a Python caller's array: the same image
    assert direct["setting"]["image"] == Setting.of(image=lab.add_upload(photo)).image
    assert direct["results"][0]["metrics"]["psnr"] > 10
    grey16 = (np.random.default_rng(1).random((64, 80)) * 65535).astype(np.uint16)
    assert reconstruct_answer(lab, grey16, models="wiener")["results"][0]["png_base64"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: handle_file_of(tmp, "notes.png", b"these are not pixels"), "not a readable image"),
        (lambda tmp: handle_file_of(tmp, "huge.png", _huge_png()), "the limit is 40,000,000 pixels"),
        (lambda tmp: {"path": "/etc/passwd"}, "sent with gradio_client.s handle_file"),  # a server path, not uploaded
        (lambda tmp: "upload:" + "0" * 40, "not by its upload key"),
    ],
    ids=["text-as-png", "48-megapixels", "a-path-not-uploaded", "an-upload-key"],
)
def test_hostile_images_through_the_api_get_a_message_and_the_server_stays(server, tmp_path, make, message):
    from gradio_client import Client

    client = Client(server, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(image=make(tmp_path), models="wiener", api_name="/reconstruct")
    assert client.predict(image="moon", models="wiener", api_name="/reconstruct")["results"][0]["png_base64"]


def handle_file_of(tmp_path, name: str, data: bytes):
    from gradio_client import handle_file

    path = tmp_path / name
    path.write_bytes(data)
    return handle_file(str(path))


def _huge_png() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")  # 48 MP of zeros: a small file, refused before decoding
    return buf.getvalue()


def test_arrays_from_python_callers_are_checked_like_uploads(lab):
    from recon_demo.ui.api import reconstruct_answer

    for bad, message in ((np.zeros((4, 4, 2)), r"\(H, W\) or \(H, W, 3\|4\)"), (np.array([["a"]]), "holds numbers"),
                         (np.full((8, 8), np.nan), "no finite value"), (np.zeros((7000, 6000), np.uint8), "the limit is")):  # fmt: skip
        with pytest.raises(gr.Error, match=message):
            reconstruct_answer(lab, bad, models="wiener")


def test_the_api_takes_a_drawn_kernel_and_refuses_a_bad_one(lab):
    from recon_demo.physics.kernels import encode_drawn
    from recon_demo.ui.api import reconstruct_answer

    psf = np.zeros((15, 15))
    psf[7, 2:13], psf[3:8, 12] = 1, 1  # the README's L-shaped shake
    out = reconstruct_answer(lab, "camera", blur="drawn", kernel_size=15, drawn=encode_drawn(psf), models="wiener")
    assert out["setting"]["blur"] == "drawn" and out["setting"]["psf"] == encode_drawn(psf) and out["results"][0]["png_base64"]
    for drawn, message in (("", "no drawn kernel yet"), ("!!", "cannot be read"), (encode_drawn(np.eye(9)), "not 15×15")):
        with pytest.raises(gr.Error, match=message):
            reconstruct_answer(lab, "camera", blur="drawn", kernel_size=15, drawn=drawn, models="wiener")


def test_api_through_gradio_client(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    out = client.predict(image="moon", angle=30, models="cnn,wiener", api_name="/reconstruct")
    assert out["setting"]["angle"] == "30" and out["device"] == "cpu"
    assert [r["name"] for r in out["results"]] == ["cnn", "wiener"] and all(r["png_base64"] for r in out["results"])
    assert out["results"][0]["metrics"]["psnr"] > 15
    assert [r["precision"] for r in out["results"]] == ["fp32", None]  # a network's precision; none for Wiener
    timing = out["server_ms"]  # what the bench splits the round trip by
    assert set(timing) == {"compute", "lab", "encode"} and 0 < timing["compute"] <= timing["lab"]
    assert timing["compute"] >= sum(r["ms"] for r in out["results"]) - 0.05 and timing["encode"] > 0  # + the input row
    again = client.predict(image="moon", angle=30, models="cnn,wiener", api_name="/reconstruct")
    assert again["server_ms"]["compute"] == 0 and again["results"] == out["results"]  # served from the cache
    with pytest.raises(Exception, match="kernel size must be odd"):
        client.predict(kernel_size=4, api_name="/reconstruct")
    with pytest.raises(Exception, match="unknown model 'resnet'"):
        client.predict(models="resnet", api_name="/reconstruct")
    study = client.predict(configurations="MSE,SSIM", epochs=1, images=4, size=64, api_name="/train")
    assert list(study["results"]) == ["MSE", "SSIM"] and len(study["results"]["MSE"]["history"]) == 1
    with pytest.raises(Exception, match="epochs must be an integer"):
        client.predict(epochs=10_000, api_name="/train")


def test_the_core_never_imports_gradio():
    import pkgutil
    import subprocess
    import sys

    import recon_demo

    core = [m.name for m in pkgutil.walk_packages(recon_demo.__path__, "recon_demo.") if not m.name.startswith("recon_demo.ui")]
    assert {"recon_demo.lab.blur", "recon_demo.training.loop", "recon_demo.activations", "recon_demo.__main__"} <= set(core)
    code = "import sys\n" + "".join(f"import {m}\n" for m in core) + "print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_train_handler_validates_the_operator_as_the_reconstruct_tab_does():
    for kernel_size, message in (
        (9.5, "kernel size must be an integer"),
        (8, "kernel size must be odd"),
        (33, "kernel size must be"),
    ):
        with pytest.raises(gr.Error, match=message):
            study_config(
                ["MSE"],
                "",
                "loss_study_cnn",
                2,
                8,
                64,
                Setting.of(kernel_size=kernel_size, angle=20, variance=1, noise=0.01, image="camera"),
            )
    with pytest.raises(gr.Error, match=r"noise must be a number in \[0, 0.2\]"):
        study_config(
            ["MSE"], "", "loss_study_cnn", 2, 8, 64, Setting.of(kernel_size=9, angle=20, variance=1, noise=0.5, image="camera")
        )


def test_reconstruct_api_parameters_and_the_controls_are_the_settings_flat_fields(app):
    import inspect as pyinspect

    from recon_demo.physics.blur import OPERATOR_FIELDS

    fn = next(f.fn for f in app.fns.values() if f.api_name == "reconstruct")
    # the served endpoint's parameters are the setting's flat fields, and the page has a control for each (by its
    # elem_id); tests/test_spec.py adds a field to a spec and finds it in the API, the widgets, the URL and the CLI
    assert tuple(pyinspect.signature(fn).parameters) == FLAT_FIELDS
    elem_ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert set(FLAT_FIELDS) <= elem_ids
    assert set(OPERATOR_FIELDS) <= set(FLAT_FIELDS)
    assert Setting.of(angle=45).moved(kernel_size=7).operator.kernel_size == 7
    with pytest.raises(SettingError, match="unknown setting colour"):
        Setting.of(colour="red")


def test_abouts_tables_keep_their_columns():
    import re

    from recon_demo.ui.about import architectures_table, losses_table, metrics_table

    for table in (architectures_table(), metrics_table(), losses_table()):
        columns = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(columns) == 1, table  # a bare | in a cell (the fourier loss's "|FFT difference|") made a column
    assert r"Mean \|FFT difference\|" in losses_table()


def test_the_teachers_laptop_options_become_launch_settings():
    from recon_demo.ui import launch_arguments

    assert launch_arguments([]) == {}  # gradio's defaults and its GRADIO_SERVER_* variables
    assert launch_arguments(["--host", "0.0.0.0", "--port", "8080"]) == {"server_name": "0.0.0.0", "server_port": 8080}
    assert launch_arguments(["--share"]) == {"share": True}


@pytest.mark.parametrize(("argv", "message"), [(["--port", "0"], "a port is a whole number from 1 to 65535, got '0'"),
                                               (["--port", "http"], "got 'http'"), (["--shared"], "unrecognized arguments")])
def test_a_bad_app_option_is_refused_before_the_app_is_built(argv, message):
    import subprocess
    import sys
    from pathlib import Path

    app = Path(__file__).resolve().parents[1] / "app.py"
    done = subprocess.run([sys.executable, str(app), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr
