"""The unrolled network that knows K: its data step, its use of K and Kᵀ, one checkpoint for several operators."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recon_demo.models import create_model, knows_operator
from recon_demo.models.unrolled import data_step
from recon_demo.physics.blur import LECTURE_OPERATOR, Blur, OperatorSpec


class Counting:
    """An operator that counts how often the network calls ``K`` and ``Kᵀ`` (and passes them through)."""

    def __init__(self, blur: Blur):
        self.blur, self.forwards, self.adjoints = blur, 0, 0

    def forward(self, x):
        self.forwards += 1
        return self.blur.forward(x)

    def adjoint(self, y):
        self.adjoints += 1
        return self.blur.adjoint(y)


def _dense(blur: Blur, h: int, w: int) -> torch.Tensor:
    """K as a matrix (h·w × h·w), column j = K e_j."""
    basis = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    return blur.forward(basis).reshape(h * w, h * w).T


def test_the_data_step_solves_the_regularised_normal_equations():
    blur, h, w = OperatorSpec("motion", 5, 30.0).build(), 9, 11
    g = torch.Generator().manual_seed(0)
    y, z = torch.rand(1, 1, h, w, generator=g, dtype=torch.float64), torch.rand(1, 1, h, w, generator=g, dtype=torch.float64)
    lam = torch.tensor(0.05, dtype=torch.float64)
    K = _dense(blur, h, w)
    expected = torch.linalg.solve(K.T @ K + lam * torch.eye(h * w, dtype=torch.float64), K.T @ y.flatten() + lam * z.flatten())
    got = data_step(blur, y.float(), z.float(), lam.float(), steps=200)
    torch.testing.assert_close(got.flatten().double(), expected, atol=2e-4, rtol=0)


def test_it_uses_the_operator_it_is_handed_forward_and_adjoint():
    model = create_model("unrolled").eval()
    assert knows_operator(model) and not knows_operator(create_model("unet"))
    counting = Counting(LECTURE_OPERATOR.build())
    with torch.inference_mode():
        model(torch.rand(1, 1, 32, 32), counting)
    steps = len(model.denoisers) + 1  # x_0, then one data step after each denoiser
    # each data step: KᵀK on the start and on every CG direction; Kᵀ y_delta once for all of them
    assert (counting.forwards, counting.adjoints) == (steps * (model.cg_steps + 1), steps * (model.cg_steps + 1) + 1)
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert model._operator(counting.blur).solver and model._operator(counting) is counting  # a Blur: by scipy's FFT
    with torch.inference_mode():  # by FFT (a Blur's for_solver()) or by convolution (the wrapper): the same result
        torch.testing.assert_close(model(y, counting.blur), model(y, Counting(counting.blur)), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="needs the operator"):
        model(torch.rand(1, 1, 32, 32))


def test_one_network_serves_several_operators_and_a_batch_of_them():
    model = create_model("unrolled").eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 40, 40, generator=g)
    blurs = [OperatorSpec("motion", 9, 20.0).build(), OperatorSpec("gaussian", 7, variance=2.0).build()]
    K = Blur.per_image(blurs)
    y = K.forward(x)
    with torch.inference_mode():
        together = model(y, K)
        alone = [model(y[i : i + 1], b) for i, b in enumerate(blurs)]
        swapped = model(y[:1], blurs[1])
    for i in range(2):
        torch.testing.assert_close(together[i : i + 1], alone[i], atol=1e-4, rtol=0)
    assert (swapped - alone[0]).abs().max() > 1e-3  # the operator it is handed changes the answer


def test_its_first_estimate_fits_the_measurement_better_than_the_measurement_does():
    """x_0 is a regularised least-squares solution: ||K x_0 − y|| is far below ||K y − y||, whatever the weights."""
    model = create_model("unrolled").eval()
    K = LECTURE_OPERATOR.build()
    x = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(2))
    y = K.forward(x)
    with torch.inference_mode():
        steps = model.iterates(y, K)
    assert len(steps) == len(model.denoisers) + 1 and all(s.shape == y.shape for s in steps)
    assert (K.forward(steps[0]) - y).norm() < 0.5 * (K.forward(y) - y).norm()


def test_under_bf16_autocast_the_data_step_stays_float32():
    model = create_model("unrolled").train()
    K = LECTURE_OPERATOR.build()
    y = K.forward(torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(y, K)
    assert out.dtype == torch.float32
    out.float().mean().backward()
    assert model.log_lam.grad is not None and torch.isfinite(model.log_lam.grad).all()


def test_it_runs_on_the_device_with_a_kernel_on_the_cpu(device):
    model = create_model("unrolled").to(device).eval()
    y = torch.rand(1, 1, 33, 47, device=device)
    with torch.inference_mode():
        out = model(y, LECTURE_OPERATOR.build())  # the kernel lives on the CPU; K follows its input's device
    assert out.device == y.device and out.shape == y.shape and torch.isfinite(out).all()


@pytest.fixture(scope="module")
def unrolled_lab(tmp_path_factory):
    """A lab whose shipped weights are an unrolled network trained for a few steps by the train CLI (general)."""
    from recon_demo.__main__ import main as cli
    from recon_demo.checkpoints import Manifest
    from recon_demo.lab.blur import Lab
    from recon_demo.serving.engine import Engine

    folder = tmp_path_factory.mktemp("unrolled_weights")
    args = ["train", "--model", "unrolled", "--regime", "general", "--kernel-sizes", "3,21", "--steps", "3", "--batch-size", "2",
            "--patch-size", "32", "--phantoms", "4", "--max-images", "6", "--val-size", "64", "--eval-every", "0", "--amp",
            "--out", str(folder / "unrolled_general.safetensors")]  # fmt: skip
    assert cli(args) == 0
    return Lab(Engine("cpu", manifest=Manifest.load(folder)))


def test_its_general_checkpoint_serves_the_course_regime_too(unrolled_lab):
    manifest = unrolled_lab.engine.manifest
    assert manifest.find("unrolled", "course") is manifest.find("unrolled", "general") is not None
    assert manifest.find("unet", "course") is None  # only a network handed K falls back


def test_the_lab_runs_it_beside_the_others_with_its_data_consistency(unrolled_lab):
    from recon_demo.lab.setting import Setting, model_choices

    assert model_choices().index("unrolled") == 7  # after the lecture's seven, before the classical methods
    setting = Setting(image="camera", operator=OperatorSpec("motion", 21, 70.0, kernel_style="centered"), noise=0.02,
                      models=("unrolled", "wiener"))  # fmt: skip
    result = unrolled_lab.run(setting, with_lpips=False, max_channels=4)
    rec = result.by_name("unrolled")
    assert rec.image is not None and rec.image.shape == (256, 256) and rec.error is None
    assert {"psnr", "ssim", "dc"} <= set(rec.metrics) and rec.metrics["psnr"] > 10
    assert rec.label == "Unrolled (knows K)" and "unrolled" in result.activations
    assert "unrolled" not in result.badges  # a blur inside its training ranges


def test_inspect_shows_its_iterates(unrolled_lab):
    from recon_demo.lab.inspection import inspect
    from recon_demo.lab.setting import Setting

    seen = inspect(unrolled_lab, Setting(models=("unrolled",)), "unrolled")
    model = create_model("unrolled")
    assert len(seen.iterates) == len(model.denoisers) + 1 == len(seen.iterate_psnr)
    assert all(x.shape == (256, 256) and 0 <= x.min() and x.max() <= 1 for x in seen.iterates)
    assert seen.layer == "denoisers.0.head.0" and seen.rf_extent[0] > 9  # the data steps see the whole kernel


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_inspects_last_estimate_is_reconstructs_result_in_either_precision(unrolled_lab, precision):
    from recon_demo.lab.blur import Lab
    from recon_demo.lab.inspection import inspect
    from recon_demo.lab.setting import Setting
    from recon_demo.serving.engine import Engine

    lab = Lab(Engine("cpu", manifest=unrolled_lab.engine.manifest, precision=precision))
    setting = Setting(models=("unrolled",))
    result = next(r for r in lab.run(setting, with_lpips=False, max_channels=0).reconstructions if r.name == "unrolled")
    np.testing.assert_allclose(inspect(lab, setting, "unrolled").iterates[-1], result.image, atol=1e-6)


def test_ct_training_draws_its_angle_count_from_the_range_and_refuses_what_does_not_fit():
    from recon_demo.cli.train import config_from_args
    from recon_demo.training.config import TrainConfig, TrainingError
    from recon_demo.training.data import STEPS_PER_GEOMETRY, TrainingImages, ct_sinogram_batch

    cfg = TrainConfig(model="unrolled", task="ct", angle_range=(20, 180), image_size=64, patch_size=64, val_size=64,
                      batch_size=2, data=("phantoms",), phantoms=4).validated()  # fmt: skip
    assert cfg.regime() == "custom" and replace(cfg, image_size=256, patch_size=256, val_size=256).regime() == "ct-any"
    data, g = TrainingImages(cfg.data, cfg.image_size, cfg.phantoms), torch.Generator().manual_seed(0)
    counts = []
    for step in range(3 * STEPS_PER_GEOMETRY):
        x, y, radon = ct_sinogram_batch(cfg, data, step, g, torch.device("cpu"))
        assert x.shape == (2, 1, 64, 64) and y.shape == (2, 1, *radon.sinogram_shape)
        counts.append(radon.n_angles)
    blocks = [set(counts[i : i + STEPS_PER_GEOMETRY]) for i in range(0, len(counts), STEPS_PER_GEOMETRY)]
    assert all(len(b) == 1 and 20 <= min(b) <= 180 for b in blocks) and len(set.union(*blocks)) > 1  # a geometry per block
    with pytest.raises(TrainingError, match="range of angle counts is for a CT network handed the operator"):
        TrainConfig(model="fbp_resunet", task="ct", angle_range=(20, 180)).validated()
    with pytest.raises(TrainingError, match="trains on whole images"):
        TrainConfig(model="unrolled", task="ct", patch_size=64).validated()
    with pytest.raises(TrainingError, match="validation's 60 angles must lie in the range"):
        TrainConfig(model="unrolled", task="ct", angle_range=(90, 180), patch_size=256).validated()
    assert TrainConfig(model="unrolled", task="ct", patch_size=256).validated().regime() == "custom"  # one geometry: not ct-any
    parser = __import__("argparse").ArgumentParser()
    from recon_demo.cli.train import add_arguments

    add_arguments(parser)
    args = parser.parse_args(["--task", "ct", "--model", "unrolled", "--angles", "20,180", "--patch-size", "256"])
    assert (config_from_args(args).angle_range, config_from_args(args).angles) == ((20, 180), 60)
    args = parser.parse_args(["--task", "ct", "--model", "unrolled", "--angles", "90,180", "--patch-size", "256"])
    assert config_from_args(args).validated().angles == 90  # the validation's count moves inside the range


def test_trained_for_ct_it_reconstructs_any_angle_count_in_evaluate_and_the_ct_tab(tmp_path_factory, capsys):
    import json

    from recon_demo.__main__ import main as cli
    from recon_demo.checkpoints import CT_ANY, Manifest
    from recon_demo.lab.blur import Lab
    from recon_demo.lab.ct import CTLab, CTSetting
    from recon_demo.serving.engine import Engine

    folder = tmp_path_factory.mktemp("unrolled_ct")
    out = folder / "unrolled_ct.safetensors"
    args = ["train", "--task", "ct", "--model", "unrolled", "--angles", "20,40", "--steps", "2", "--batch-size", "1",
            "--image-size", "64", "--patch-size", "64", "--val-size", "64", "--phantoms", "4", "--data", "phantoms",
            "--eval-every", "0", "--out", str(out), "--manifest-dir", str(folder)]  # fmt: skip
    assert cli(args) == 0
    capsys.readouterr()
    for angles in ("20", "45"):  # one checkpoint, two operators; handed the sinogram and A, not an FBP
        assert cli(["evaluate", "--task", "ct", "--models", f"unrolled={out}", "--baselines", "sirt", "--angles", angles,
                    "--size", "64", "--limit", "1", "--format", "json", "--quiet"]) == 0  # fmt: skip
        result = json.loads(capsys.readouterr().out)
        assert result["results"]["unrolled"]["psnr"] > 10 and result["results"]["unrolled"]["dc"] is not None
    entry = Manifest.load(folder).entries[0]
    assert (entry.model, entry.regime) == ("unrolled", "custom")  # 64² training: not the shipped ct-any protocol
    assert entry.operator["angle_range"] == [20, 40] and entry.trained_for() == "CT, 20 to 40 angles, sinogram noise 0.01"
    entry.regime = CT_ANY  # as if shipped: the CT tab then runs it beside FBP, SIRT and the refiner
    manifest = Manifest.load(folder)
    manifest.entries = [entry]
    lab = CTLab(Lab(Engine("cpu", manifest=manifest)))
    for angles in (20, 45):
        result = lab.run(CTSetting.of(image="phantom-1", angles=angles), with_lpips=False)
        unrolled = next(r for r in result.reconstructions if r.name == "unrolled")
        assert unrolled.label == "Unrolled (knows K)" and unrolled.image.shape == (256, 256) and unrolled.metrics["psnr"] > 10


def test_bf16_runs_only_where_native_and_only_for_checkpoints_it_leaves_within_0_05_db(monkeypatch, tmp_path):
    from recon_demo.checkpoints import Manifest, ManifestEntry, save_checkpoint
    from recon_demo.serving.engine import Engine, bf16_checked

    torch.manual_seed(0)
    manifest = Manifest([], tmp_path)
    for name, change in (("unet", -0.012), ("unrolled", -0.07), ("cnn", None)):
        path = tmp_path / f"{name}.safetensors"
        manifest.upsert(ManifestEntry(name, "general", path.name, save_checkpoint(create_model(name), path),
                                      bf16={} if change is None else {"psnr_change_db": change}))  # fmt: skip
    assert [bf16_checked(manifest.find(n, "general")) for n in ("unet", "unrolled", "cnn")] == [True, False, False]
    assert bf16_checked(None) is False
    K = LECTURE_OPERATOR.build()
    y = K.forward(torch.rand(1, 1, 48, 48))

    def ran(env: str, precision: str = "auto") -> dict[str, str]:
        monkeypatch.setenv("RECON_CPU_BF16", env)  # the CPU's probe overridden: "1" native, "0" not
        engine = Engine("cpu", manifest=Manifest.load(tmp_path), precision=precision)
        return {n: engine.precision_name(engine.model(n, regime="general")) for n in ("unet", "unrolled", "cnn")}

    assert ran("1") == {"unet": "bf16", "unrolled": "fp32", "cnn": "fp32"}  # native: the checked one alone
    assert ran("0") == {"unet": "fp32", "unrolled": "fp32", "cnn": "fp32"}  # not native (an AVX2 CPU): never slower
    assert ran("1", "fp32") == dict.fromkeys(("unet", "unrolled", "cnn"), "fp32")  # evaluate's default
    assert ran("0", "bf16") == dict.fromkeys(("unet", "unrolled", "cnn"), "bf16")  # to measure the change
    monkeypatch.setenv("RECON_CPU_BF16", "1")
    auto, fp32 = Engine("cpu", manifest=Manifest.load(tmp_path)), Engine("cpu", manifest=Manifest.load(tmp_path), precision="fp32")
    own = auto.model("unet", checkpoint=tmp_path / "unet.safetensors")  # the same file, as one's own upload: float32
    assert auto.precision_name(own) == "fp32"
    u16, u32 = auto.forward(auto.model("unet", regime="general"), y)[0], fp32.forward(fp32.model("unet", regime="general"), y)[0]
    assert 0 < (u16 - u32).abs().max() < 0.05  # bf16 ran: close, not equal
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        Engine("cpu", precision="fp16")


def test_a_training_records_its_held_out_metrics_in_float32(monkeypatch):
    """What a manifest records reproduces on every machine: a run is measured in float32, and the command it records
    asks for float32, so that the unrolled network (bf16 where native) gives the same figures everywhere."""
    import recon_demo.evaluate as evaluate
    from recon_demo.training.config import TrainConfig
    from recon_demo.training.record import heldout_metrics

    asked = []

    def fake(cfg, engine=None, report=None):
        asked.append(cfg)
        scores = {"mse": 0.001, "psnr": 30.0, "ssim": 0.9}
        return {"protocol": {"summary": "s", "images": ["a"]}, "results": {cfg.models[0][0]: scores, "input": scores, "fbp": scores}}

    monkeypatch.setattr(evaluate, "run_evaluation", fake)
    monkeypatch.setattr(evaluate, "run_ct_evaluation", fake)
    blur = heldout_metrics(TrainConfig(model="unrolled"), "u.safetensors")
    ct = heldout_metrics(TrainConfig(task="ct", model="unrolled", angles=60), "c.safetensors")
    assert [cfg.precision for cfg in asked] == ["fp32", "fp32"]
    assert blur["command"].endswith("--lpips --precision fp32") and ct["command"].endswith("--lpips --precision fp32")


def test_evaluate_runs_in_float32_by_default_and_says_how_each_network_ran():
    from recon_demo.evaluate import EvalConfig, run_evaluation

    cfg = EvalConfig(models=[("unrolled", None), ("cnn", None)], regime="general", limit=1, size=64)
    assert cfg.precision == "fp32"
    fp32, bf16 = run_evaluation(cfg), run_evaluation(replace(cfg, precision="bf16"))
    assert fp32["protocol"]["precision"] == {"unrolled": "fp32", "cnn": "fp32"}
    assert bf16["protocol"]["precision"] == {"unrolled": "bf16", "cnn": "bf16"}
    for name in ("cnn", "unrolled"):
        assert fp32["results"][name]["psnr"] != bf16["results"][name]["psnr"]
        assert fp32["results"][name]["psnr"] == pytest.approx(bf16["results"][name]["psnr"], abs=0.5)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        run_evaluation(replace(cfg, precision="fp16"))
