from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from recon_demo.__main__ import main as cli
from recon_demo.lab.loss_study import EXPERIMENTS, LECTURE_RESULTS, LossStudy, LossStudyConfig, live_defaults
from recon_demo.training import TrainingError

# The lecture's protocol at a size CI affords: 2 epochs of 2 batches of 4 images at 64².
SMALL = dict(epochs=2, n_images=8, size=64, epoch_batches=8)


def test_the_presets_are_the_lectures_two_experiments():
    assert list(EXPERIMENTS["pure"]) == ["MSE", "L1", "SSIM"]
    assert list(EXPERIMENTS["mixed"]) == ["MSE + 0.1 Fourier", "0.5 MSE + 0.5 L1", "MSE + 0.2 SSIM + 0.1 Fourier"]
    assert set(LECTURE_RESULTS) == set(EXPERIMENTS["pure"]) | set(EXPERIMENTS["mixed"])
    cfg = LossStudyConfig()
    assert cfg.steps == 80  # 10 epochs × 8 batches of 4 from 32 images
    train = cfg.train_config("mse")
    assert (train.model, train.batch_size, train.lr, train.seed, train.max_images) == ("loss_study_cnn", 4, 1e-3, 0, 32)
    assert (train.operator.kernel_size, train.operator.angle, train.noise, train.patch_size) == (9, 20.0, 0.01, 256)


def test_the_train_tabs_defaults_beat_the_measurement_with_mse():
    # the tab's defaults are the lecture's protocol with the residual CNN at 128²: MSE ends above the measurement
    # (the lecture's small CNN at 256² ends below it at this length); the same seed and data every time
    cfg = live_defaults()
    assert (cfg.model, cfg.size, cfg.epochs, cfg.n_images, cfg.losses) == ("rescnn", 128, 10, 32, EXPERIMENTS["pure"])
    study = LossStudy(LossStudyConfig(**{**vars(cfg), "losses": {"MSE": "mse"}, "lpips": False}))
    list(study.run())
    assert study.results["MSE"].metrics["psnr"] > study.measurement_metrics()["psnr"] + 0.5


def test_a_study_streams_every_step_and_compares_the_losses(tmp_path):
    study = LossStudy(LossStudyConfig(losses={"MSE": "mse", "SSIM": "ssim_lecture"}, eval_every=2, **SMALL))
    events = list(study.run())
    assert [label for label, _ in events] == ["MSE"] * 4 + ["SSIM"] * 4
    assert [e.step for _, e in events] == [1, 2, 3, 4] * 2
    assert all(e.x_rec is not None for _, e in events if e.step % 2 == 0)  # live reconstructions
    assert list(study.results) == ["MSE", "SSIM"]
    mse, ssim = study.results["MSE"], study.results["SSIM"]
    assert len(mse.history) == 4 and mse.status == "done" and mse.spec == "mse" and ssim.spec == "ssim_lecture"
    assert mse.history != ssim.history  # same seed and data, different losses
    relative = study.relative_histories()
    assert relative["MSE"][0] == 1.0 and relative["MSE"][1] == pytest.approx(mse.history[1] / mse.history[0])
    for r in study.results.values():
        assert np.isfinite(r.metrics["psnr"]) and 0 < r.metrics["ssim"] < 1 and r.x_rec.shape == (64, 64)
        assert r.metrics["lpips"] is not None  # LPIPS ships in weights/
    table = study.format_table()
    assert "27.070 / 0.7348" in table and "27.560 / 0.8161" in table and "wall time" in table
    data = study.to_json()
    assert data["results"]["MSE"]["lecture"] == {"psnr": 27.07, "ssim": 0.7348}
    assert data["results"]["SSIM"]["history"] == ssim.history and data["protocol"]["steps"] == 4
    png = study.save_figure(tmp_path / "figure.png")
    assert Image.open(png).size[0] > 500
    fig = study.figure()  # every text at least 14 px in the figure's own pixels (readable projected)
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")) if t.get_text()]
    assert texts and min(t.get_fontsize() for t in texts) * study.FIGURE_DPI / 72 >= 14


def test_the_same_configuration_gives_the_same_result():
    # torch.manual_seed(0) before each configuration: identical weights, data and noise
    study = LossStudy(LossStudyConfig(losses={"a": "mse", "b": "1*mse"}, lpips=False, **SMALL))
    list(study.run())
    assert study.results["a"].history == study.results["b"].history
    assert study.results["a"].metrics == study.results["b"].metrics


def test_a_stop_ends_the_configuration_in_flight_and_skips_the_rest():
    cancel = threading.Event()
    study = LossStudy(LossStudyConfig(losses={"MSE": "mse", "L1": "l1"}, lpips=False, **SMALL))
    for _, event in study.run(cancel):
        if event.step == 2:
            cancel.set()
    assert list(study.results) == ["MSE"] and study.results["MSE"].status == "cancelled"
    assert len(study.results["MSE"].history) == 2 and np.isfinite(study.results["MSE"].metrics["psnr"])
    assert "(stopped)" in study.format_table()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"losses": {}}, "no loss to study"),
        ({"losses": {"bad": "mse + ssmi"}}, "bad: unknown loss 'ssmi'"),
        ({"epochs": 0}, "epochs must be an integer"),
        ({"size": 4}, r"^image size must be an integer in \[8, 1024\], got 4"),
        ({"test_image": "chelsea"}, "must be a held-out image"),
    ],
)
def test_bad_configurations_are_refused_before_training(change, message):
    with pytest.raises(TrainingError, match=message):
        LossStudy(LossStudyConfig(**{**SMALL, **change}))


def test_cli_json_custom_losses_and_figure(tmp_path, capsys):
    figure = tmp_path / "study.png"
    args = ["loss-study", "--experiment", "none", "--loss", "mse + 0.5*fourier_hp(0.3)", "--loss", "L1 only=l1",
            "--epochs", "1", "--images", "4", "--size", "48", "--no-lpips", "--format", "json", "--save-figure", str(figure)]  # fmt: skip
    assert cli(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["results"]) == ["mse + 0.5*fourier_hp(0.3)", "L1 only"]
    assert data["results"]["L1 only"]["lecture"] is None and data["results"]["L1 only"]["lpips"] is None
    assert figure.is_file()


def test_cli_refuses_bad_flags_with_status_2(capsys):
    assert cli(["loss-study", "--loss", "mse + nope", "--epochs", "1"]) == 2
    assert "unknown loss 'nope'" in capsys.readouterr().err
    assert cli(["loss-study", "--experiment", "none"]) == 2
    assert "no loss to study" in capsys.readouterr().err


def test_the_moving_average_and_the_centre_zoom():
    from recon_demo.lab.loss_study import moving_average
    from recon_demo.lab.pictures import centre_zoom

    assert moving_average([4.0, 2.0, 0.0, 2.0], window=2) == [4.0, 3.0, 1.0, 1.0]
    assert moving_average([], window=3) == []
    image = np.arange(64.0).reshape(8, 8)
    zoomed = centre_zoom(image, 2)
    assert zoomed.shape == (8, 8) and zoomed[0, 0] == zoomed[1, 1] == image[2, 2] and zoomed[-1, -1] == image[5, 5]
