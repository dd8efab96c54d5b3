from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from recon_demo.checkpoints import ManifestEntry
from recon_demo.lab.blur import working_tensor
from recon_demo.lab.inspection import inspect
from recon_demo.lab.pictures import error_map, kernel_spectrum, overlay, psf_preview
from recon_demo.lab.setting import MAX_KERNEL, Setting, SettingError, model_choices
from recon_demo.lab.tables import metrics_csv, metrics_rows
from recon_demo.physics.blur import LECTURE_OPERATOR
from recon_demo.physics.kernels import encode_drawn


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kernel_size": 8}, "kernel size must be odd"),
        ({"kernel_size": MAX_KERNEL + 2}, r"kernel size must be an integer in \[1, 31\]"),
        ({"kernel_size": 0}, "kernel size must be an integer"),
        ({"kernel_size": 2.5}, "kernel size must be an integer"),
        ({"angle": float("nan")}, "angle must be a number"),
        ({"angle": "east"}, "angle must be a number"),
        ({"noise": -0.01}, r"noise must be a number in \[0, 0.2\]"),
        ({"noise": float("inf")}, "noise must be a number"),
        ({"variance": 0}, "variance must be a number"),
        ({"seed": -1}, "seed must be an integer"),
        ({"blur": "box"}, "blur must be one of motion, gaussian"),
        ({"kernel_style": "round"}, "kernel style must be one of"),
        ({"regime": "mayo"}, "regime must be one of course, general"),
        ({"models": ("cnn", "resnet50")}, "unknown model 'resnet50'"),
        ({"image": "../../etc/passwd"}, "unknown image"),
        ({"image": "upload:short"}, "unknown image"),
    ],
)
def test_settings_are_validated_with_what_is_allowed(change, message):
    with pytest.raises(SettingError, match=message):
        Setting.of(**change).validated()


def test_a_setting_travels_in_the_url():
    setting = Setting.of(image="moon", angle=45, kernel_size=7, noise=0.02, models=("unet", "cnn", "tv"), regime="general")
    query = setting.to_query()
    assert query["size"] == "7" and query["models"] == "unet,cnn,tv" and query["noise"] == "0.02"
    again, warnings = Setting.from_query(query)
    assert again == setting.validated() and warnings == []
    partial, warnings = Setting.from_query({"image": "camera", "angle": "20", "size": "9", "noise": "0.01", "models": "cnn,unet"})
    assert partial.models == ("cnn", "unet") and partial.operator.kernel_size == 9 and warnings == []
    bad, warnings = Setting.from_query({"size": "8", "noise": "lots", "models": "cnn,nope", "colour": "red", "angle": "30"})
    assert bad.operator.kernel_size == 9 and bad.noise == Setting().noise and bad.models == Setting().models and bad.operator.angle == 30
    assert len(warnings) == 4 and any("unknown URL parameter 'colour'" in w for w in warnings)


def test_a_drawn_kernel_is_validated_and_travels_in_the_url(lab):
    code = encode_drawn(np.eye(15)[::-1])  # an anti-diagonal stroke
    setting = Setting.of(image="moon", blur="drawn", kernel_size=15, drawn=code, models=("cnn", "tv")).validated()
    assert setting.to_query()["psf"] == code and "psf" not in Setting().to_query()  # only while the blur is drawn
    again, warnings = Setting.from_query(setting.to_query())  # "blur" before "psf" in the link: applied last
    assert again == setting and warnings == []
    assert Setting.of(blur="motion", drawn=code).validated().operator.drawn == ""  # a stale drawing does not count
    for change, message in (({}, "no drawn kernel yet"), ({"kernel_size": 9, "drawn": code}, "not 9×9"),
                            ({"drawn": "%%"}, "cannot be read")):  # fmt: skip
        with pytest.raises(SettingError, match=message):
            Setting.of(**{"blur": "drawn", "kernel_size": 15, **change}).validated()
    result = lab.run(setting, with_lpips=False, max_channels=0)
    assert result.kernel.shape == (15, 15) and abs(result.kernel.sum() - 1) < 1e-6
    assert "cnn" in result.badges and result.by_name("tv").metrics["psnr"] > result.measurement_metrics["psnr"]


def test_models_as_a_comma_string_and_repeats_are_normalised():
    assert Setting.of(models="cnn, unet,cnn,,tv").validated().models == ("cnn", "unet", "tv")
    assert model_choices()[-3:] == ["wiener", "rl", "tv"] and model_choices()[-4] == "unrolled"


