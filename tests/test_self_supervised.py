"""Training without ground truth: the losses (``losses.self_supervised_parts``, ``dihedral``), the training loop's and the
CLI's ``--self-supervised``, and the Train tab's fine-tuning beside the supervised one (``lab.self_supervised``)."""

from __future__ import annotations

import pytest
import torch

from recon_demo.__main__ import main as cli
from recon_demo.lab.self_supervised import FineTune, FineTuneConfig
from recon_demo.lab.setting import SettingError
from recon_demo.losses import DIHEDRAL, SELF_SUPERVISED, dihedral, self_supervised_parts
from recon_demo.physics.blur import Blur, OperatorSpec
from recon_demo.physics.kernels import gaussian_kernel
from recon_demo.training import TrainConfig, Trainer, TrainingError
from tests.test_training import SMALL


def test_the_dihedral_group():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    moved = [dihedral(x, g) for g in range(DIHEDRAL)]
    assert torch.equal(moved[0], x)
    assert len({tuple(m.flatten().tolist()) for m in moved}) == DIHEDRAL  # eight different transforms of a square
    assert torch.equal(dihedral(dihedral(x, 1), 3), x) and torch.equal(dihedral(dihedral(x, 5), 5), x)


@pytest.mark.parametrize("name", list(SELF_SUPERVISED))
def test_the_loss_is_zero_for_a_consistent_equivariant_model(name):
    """K the identity, f the identity, no noise: f(y) agrees with y through K, and f(K T x) = T x for every T."""
    y = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    identity = Blur(torch.ones(1, 1))
    parts = self_supervised_parts(name, lambda t: t, y, y, identity, 0.0, torch.Generator().manual_seed(1))
    assert set(parts) == ({"mc", "ei"} if name == "ei" else {"mc"})
    assert all(float(v) < 1e-12 for v in parts.values())


def test_equivariance_is_what_ei_adds():
    """A model consistent with a rotation-symmetric blur but not equivariant: mc is blind to it, ei is not."""
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    K = Blur(gaussian_kernel(5, 1.5))
    gradient = torch.linspace(0, 1, 16).view(1, 1, 1, 16)

    def model(t):  # y itself, plus something that depends on where the image points: no rotation maps it to itself
        return t + 0.2 * gradient * t.mean()

    x_rec = model(y)
    parts = self_supervised_parts("ei", model, K.forward(x_rec), x_rec, K, 0.0, torch.Generator().manual_seed(2))
    assert float(parts["mc"]) < 1e-12 and float(parts["ei"]) > 1e-4


def test_training_on_measurements_alone(monkeypatch):
    """The loss against x_true is never called: the step's loss comes from y_delta, x_rec and K alone."""
    seen = []
    import recon_demo.training.loop as loop

    real = loop.self_supervised_parts
    monkeypatch.setattr(loop, "self_supervised_parts", lambda *a, **k: seen.append(a) or real(*a, **k))
    trainer = Trainer(TrainConfig(**SMALL, self_supervised="ei", checkpoint=None))

    def refuse(*_):
        raise AssertionError("the loss against x_true was called")

    monkeypatch.setattr(trainer.loss_fn, "parts", refuse)
    events = list(trainer.run())
    assert events[-1].status == "done" and set(events[-1].parts) == {"mc", "ei"} and len(seen) == SMALL["steps"]
    assert events[-1].metrics["psnr"] > 0  # validated against the held-out image, which the loss never saw


@pytest.mark.parametrize("change, message", [({"self_supervised": "nope"}, "unknown self-supervised loss"),
                                             ({"self_supervised": "ei", "task": "ct"}, "one blur"),
                                             ({"self_supervised": "ei", "loss": "l1"}, "replaces --loss")])
def test_bad_self_supervised_configurations(change, message):
    with pytest.raises(TrainingError, match=message):
        TrainConfig(**change).validated()


def test_the_cli_trains_without_ground_truth(tmp_path, capsys):
    out = tmp_path / "cnn_ei.safetensors"
    common = ["--model", "cnn", "--batch-size", "2", "--patch-size", "32", "--phantoms", "2", "--max-images", "4",
              "--val-size", "64", "--eval-every", "0", "--steps", "3"]  # fmt: skip
    assert cli(["train", *common, "--self-supervised", "ei", "--kernel-size", "15", "--angle", "70", "--out", str(out)]) == 0
    manifest = (tmp_path / "manifest.json").read_text()
    assert out.is_file() and '"loss": "self-supervised ei"' in manifest
    with pytest.raises(SystemExit) as refused:
        cli(["train", *common, "--self-supervised", "nope", "--out", str(out)])
    assert refused.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_fine_tune_runs_both_and_says_what_it_shows():
    ft = FineTune(FineTuneConfig(steps=2))
    events = list(ft.run())
    assert {label for label, _ in events} == set(ft.cfg.labels()) and len(ft.cfg.labels()) == 2
    assert all(c.status == "done" and c.steps == [0, 1, 2] for c in ft.curves.values())  # the start, then each step
    start = ft.start_metrics["psnr"]
    assert all(c.psnr[0] == start for c in ft.curves.values())  # both start from the same general network
    assert "Equivariant Imaging" in ft.summary() and "arxiv.org/abs/2103.14756" in ft.summary()


@pytest.mark.parametrize("change, message", [({"model": "unet"}, "fine-tune one of"), ({"loss": "mse"}, "unknown loss"),
                                             ({"image": "china"}, "held-out"), ({"steps": 0}, "steps"),
                                             ({"operator": OperatorSpec(kernel_size=4)}, "odd")])
def test_bad_fine_tune_settings(change, message):
    with pytest.raises(SettingError, match=message):
        FineTuneConfig(**change).validated()
