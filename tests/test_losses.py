from __future__ import annotations

import pytest
import torch

from recon_demo.images import load_example, to_tensor
from recon_demo.losses import LOSSES, fourier_loss, loss_status, parse_loss, ssim_loss
from recon_demo.metrics import ssim
from recon_demo.operators import OperatorSpec


@pytest.fixture(scope="module")
def pair():
    x = to_tensor(load_example("camera"), size=64)
    return OperatorSpec().build().forward(x), x


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_is_zero_for_identical_images_and_has_gradients(name, pair):
    ok, reason = loss_status(name)
    assert ok, reason
    y, x = pair
    loss = parse_loss(name)
    # the lecture's SSIM guard (1e-8 in the denominator) leaves a few 1e-4 in dark, flat regions
    assert float(loss(x, x)) == pytest.approx(0, abs=1e-3 if name == "ssim" else 1e-5)
    y = y.clone().requires_grad_(True)
    value = loss(y, x)
    value.backward()
    assert value.item() > 0 and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


@pytest.mark.parametrize("image", ["camera", "moon", "coffee", "astronaut"])
def test_ssim_loss_follows_scikit_image(image):
    # The lecture's 3×3 pooled SSIM against scikit-image's 7×7 window: same trend, a few hundredths apart.
    x = to_tensor(load_example(image))
    y = OperatorSpec().build().forward(x)
    assert float(ssim_loss(y, x)) == pytest.approx(1 - ssim(y, x), abs=0.04)


def test_fourier_loss_is_the_lecture_formula(pair):
    y, x = pair
    expected = (torch.fft.fft2(y, norm="ortho") - torch.fft.fft2(x, norm="ortho")).abs().mean()
    assert torch.allclose(fourier_loss(y, x), expected)
    h, w = x.shape[-2:]
    radius = torch.hypot(torch.fft.fftfreq(h)[:, None] * 2, torch.fft.fftfreq(w)[None, :] * 2)
    diff = (torch.fft.fft2(y, norm="ortho") - torch.fft.fft2(x, norm="ortho")).abs()
    assert torch.allclose(fourier_loss(y, x, cutoff=0.5), diff[..., radius >= 0.5].mean())
    with pytest.raises(ValueError, match="cut-off"):
        fourier_loss(y, x, cutoff=1.5)


def test_spec_parsing():
    loss = parse_loss("MSE + 0.2*ssim + 0.1 * fourier")
    assert loss.terms == [(1.0, "mse", None), (0.2, "ssim", None), (0.1, "fourier", None)]
    assert str(loss) == "mse + 0.2*ssim + 0.1*fourier"
    assert parse_loss("0.5 mse + 0.5 l1").terms == [(0.5, "mse", None), (0.5, "l1", None)]
    assert parse_loss("fourier_hp(0.3)").terms == [(1.0, "fourier_hp", 0.3)]


def test_weighted_sum(pair):
    y, x = pair
    combined = parse_loss("mse + 0.2*ssim")
    assert float(combined(y, x)) == pytest.approx(float(torch.nn.functional.mse_loss(y, x) + 0.2 * ssim_loss(y, x)), rel=1e-6)
    assert set(combined.components(y, x)) == {"mse", "ssim"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty loss spec"),
        ("mse + ", "cannot read the loss term ''"),
        ("mse + 0.2*ssmi", "unknown loss 'ssmi'"),
        ("mse + -1*l1", "cannot read the loss term '-1\\*l1'"),
        ("0*mse", "must be positive"),
        ("mse(0.3)", "takes no parameter"),
        ("0.2**ssim", "cannot read the loss term"),
    ],
)
def test_malformed_specs_name_the_bad_term(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss(spec)