def test_run_gives_images_metrics_activations_and_sorted_rows(lab):
    result = lab.run(Setting.of(image="moon", models=("tv", "cnn", "rescnn", "wiener")))
    assert [r.name for r in result.reconstructions] == ["tv", "cnn", "rescnn", "wiener"]
    by = {r.name: r for r in result.reconstructions}
    assert by["rescnn"].image is None and by["rescnn"].error == "no course weights shipped yet"
    for name in ("tv", "cnn", "wiener"):
        r = by[name]
        assert r.image.shape == (256, 256) and np.isfinite(r.metrics["psnr"]) and r.metrics["dc"] >= 0
    assert list(result.activations) == ["cnn"] and result.activations["cnn"].ndim == 2  # a 4×4 grid of 16 channels
    assert result.badges == {} and result.kernel.shape == (9, 9) and result.device == "cpu"
    rows = metrics_rows(result, "psnr")
    assert rows[0][0] == "Measurement" and rows[-1][0] == "ResCNN (no weights)"
    psnrs = [float(r[2]) for r in rows[1:-1]]
    assert psnrs == sorted(psnrs, reverse=True)
    mses = [float(r[1]) for r in metrics_rows(result, "mse")[1:-1]]
    assert mses == sorted(mses)  # lower is better: ascending
    assert metrics_csv(rows).splitlines()[0].startswith("model,MSE,PSNR (dB),SSIM,LPIPS")
    with pytest.raises(SettingError, match="sort by one of"):
        metrics_rows(result, "beauty")


def test_switching_models_reuses_the_measurement(lab):
    a = lab.measurement(Setting.of(image="coffee", models=("cnn",)))
    b = lab.measurement(Setting.of(image="coffee", models=("tv", "wiener")))
    c = lab.measurement(Setting.of(image="coffee", seed=1))
    assert a is b and not np.allclose(a, c)


def test_a_badge_marks_a_model_away_from_its_training_operator(lab):
    assert lab.run(Setting.of(models=("cnn",))).badges == {}
    moved = lab.run(Setting.of(models=("cnn",), angle=45))
    assert moved.badges == {"cnn": "trained for motion 9 @ 20°, noise 0.01"}
    assert lab.run(Setting.of(models=("cnn",), angle=45, regime="general")).badges == {}  # within the general ranges


def fits(entry: ManifestEntry, setting: Setting) -> bool:
    return entry.covers(setting.operator, setting.noise)


def test_covers_follows_the_general_ranges():
    entry = ManifestEntry("cnn", "general", "f", "0", operator={"blurs": ["motion"], "kernel_size": [3, 7], "angle": [0, 180],
                          "kernel_styles": ["ippy"], "variance": [0.5, 4]}, noise={"kind": "relative", "range": [0, 0.05]})  # fmt: skip
    assert fits(entry, Setting.of(kernel_size=7, angle=200, noise=0.05))
    assert not fits(entry, Setting.of(kernel_size=9))
    assert not fits(entry, Setting.of(kernel_size=5, noise=0.06))
    assert not fits(entry, Setting.of(blur="gaussian", kernel_size=5))
    course = ManifestEntry("cnn", "course", "f", "0", operator=LECTURE_OPERATOR.to_dict(), noise={"level": 0.01})
    assert fits(course, Setting.of(angle=20.0)) and not fits(course, Setting.of(noise=0.02)) and not fits(course, Setting.of(kernel_style="centered"))


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_of_any_common_kind_become_a_working_image(lab):
    rng = np.random.default_rng(0)
    sixteen = _png(rng.integers(0, 65535, (300, 200), dtype=np.uint16))
    rgba = _png(rng.integers(0, 255, (64, 64, 4), dtype=np.uint8))
    for data in (sixteen, rgba):
        key = lab.add_upload(data)
        assert key.startswith("upload:") and lab.add_upload(data) == key  # the same file is read once
        x = lab.x_true(key)
        assert x.shape == (1, 1, 256, 256) and 0 <= float(x.min()) and float(x.max()) <= 1
        result = lab.run(Setting.of(image=key, models=("wiener",)))
        assert result.reconstructions[0].image is not None
    for bad, message in ((b"", "empty"), (b"not an image at all", "not a readable image"), (sixteen[:100], "not a readable image")):
        with pytest.raises(ValueError, match=message):
            lab.add_upload(bad)
    with pytest.raises(SettingError, match="upload it again"):
        lab.x_true("upload:" + "0" * 40)


