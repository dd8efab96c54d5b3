from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from recon_demo.__main__ import main as cli
from recon_demo.checkpoints import Manifest, read_state_dict
from recon_demo.images import split_names
from recon_demo.physics.blur import LECTURE_OPERATOR, OperatorSpec
from recon_demo.training import (
    GENERAL_RANGES,
    OperatorRanges,
    TrainConfig,
    Trainer,
    TrainingError,
    TrainingImages,
    clean_batch,
    measure,
    train,
)

# A run small enough for CI: the lecture's CNN on 32² crops of a few images.
SMALL = dict(model="cnn", steps=6, batch_size=2, patch_size=32, phantoms=2, max_images=4, val_size=64, eval_every=3)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "resnet"}, "unknown model 'resnet'"),
        ({"loss": "mse + ssmi"}, "unknown loss 'ssmi'"),
        ({"steps": 0}, r"steps must be an integer in \[1, 1000000\]"),
        ({"batch_size": 1000}, "batch size must be an integer"),
        ({"patch_size": 512}, r"patch size must be an integer in \[8, 256\]"),
        ({"lr": float("nan")}, "learning rate must be in"),
        ({"lr": 5.0}, "learning rate must be in"),
        ({"schedule": "linear"}, "unknown schedule 'linear'"),
        ({"sampling": "random"}, "unknown sampling 'random'"),
        ({"noise": -0.1}, "noise level must be in"),
        ({"noise": float("inf")}, "noise level must be in"),
        ({"operator": OperatorSpec("motion", 8, 20.0)}, "kernel size must be an odd integer"),
        ({"ranges": OperatorRanges(blurs=("box",))}, "blurs must be a non-empty list"),
        ({"ranges": OperatorRanges(angle=(90.0, 10.0))}, "angle range must be"),
        ({"ranges": OperatorRanges(noise=(-1.0, 0.1))}, "noise levels >= 0"),
        ({"ranges": OperatorRanges(kernel_size=(3, 101))}, r"kernel size must be an integer in \[1, 31\], got 101"),
        ({"data": ()}, "no training data"),
        ({"val_image": "chelsea"}, "must be a held-out image"),
        ({"max_images": 0}, "max_images must be an integer >= 1"),
        ({"ema": 1.0}, r"the EMA decay must be in \[0, 1\)"),
        ({"model": "unet", "patch_size": 100}, "patch size must be a multiple of 8 for unet"),
        ({"ema": -0.5}, r"the EMA decay must be in \[0, 1\)"),
    ],
)
def test_config_validation_says_what_is_allowed(change, message):
    with pytest.raises(TrainingError, match=message):
        TrainConfig(**change).validated()


def test_bad_model_kwargs_are_refused():
    with pytest.raises(TrainingError, match="bad model kwargs for cnn"):
        Trainer(TrainConfig(**{**SMALL, "model_kwargs": {"depth": 3}}))


def test_amp_on_the_cpu_trains_in_bf16_and_a_resume_records_the_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("RECON_CPU_BF16", "1")  # what a CPU with AVX512-BF16 does; on an AVX2-only one, emulated (slower)
    cfg = TrainConfig(**{**SMALL, "steps": 4}, checkpoint=str(tmp_path / "amp.safetensors"), device="cpu")
    list(train(cfg))
    resumed = Trainer(TrainConfig(**{**SMALL, "steps": 8}, checkpoint=cfg.checkpoint, device="cpu", amp=True), resume=True)
    seen = []
    hook = resumed.model.register_forward_hook(lambda module, args, out: seen.append(out.dtype) if module.training else None)
    losses = [e.loss for e in resumed.run()]
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16} and all(np.isfinite(losses))
    assert resumed.precision == [[0, "fp32"], [4, "bf16"]]
    args = ["train", "--model", "cnn", "--steps", "8", "--batch-size", "2", "--patch-size", "32", "--phantoms", "2",
            "--max-images", "4", "--val-size", "64", "--eval-every", "3", "--device", "cpu", "--out", cfg.checkpoint,
            "--resume"]  # fmt: skip
    assert cli(args) == 0  # back to fp32, through the CLI: the manifest records all three stretches
    recipe = Manifest.load(tmp_path).find("cnn").recipe
    assert recipe["precision"] == [[0, "fp32"], [4, "bf16"], [8, "fp32"]] and recipe["amp"] is False


