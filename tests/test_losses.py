from __future__ import annotations

import math

import pytest
import torch

from recon_demo.images import load_example, to_tensor
from recon_demo.losses import LOSSES, fourier_loss, loss_status, parse_loss, psnr_loss, ssim_lecture_loss, ssim_loss
from recon_demo.metrics import psnr, ssim
from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.noise import add_relative_noise


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
    assert float(loss(x, x)) == pytest.approx(0, abs=1e-3 if name == "ssim_lecture" else 1e-5)
    y = y.clone().requires_grad_(True)
    value = loss(y, x)
    value.backward()
    assert value.item() > 0 and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_decreases_on_a_tiny_problem(name):
    # A 3×3 deblurring filter fitted by Adam to one 32² crop: every loss must be able to drive it.
    x = to_tensor(load_example("camera"), size=32)
    y = OperatorSpec().build().forward(x)
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    loss_fn = parse_loss(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    values = []
    for _ in range(25):
        loss = loss_fn(model(y), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert sum(values[-5:]) < 0.95 * sum(values[:5]), values


def test_psnr_loss_is_each_images_shortfall_from_50_db_averaged(pair):
    y, x = pair
    mild = add_relative_noise(x, 0.01, torch.Generator().manual_seed(0)).clamp(0, 1)
    hard = y.clamp(0, 1)
    assert psnr(mild, x) - psnr(hard, x) > 15  # images of very different difficulty

    def shortfall(p: float) -> float:  # 10·log10(1 + MSE / 1e-5), written with the PSNR
        return 10 * math.log10(1 + 10 ** ((50 - p) / 10))

    expected = (shortfall(psnr(mild, x)) + shortfall(psnr(hard, x))) / 2
    assert float(psnr_loss(torch.cat([mild, hard]), torch.cat([x, x]))) == pytest.approx(expected, abs=1e-3)
    assert shortfall(psnr(hard, x)) == pytest.approx(50 - psnr(hard, x), abs=0.01)  # well below 50 dB: 50 − PSNR
    # the gradient is that of the mean PSNR: the mild image's pixels pull as hard as the badly blurred image's
    batch = torch.cat([mild, hard]).requires_grad_(True)
    psnr_loss(batch, torch.cat([x, x])).backward()
    g_mild, g_hard = batch.grad[0].norm(), batch.grad[1].norm()
    batch.grad = None
    torch.nn.functional.mse_loss(batch, torch.cat([x, x])).backward()
    assert g_mild / g_hard > 10 * batch.grad[0].norm() / batch.grad[1].norm()


@pytest.mark.parametrize("image", ["camera", "moon", "coffee", "astronaut", "grass", "clock"])
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_ssim_loss_is_one_minus_scikit_image_ssim(image, noise):
    # The issue asks for agreement within 0.02; computing scikit-image's own windows gives it to ~1e-6.
    x = to_tensor(load_example(image))
    y = add_relative_noise(OperatorSpec().build().forward(x), noise, torch.Generator().manual_seed(0))
    assert float(ssim_loss(y, x)) == pytest.approx(1 - ssim(y, x), abs=1e-4)


@pytest.mark.parametrize("image", ["camera", "astronaut"])
def test_lecture_ssim_loss_is_its_3x3_formula(image):
    x = to_tensor(load_example(image), size=64)
    y = OperatorSpec().build().forward(x)
    pool = torch.nn.AvgPool2d(3, stride=1, padding=1)
    mx, my = pool(y), pool(x)
    vx, vy, cxy = pool(y * y) - mx**2, pool(x * x) - my**2, pool(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2) + 1e-8)
    assert float(ssim_lecture_loss(y, x)) == pytest.approx(float(1 - ssim_map.mean()), abs=1e-6)


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
    parts = combined.parts(y, x)
    assert set(parts) == {"mse", "ssim"}
    assert float(combined.total(parts)) == pytest.approx(float(combined(y, x)), rel=1e-6)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty loss spec"),
        ("mse + ", "cannot read the loss term ''"),
        ("mse + 0.2*ssmi", "unknown loss 'ssmi'"),
        ("mse + -1*l1", "cannot read the loss term '-1\\*l1'"),
        ("0*mse", "must be a positive finite number"),
        ("mse(0.3)", "takes no parameter"),
        ("0.2**ssim", "cannot read the loss term"),
        ("mse + 0.5*mse", "'mse' appears twice"),
        ("1e400*mse", "positive finite number"),
        ("fourier_hp(1.5)", r"cut-off .* got 1.5 \(in 'fourier_hp\(1.5\)'\)"),
    ],
)
def test_malformed_specs_name_the_bad_term(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss(spec)
