"""The CT task: its CLI protocol (evaluate and train), the CT tab's computations and its handler."""

from __future__ import annotations

import json
import re

import gradio as gr
import numpy as np
import pytest

from recon_demo import checkpoints
from recon_demo.__main__ import main as cli
from recon_demo.checkpoints import Manifest
from recon_demo.errors import UnknownName
from recon_demo.evaluate import parse_baselines
from recon_demo.lab.blur import Lab
from recon_demo.lab.ct import CT_TABLE_COLUMNS, CTLab, CTSetting, sinogram_picture
from recon_demo.lab.setting import SettingError
from recon_demo.methods import ct as ct_methods
from recon_demo.physics import ct_projector
from recon_demo.physics.ct import detector_bins
from recon_demo.serving.engine import Engine
from recon_demo.ui.ct import ct_outputs


def test_ct_models_and_baselines_are_parsed_from_their_registries():
    assert ct_methods.parse_models("all") == [("fbp_resunet", None)]  # the unrolled network once it has CT weights
    assert ct_methods.parse_models("all", ["unrolled"]) == [("fbp_resunet", None), ("unrolled", None)]
    assert ct_methods.parse_models("unrolled=u.safetensors") == [("unrolled", "u.safetensors")]  # handed A itself
    assert ct_methods.parse_models("fbp_resunet=w.safetensors") == [("fbp_resunet", "w.safetensors")]
    with pytest.raises(UnknownName, match="not a CT model"):
        ct_methods.parse_models("unet")
    assert parse_baselines("fbp, sirt", ct_methods.CT_BASELINES, "CT baseline") == ["fbp", "sirt"]
    with pytest.raises(UnknownName, match="known CT baselines: fbp, sirt"):
        parse_baselines("wiener", ct_methods.CT_BASELINES, "CT baseline")
    assert checkpoints.ct_regime(60) == "ct-60" and checkpoints.regime_angles("ct-20") == 20 and checkpoints.regime_angles("course") is None


def test_evaluate_ct_gives_the_blur_protocols_json(capsys):
    args = ["evaluate", "--task", "ct", "--angles", "20", "--baselines", "fbp,sirt", "--size", "64", "--limit", "2",
            "--format", "json"]  # fmt: skip
    assert cli(args) == 0
    result = json.loads(capsys.readouterr().out)
    p = result["protocol"]
    assert p["task"] == "ct" and p["angles"] == 20 and p["bins"] == detector_bins(64) and p["noise"] == 0.01
    assert p["images"] == ["astronaut", "camera"] and p["seed"] == 123
    assert set(result["results"]) == {"fbp", "sirt"}
    for name in ("fbp", "sirt"):
        assert result["results"][name]["n"] == 2 and set(result["results"][name]) >= {"mse", "psnr", "ssim", "lpips", "dc"}
    assert result["results"]["sirt"]["psnr"] > result["results"]["fbp"]["psnr"]  # 20 views: FBP streaks
    assert cli(args[:-2]) == 0
    table = capsys.readouterr().out
    assert "FBP  | MSE:" in table and "Data consistency:" in table


@pytest.mark.parametrize(
    "flags, message",
    [(["--angles", "0"], "number of angles must be an integer in [1, 360]"), (["--models", "unet"], "not a CT model"),
     (["--baselines", "tv"], "unknown CT baseline"), (["--size", "2048"], "--size for ct must be an integer in [8, 1024]"),
     (["--fbp-filter", "none"], "invalid choice")],
)  # fmt: skip
def test_evaluate_ct_refuses_bad_flags(flags, message, capsys):
    try:
        code = cli(["evaluate", "--task", "ct", "--baselines", "fbp", *flags])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err