def test_regimes():
    assert TrainConfig().regime() == "course"
    assert TrainConfig(ranges=GENERAL_RANGES).regime() == "general"
    assert TrainConfig(operator=OperatorSpec("motion", 7, 45.0)).regime() == "custom"


def test_operator_ranges_are_sampled_within_bounds_and_reproducibly():
    draws = [GENERAL_RANGES.sample(torch.Generator().manual_seed(s)) for s in range(200)]
    assert draws[:5] == [GENERAL_RANGES.sample(torch.Generator().manual_seed(s)) for s in range(5)]
    assert {spec.blur for spec, _ in draws} == {"motion", "gaussian"}
    assert {spec.kernel_style for spec, _ in draws} == {"ippy", "centered"}
    assert {spec.kernel_size for spec, _ in draws} == set(range(3, 16, 2))
    assert all(0 <= spec.angle <= 180 and 0.5 <= spec.variance <= 4 and 0 <= noise <= 0.05 for spec, noise in draws)
    lecture = sum((spec, noise) == (LECTURE_OPERATOR, 0.01) for spec, noise in draws)
    assert 30 <= lecture <= 70  # one draw in four is the lecture's setting (50 expected of 200)
    assert not any(spec == LECTURE_OPERATOR for spec, _ in (OperatorRanges().sample(torch.Generator().manual_seed(s))
                                                         for s in range(200)))  # fmt: skip
    with pytest.raises(ValueError, match=r"share of the draws must be in \[0, 1\]"):
        OperatorRanges(lecture_share=1.5).validate()
    with pytest.raises(TrainingError, match=r"share of the draws must be in \[0, 1\]"):  # a run says it as its own error
        TrainConfig(ranges=OperatorRanges(lecture_share=1.5)).validated()


def test_measurements_are_synthesised_per_image():
    x = torch.rand(4, 1, 32, 32)
    fixed = TrainConfig(noise=0.0)
    y, K = measure(fixed, x, torch.Generator())
    assert torch.allclose(y, LECTURE_OPERATOR.build().forward(x)) and torch.equal(K.kernel, LECTURE_OPERATOR.kernel())
    general = TrainConfig(ranges=OperatorRanges(noise=(0.0, 0.0)))
    same = x[:1].repeat(4, 1, 1, 1)
    y, K = measure(general, same, torch.Generator().manual_seed(0))
    assert not torch.allclose(y[0], y[1])  # each image drew its own operator
    assert K.kernel.shape[0] == 4 and torch.allclose(K.forward(same), y)  # and the network that knows K is handed it


def test_patches_and_epochs_sampling():
    cfg = TrainConfig(**{**SMALL, "max_images": 6, "batch_size": 4}).validated()
    data = TrainingImages(cfg.data, cfg.image_size, cfg.phantoms, cfg.max_images)
    assert len(data) == 6 and data.describe()["package"] == split_names("train")[:6]
    a = clean_batch(cfg, data, 0, torch.Generator().manual_seed(1))
    b = clean_batch(cfg, data, 0, torch.Generator().manual_seed(1))
    assert a.shape == (4, 1, 32, 32) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    # epochs: each image once per epoch, in an order that depends on the epoch only
    cfg = TrainConfig(**{**SMALL, "max_images": 6, "batch_size": 4, "sampling": "epochs", "patch_size": 256}).validated()
    epoch = torch.cat([clean_batch(cfg, data, step, torch.Generator()) for step in (0, 1)])
    assert epoch.shape == (6, 1, 256, 256)
    seen = sorted(next(i for i in range(6) if torch.equal(t, _centre(data[i]))) for t in epoch)
    assert seen == list(range(6))
    assert torch.equal(clean_batch(cfg, data, 2, torch.Generator()), clean_batch(cfg, data, 2, torch.Generator().manual_seed(9)))