def test_pictures():
    assert working_tensor(np.zeros((40, 100), dtype=np.float32)).shape == (1, 1, 256, 256)
    kernel = LECTURE_OPERATOR.kernel().numpy()
    preview = psf_preview(kernel)
    assert preview.dtype == np.uint8 and preview.shape[0] >= 90 and preview.max() == 255
    err = error_map(np.zeros((8, 8)), np.full((8, 8), 0.5))
    assert err.shape == (8, 8, 3) and err.dtype == np.uint8
    spectrum = kernel_spectrum(kernel)
    assert spectrum.shape == (256, 256) and spectrum.max() == pytest.approx(1) and spectrum.min() < 0.5  # zeros of the blur
    assert overlay(np.zeros((8, 8)), np.ones((8, 8))).shape == (8, 8, 3)


def test_lab_inspect_returns_what_the_inspect_tab_shows(lab):
    seen = inspect(lab, Setting.of(image="moon", models=("cnn",)), "cnn")
    assert seen.layer == "conv1"  # the first convolution by default
    assert seen.total_channels == len(seen.channels) == 32 and seen.channels[0].shape == (256, 256)
    assert 1 < seen.rf_extent[0] <= 256 and seen.rf_formula is not None and seen.note == ""
    assert seen.receptive_field.shape == (256, 256, 3) and seen.spectrum.shape == (256, 256)
    wide = inspect(lab, Setting.of(image="moon"), "vit", scale="channel")  # no ViT weights here: the untrained one
    assert "untrained" in wide.note and wide.total_channels == 128 and len(wide.channels) == 64
    with pytest.raises(ValueError, match="colour scale"):
        inspect(lab, Setting.of(), "cnn", scale="rainbow")


def test_the_same_request_from_many_students_is_computed_once(lab, monkeypatch):
    calls = []
    reconstruct = lab.engine.reconstruct

    def counting(y_delta, models=(), **kw):
        calls.append((tuple(models), tuple(kw.get("baselines", ()))))
        return reconstruct(y_delta, models, **kw)

    monkeypatch.setattr(lab.engine, "reconstruct", counting)
    setting = Setting.of(image="coffee", seed=4242, models=("cnn", "wiener"))
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: lab.run(setting), range(6)))
    computed = [c for c in calls if c != ((), ())]
    assert computed == [(("cnn",), ("wiener", "input"))]  # one computation; the other five found it cached
    assert all(r.by_name("cnn").metrics == results[0].by_name("cnn").metrics for r in results)
    assert {r.compute_ms > 0 for r in results} == {True, False}  # the first computed, the rest were served


def test_an_api_result_without_activations_is_completed_when_the_page_wants_them(lab):
    setting = Setting.of(image="coffee", seed=4343, models=("cnn",))
    assert lab.run(setting, max_channels=0).activations == {}
    assert list(lab.run(setting).activations) == ["cnn"]


def test_the_best_of_each_metric_column_is_found_in_its_direction():
    from recon_demo.lab.tables import best_cells

    rows = [["Measurement", "0.004", "24.8", "0.75", "0.30", "0.01", "", ""],
            ["CNN", "0.002", "29.4", "0.80", "0.24", "0.02", "4.7", "9,857"],
            ["UNet", "0.001", "34.5", "0.94", "—", "0.03", "44.0", "1,925,025"],
            ["TV", "0.001", "35.1", "0.92", "0.10", "0.005", "82.5", "—"]]  # fmt: skip
    best = best_cells(rows)
    assert {(2, 1), (3, 1), (3, 2), (2, 3), (3, 4), (3, 5), (1, 6)} == best  # ties both; "—" and the measurement skipped
    ct = [["FBP", "0.010", "20.0", "0.50", "0.30", "0.10", "5"], ["SIRT", "0.005", "23.0", "0.60", "0.20", "0.20", "50"]]
    assert best_cells(ct, reference_row=False) == {(1, 1), (1, 2), (1, 3), (1, 4), (0, 5), (0, 6)}  # CT: every row competes


def test_the_receptive_field_box_outlines_the_measured_extent():
    from recon_demo.lab.pictures import draw_box

    picture = np.zeros((32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), dtype=bool)
    mask[10:17, 12:21] = True  # a 7 × 9 extent
    boxed = draw_box(picture, mask, width=1)
    yellow = (boxed == (255, 220, 0)).all(axis=2)
    rows, cols = np.flatnonzero(yellow.any(axis=1)), np.flatnonzero(yellow.any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (9, 17, 11, 21)  # just outside the extent, all round
    assert not yellow[10:17, 12:21].any() and yellow.sum() == 2 * (9 + 11) - 4
    assert (draw_box(picture, np.zeros((32, 32), dtype=bool)) == picture).all()