def test_train_ct_writes_a_checkpoint_that_evaluate_reads(tmp_path, capsys):
    out = tmp_path / "fbp_resunet_ct.safetensors"
    args = ["train", "--task", "ct", "--model", "fbp_resunet", "--model-kwargs", '{"base_ch": 4}', "--angles", "12",
            "--steps", "3", "--batch-size", "2", "--image-size", "64", "--patch-size", "32", "--val-size", "64",
            "--phantoms", "2", "--max-images", "2", "--out", str(out)]  # fmt: skip
    assert cli(args) == 0
    assert "fbp" in capsys.readouterr().out
    entry = Manifest.load(tmp_path).entries[0]
    assert entry.task == "ct" and entry.regime == "custom" and entry.operator["angles"] == 12
    assert entry.noise == {"kind": "relative", "level": 0.01, "on": "sinogram"}
    assert entry.metrics["command"].startswith("python -m recon_demo evaluate --task ct --models fbp_resunet=")
    assert entry.metrics["model"]["n"] == 6 and "dc" in entry.metrics["fbp"]
    assert cli(["evaluate", "--task", "ct", "--angles", "12", "--size", "64", "--models", f"fbp_resunet={out}",
                "--baselines", "fbp", "--format", "json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["results"]["fbp_resunet"]["psnr"] == pytest.approx(entry.metrics["model"]["psnr"], abs=1e-4)
    assert cli(["evaluate", "--task", "ct", "--angles", "12", "--size", "64", "--models", f"fbp_resunet={out}",
                "--baselines", "fbp", "--limit", "1", "--format", "markdown"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| model | MSE | PSNR | SSIM | LPIPS | Data consistency | parameters | ms per 256² |"
    params = result["results"]["fbp_resunet"]["params"]
    assert lines[4].startswith("| FBP + Residual UNet |") and re.search(rf"\| {params:,} \| \d+\.\d \|$", lines[4])
    assert lines[5].startswith("| FBP |") and "|  |" in lines[5]  # a baseline has no parameters


def test_train_ct_refuses_the_general_regime_and_a_bad_angle_count(capsys):
    assert cli(["train", "--task", "ct", "--model", "fbp_resunet", "--regime", "general"]) == 2
    assert "is for deblurring" in capsys.readouterr().err
    assert cli(["train", "--task", "ct", "--model", "fbp_resunet", "--angles", "sixty"]) == 2
    assert "a number of angles or a range LOW,HIGH" in capsys.readouterr().err
    assert cli(["train", "--task", "ct", "--model", "unrolled", "--angles", "0,180", "--patch-size", "256"]) == 2
    assert "number of angles must be between 1 and 360, got 0" in capsys.readouterr().err
    assert cli(["train", "--task", "ct", "--model", "fbp_resunet", "--angles", "20,180"]) == 2  # a refiner of one geometry's FBP
    assert "a range of angle counts is for a CT network handed the operator" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ct_lab() -> CTLab:
    return CTLab(Lab(Engine("cpu")))


@pytest.fixture(scope="module")
def bare_ct_lab(tmp_path_factory) -> CTLab:
    """No shipped CT weights at all."""
    return CTLab(Lab(Engine("cpu", manifest=Manifest([], tmp_path_factory.mktemp("no-weights")))))


def test_the_ct_lab_reconstructs_with_fbp_sirt_and_says_when_no_weights_exist(bare_ct_lab):
    result = bare_ct_lab.run(CTSetting.of("phantom-1", angles=30, noise=0.01), with_lpips=False)
    assert result.sinogram.shape == (30, 364) and result.x_true.shape == (256, 256)
    by_name = {r.name: r for r in result.reconstructions}
    assert set(by_name) == {"fbp", "sirt"}
    assert by_name["sirt"].metrics["psnr"] > by_name["fbp"].metrics["psnr"]
    assert all(0 < r.metrics["dc"] < 1 for r in result.reconstructions)
    assert any("no shipped CT weights" in n for n in result.notes)
    assert bare_ct_lab.run(CTSetting.of("phantom-1", angles=30, noise=0.01), with_lpips=False) is result  # cached
    assert all(r.metrics["lpips"] is not None for r in bare_ct_lab.run(CTSetting.of("phantom-1", angles=30)).reconstructions)


def test_the_ct_lab_says_when_it_compiles_the_projector_then_each_method(bare_ct_lab, monkeypatch):
    heard: list[tuple[int, int, str]] = []
    monkeypatch.setattr(ct_projector, "ready", lambda: False)  # a fresh process: the kernels are not loaded yet
    bare_ct_lab.run(CTSetting.of("phantom-2", angles=37, noise=0.01), with_lpips=False, report=lambda *a: heard.append(a))
    assert heard[0] == (0, 3, "preparing the CT projector (compiled once, then read from its cache)…")  # FBP, SIRT, sinogram
    assert [d for d, _, _ in heard] == sorted(d for d, _, _ in heard) and heard[-1][:2] == (3, 3)
    assert {"FBP", "SIRT"} <= {what for _, _, what in heard}
    heard.clear()
    monkeypatch.setattr(ct_projector, "ready", lambda: True)  # compiled: nothing to say about it
    bare_ct_lab.run(CTSetting.of("phantom-3", angles=37, noise=0.01), with_lpips=False, report=lambda *a: heard.append(a))
    assert not any("preparing" in what for _, _, what in heard)


@pytest.mark.slow
def test_the_ct_lab_runs_a_512_slice_and_an_upload_at_512(bare_ct_lab):
    result = bare_ct_lab.run(CTSetting.of("camera", angles=90, noise=0.01, size=512), with_lpips=False)
    assert result.x_true.shape == (512, 512) and result.sinogram.shape == (90, detector_bins(512))
    assert any("trained on 256² images" in n for n in result.notes)
    by_name = {r.name: r for r in result.reconstructions}
    assert by_name["sirt"].metrics["psnr"] > by_name["fbp"].metrics["psnr"] > 15
    picture = np.zeros((300, 400), np.uint8)
    picture[100:200, 150:250] = 200  # a square: its centre-cropped 512² version keeps it in the middle
    key = bare_ct_lab.lab.add_upload(picture)
    upload = bare_ct_lab.run(CTSetting.of(key, angles=30, noise=0.0, size=512), with_lpips=False)
    assert upload.x_true.shape == (512, 512) and upload.x_true[256, 256] > 0.7 and upload.x_true[10, 10] < 0.05
    assert bare_ct_lab.lab.x_true(key).shape == (1, 1, 256, 256)  # the 256² version is the one it always was


@pytest.mark.parametrize("size", [300, 1024, "big", 128])
def test_a_ct_size_other_than_256_or_512_is_refused_with_a_message(bare_ct_lab, size):
    with pytest.raises(SettingError, match="image size must"):
        bare_ct_lab.run(CTSetting.of("phantom-1", angles=10, size=size), with_lpips=False)


def test_the_learned_model_is_used_and_named_when_angles_differ(ct_lab):
    shipped = ct_lab.shipped_angles("fbp_resunet")
    assert 60 in shipped
    exact = ct_lab.run(CTSetting.of("camera", angles=60), with_lpips=False)
    by_name = {r.name: r for r in exact.reconstructions}
    assert by_name["fbp_resunet"].metrics["psnr"] > by_name["fbp"].metrics["psnr"] + 3
    assert not exact.notes
    off = ct_lab.run(CTSetting.of("camera", angles=45), with_lpips=False)
    assert any("trained for" in n and "sees 45" in n for n in off.notes)


@pytest.mark.parametrize(
    "setting, message",
    [(CTSetting.of(angles=0), "number of angles"), (CTSetting.of(angles=12.5), "number of angles"),
     (CTSetting.of(noise=-1), "noise level"), (CTSetting.of(filter="none"), "FBP filter must be one of ramp"), (CTSetting.of(image=""), "choose an image"),
     (CTSetting.of(seed="x"), "seed")],
)  # fmt: skip
def test_ct_settings_are_validated(setting, message):
    with pytest.raises(SettingError, match=message):
        setting.validated()


def test_the_sinogram_picture_puts_detector_bins_down_and_angles_across():
    y = np.zeros((4, 10))
    y[1] = 1  # the second angle
    picture = sinogram_picture(y, width=40)
    assert picture.shape == (10, 40) and picture.dtype == np.uint8
    assert (picture[:, 10:20] == 255).all() and (picture[:, :10] == 0).all()
    assert sinogram_picture(np.zeros((3, 5))).max() == 0  # a flat sinogram does not divide by zero


def test_the_ct_tab_handler_shows_the_sinogram_pictures_and_table(bare_ct_lab):
    status, sinogram, pictures, table = ct_outputs(bare_ct_lab, "phantom-2", 20, 0.02, "hann", 3)
    assert "256² image, 20 angles" in status and "hann" in status and "⚠" in status  # no weights in this lab: said so
    assert sinogram.shape == (364, 360) and sinogram.dtype == np.uint8
    assert [caption.split(":")[0] for _, caption in pictures] == ["ground truth", "FBP", "SIRT"]
    frame = table.data  # a pandas Styler: the best value of each column marked, every row a contender
    assert list(frame.columns) == list(CT_TABLE_COLUMNS) and len(frame) == 2
    assert frame.iloc[0]["method"] == "SIRT"  # best PSNR first
    assert re.search(r"_row0_col2[^{]*\{[^}]*font-weight: 700", table.to_html())  # SIRT's PSNR is marked
    with pytest.raises(gr.Error, match="number of angles"):
        ct_outputs(bare_ct_lab, "phantom-2", 0, 0.02, "ramp", 3)
    with pytest.raises(gr.Error, match="unknown example image"):
        ct_outputs(bare_ct_lab, "no-such-image", 20, 0.02, "ramp", 3)