def _centre(img: torch.Tensor, patch: int = 256) -> torch.Tensor:
    _, h, w = img.shape
    return img[:, (h - patch) // 2 : (h - patch) // 2 + patch, (w - patch) // 2 : (w - patch) // 2 + patch]


def test_a_folder_in_the_lecture_layout_is_training_data(tmp_path):
    rng = np.random.default_rng(0)
    for patient in ("L067", "L096"):
        (tmp_path / "Mayo" / "train" / patient).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (80, 96), dtype=np.uint8)).save(tmp_path / "Mayo" / "train" / patient / f"{i}.png")
    (tmp_path / "Mayo" / "train" / "notes.txt").write_text("not an image")
    data = TrainingImages((str(tmp_path / "Mayo" / "train"),), 64)
    assert len(data) == 4 and data.describe()["files"] == 4
    assert data[0].shape == (1, 64, 76)
    with pytest.raises(TrainingError, match="no folder"):
        TrainingImages((str(tmp_path / "missing"),), 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="no images"):
        TrainingImages((str(tmp_path / "empty"),), 64)


def test_events_stream_steps_and_validations():
    events = list(train(TrainConfig(**SMALL)))
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.status for e in events] == ["running"] * 5 + ["done"]
    assert [e.metrics is not None for e in events] == [False, False, True, False, False, True]
    last = events[-1]
    assert set(last.parts) == {"mse"} and last.loss == pytest.approx(last.parts["mse"])
    assert last.x_rec.shape == (64, 64) and 0 <= last.x_rec.min() and last.x_rec.max() <= 1
    assert set(last.metrics) >= {"mse", "psnr", "ssim"} and np.isfinite(last.metrics["psnr"])
    assert all(e.elapsed > 0 for e in events) and events[-1].elapsed >= events[0].elapsed


def test_a_combined_loss_reports_each_term():
    event = list(train(TrainConfig(**{**SMALL, "steps": 2, "loss": "mse + 0.2*ssim + 0.1*fourier"})))[-1]
    assert set(event.parts) == {"mse", "ssim", "fourier"}
    assert event.loss == pytest.approx(event.parts["mse"] + 0.2 * event.parts["ssim"] + 0.1 * event.parts["fourier"], rel=1e-5)


def test_cosine_schedule_decays_the_learning_rate():
    events = list(train(TrainConfig(**{**SMALL, "schedule": "cosine", "eval_every": 0})))
    lrs = [e.lr for e in events]
    assert lrs[0] == pytest.approx(1e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))


def test_cancel_cuts_into_the_step_and_keeps_the_last_completed_one(tmp_path):
    # The cancel arrives in the middle of step 3, inside the UNet's decoder: the run must cut into the step.
    cfg = TrainConfig(model="unet", steps=1000, batch_size=4, patch_size=96, phantoms=2, max_images=4, val_size=64,
                      eval_every=0, checkpoint=str(tmp_path / "unet.safetensors"), checkpoint_every=0)  # fmt: skip
    trainer = Trainer(cfg)
    cancel = threading.Event()
    snapshot = {}
    after_cancel: list[str] = []  # modules whose forward pass began once the cancel was set

    def cancel_mid_step(*_):
        if trainer.step == 2 and not cancel.is_set():
            snapshot.update(weights(trainer.model))
            cancel.set()

    trainer.model.dec2.register_forward_hook(cancel_mid_step)
    for name, module in trainer.model.named_modules():
        module.register_forward_pre_hook(lambda *_, name=name: after_cancel.append(name) if cancel.is_set() else None)
    events = list(trainer.run(cancel))
    assert [e.step for e in events] == [1, 2, 2] and events[-1].status == "cancelled" and trainer.step == 2
    # the run stops at the very next module: dec1 is entered (its hooks see the cancel) but none of its layers run
    assert after_cancel in ([], ["dec1"]), after_cancel
    assert same_weights(snapshot, weights(trainer.model))  # the step in flight was dropped
    assert cfg.state_path().is_file() and not (tmp_path / "unet.safetensors").exists()
    assert Trainer(cfg, resume=True).step == 2


def test_cancel_from_another_thread_stops_the_run():
    cfg = TrainConfig(**{**SMALL, "steps": 100_000, "eval_every": 0})
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    events = list(train(cfg, cancel))
    assert events[-1].status == "cancelled" and events[-1].step < 100_000


def test_a_callable_cancels_too():
    calls = iter(range(10_000))
    events = list(train(TrainConfig(**{**SMALL, "steps": 50}), cancel=lambda: next(calls) > 40))
    assert events[-1].status == "cancelled" and 0 < events[-1].step < 50


def test_resume_reproduces_an_uninterrupted_run_on_the_cpu(tmp_path):
    base = dict(SMALL, steps=8, device="cpu", checkpoint_every=3, schedule="cosine", loss="mse + 0.1*fourier")
    whole = Trainer(TrainConfig(**base, checkpoint=str(tmp_path / "whole.safetensors")))
    list(whole.run())
    # The same run, stopped during step 5 (after the state saved at step 3), then resumed twice.
    cfg = TrainConfig(**base, checkpoint=str(tmp_path / "parts.safetensors"))
    calls = iter(range(10_000))
    first = Trainer(cfg)
    steps_seen = [e.step for e in first.run(cancel=lambda: first.step == 4 and next(calls) > 2)]
    assert steps_seen[-1] == 4
    second = Trainer(cfg, resume=True)
    assert second.step == 4
    list(second.run())
    assert second.step == 8
    assert same_weights(weights(whole.model), weights(second.model))
    assert same_weights(read_state_dict(tmp_path / "whole.safetensors"), read_state_dict(tmp_path / "parts.safetensors"))


def test_resume_refuses_another_configuration_and_a_missing_state(tmp_path):
    cfg = TrainConfig(**SMALL, checkpoint=str(tmp_path / "a.safetensors"))
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer(cfg, resume=True)
    list(train(cfg))
    with pytest.raises(TrainingError, match=r"another configuration \(loss: 'mse' → 'l1'\)"):
        Trainer(TrainConfig(**{**SMALL, "loss": "l1"}, checkpoint=cfg.checkpoint), resume=True)
    longer = Trainer(TrainConfig(**{**SMALL, "steps": 9}, checkpoint=cfg.checkpoint), resume=True)
    assert longer.step == 6 and [e.step for e in longer.run()] == [7, 8, 9]
    assert longer.segments == [[6, 0], [9, 6]]  # what the manifest's recipe records of a lengthened run
    assert Trainer(TrainConfig(**{**SMALL, "steps": 9}, checkpoint=cfg.checkpoint), resume=True).segments == [[6, 0], [9, 6]]
    cfg.state_path().write_bytes(b"not a state")
    with pytest.raises(TrainingError, match="cannot read the training state"):
        Trainer(cfg, resume=True)


def test_a_state_written_before_a_config_field_existed_resumes(tmp_path):
    cfg = TrainConfig(**SMALL, checkpoint=str(tmp_path / "old.safetensors"))
    list(train(cfg))
    state = torch.load(cfg.state_path(), weights_only=True)
    config = json.loads(state["config"])
    for field in ("task", "angles", "ct_filter"):  # the fields the CT task added
        del config[field]
    state["config"] = json.dumps(config)
    del state["segments"]
    torch.save(state, cfg.state_path())
    resumed = Trainer(TrainConfig(**{**SMALL, "steps": 7}, checkpoint=cfg.checkpoint), resume=True)
    assert resumed.step == 6 and resumed.segments == [[6, 0], [7, 6]]


def test_ema_saves_the_moving_average_of_the_weights_and_resumes_it(tmp_path):
    base = dict(SMALL, steps=8, device="cpu", checkpoint_every=3, ema=0.9, lr=3e-3)
    # The average, recomputed by hand from the weights after every step of a run without it.
    plain = Trainer(TrainConfig(**{**base, "ema": 0.0}))
    expected = weights(plain.model)
    for event in plain.run():
        decay = min(0.9, event.step / (9 + event.step))  # (1 + step) / (10 + step), step counted before the update
        expected = {k: v.lerp(w, 1 - decay) if v.is_floating_point() else w.clone() for k, v in expected.items()
                    for w in [plain.model.state_dict()[k]]}  # fmt: skip
    whole = Trainer(TrainConfig(**base, checkpoint=str(tmp_path / "whole.safetensors")))
    list(whole.run())
    assert same_weights(weights(whole.model), weights(plain.model))  # the average does not touch the training
    saved = read_state_dict(tmp_path / "whole.safetensors")
    assert all(torch.allclose(saved[k], expected[k], atol=1e-6) for k in expected)
    assert not same_weights(saved, weights(whole.model))
    assert whole.validate()[0] != plain.validate()[0]  # validation sees the average too
    # Stopped after step 4 and resumed: the same average as the uninterrupted run.
    cfg = TrainConfig(**base, checkpoint=str(tmp_path / "parts.safetensors"))
    calls = iter(range(10_000))
    first = Trainer(cfg)
    list(first.run(cancel=lambda: first.step == 4 and next(calls) > 2))
    second = Trainer(cfg, resume=True)
    list(second.run())
    assert same_weights(saved, read_state_dict(tmp_path / "parts.safetensors"))
    with pytest.raises(TrainingError, match=r"another configuration \(ema: 0.9 → 0.99\)"):
        Trainer(replace(cfg, ema=0.99), resume=True)


def test_a_diverging_run_stops_with_a_message():
    trainer = Trainer(TrainConfig(**SMALL))
    trainer.loss_fn.total = lambda parts: sum(parts.values()) * float("nan")
    with pytest.raises(TrainingError, match="the loss became nan at step 1"):
        list(trainer.run())


def test_training_improves_the_cnn():
    cfg = TrainConfig(model="cnn", steps=60, batch_size=4, patch_size=48, lr=3e-3, phantoms=4, max_images=8, val_size=64,
                      eval_every=0)  # fmt: skip
    trainer = Trainer(cfg)
    before = trainer.validate()[0]["psnr"]
    after = list(trainer.run())[-1].metrics["psnr"]
    assert after > before + 3


def test_ct_batches_crop_the_fbp_where_they_crop_the_image():
    from recon_demo.training import ct_batch

    cfg = TrainConfig(**{**SMALL, "task": "ct", "angles": 90, "noise": 0.0, "image_size": 64, "patch_size": 32, "batch_size": 3})
    data = TrainingImages(cfg.data, cfg.image_size, cfg.phantoms, cfg.max_images)
    x_true, x_fbp = ct_batch(cfg, data, 0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x_true.shape == x_fbp.shape == (3, 1, 32, 32)
    for x, f in zip(x_true, x_fbp):  # a noiseless FBP over 90 angles is close to its image, crop for crop
        assert float(torch.corrcoef(torch.stack([x.flatten(), f.flatten()]))[0, 1]) > 0.9
    with pytest.raises(TrainingError, match="for deblurring, not CT"):
        TrainConfig(**{**SMALL, "task": "ct"}, ranges=GENERAL_RANGES).validated()
    assert TrainConfig(task="ct", angles=20).regime() == "ct-20" and TrainConfig(task="ct", noise=0.02).regime() == "custom"


def test_amp_on_a_cpu_without_bf16_falls_back_to_fp32_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECON_CPU_BF16", "0")  # as on an AVX2-only CPU, where emulated bf16 made a step 17× slower
    out = tmp_path / "cnn_course.safetensors"
    args = ["train", "--model", "cnn", "--steps", "2", "--batch-size", "2", "--patch-size", "32", "--phantoms", "2",
            "--max-images", "2", "--eval-every", "0", "--val-size", "64", "--amp", "--out", str(out)]  # fmt: skip
    assert cli(args) == 0
    err = capsys.readouterr().err
    assert "train: --amp ignored: RECON_CPU_BF16=0; training in fp32" in err.splitlines()
    entry = Manifest.load(tmp_path).find("cnn", "course")
    assert entry.recipe["amp"] is False and entry.recipe["amp_note"] == "--amp ignored: RECON_CPU_BF16=0; training in fp32"
    monkeypatch.setenv("RECON_CPU_BF16", "1")
    assert Trainer(TrainConfig(model="cnn", steps=1, amp=True, phantoms=2, max_images=2, val_size=64)).cfg.amp


def test_a_state_written_before_an_operator_field_existed_still_resumes(tmp_path):
    cfg = TrainConfig(**{**SMALL, "steps": 2}, checkpoint=str(tmp_path / "cnn.safetensors"), device="cpu")
    list(Trainer(cfg).run())
    state = torch.load(cfg.state_path(), map_location="cpu", weights_only=True)
    old = json.loads(state["config"])
    old["operator"] = {"style" if k == "kernel_style" else k: v for k, v in old["operator"].items() if k != "drawn"}
    state["config"] = json.dumps(old)  # as written before "style" was renamed and drawn kernels existed
    torch.save(state, cfg.state_path())
    assert Trainer(replace(cfg, steps=3), resume=True).step == 2
