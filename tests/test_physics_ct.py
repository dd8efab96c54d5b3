"""The parallel-beam Radon transform: adjointness, agreement with scikit-image, FBP quality, SIRT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from recon_demo.metrics import psnr
from recon_demo.physics.ct import (
    FILTERS,
    CTSpec,
    Radon,
    check_geometry,
    detector_bins,
    radon_operator,
    sirt,
)
from recon_demo.physics.noise import add_relative_noise


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """Shepp-Logan at 128², the size these tests run at."""
    return resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True).astype(np.float32)


def test_the_detector_is_the_lectures():
    assert detector_bins(256) == 364 and detector_bins(128) == 182
    assert Radon(256, 60).sinogram_shape == (60, 364)


@pytest.mark.parametrize("size, angles", [(128, 60), (33, 7), (64, 180), (16, 1)])
def test_the_back_projection_is_the_exact_adjoint(size, angles):
    op = Radon(size, angles)
    g = torch.Generator().manual_seed(size + angles)
    x = torch.randn(3, 1, size, size, generator=g, dtype=torch.float64)
    y = torch.randn(3, 1, *op.sinogram_shape, generator=g, dtype=torch.float64)
    lhs = (op.forward(x) * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    assert float(abs(lhs - rhs) / abs(lhs)) < 1e-12


@pytest.mark.parametrize("angles", [180, 60, 20])
def test_the_sinogram_agrees_with_scikit_image(phantom, angles):
    theta = np.arange(angles) * 180 / angles
    reference = radon(phantom, theta, circle=False)  # (bins, angles); its centre bin is bins // 2, as ours
    ours = Radon(128, angles).forward(torch.from_numpy(phantom)[None, None])[0, 0].numpy().T
    start = ours.shape[0] // 2 - reference.shape[0] // 2
    ours = ours[start : start + reference.shape[0]]
    assert ours.shape == reference.shape
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) < 0.005


@pytest.mark.parametrize("filter_name", FILTERS)
def test_fbp_agrees_with_scikit_images_iradon(phantom, filter_name):
    angles = 60
    theta = np.arange(angles) * 180 / angles
    reference = iradon(radon(phantom, theta, circle=False), theta, filter_name=filter_name, circle=False, output_size=128)
    op = Radon(128, angles)
    ours = op.fbp(op.forward(torch.from_numpy(phantom)[None, None]), filter_name)[0, 0].numpy()
    x_true = torch.from_numpy(phantom)
    assert psnr(np.clip(ours, 0, 1), x_true) == pytest.approx(psnr(np.clip(reference, 0, 1), x_true), abs=0.1)
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) < 0.05


def test_fbp_of_a_noiseless_full_view_phantom_is_close_to_it(phantom):
    op = Radon(128, 180)
    x = torch.from_numpy(phantom)[None, None]
    x_fbp = op.fbp(op.forward(x)).clamp(0, 1)
    assert psnr(x_fbp, x) > 29  # 29.99 dB, as scikit-image's iradon at 128²
    sparse = Radon(128, 20)
    assert psnr(sparse.fbp(sparse.forward(x)).clamp(0, 1), x) < psnr(x_fbp, x) - 8  # few views: streaks


def test_batches_and_dtypes_follow_the_input():
    op = Radon(32, 12)
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    batch = op.forward(x)
    assert batch.shape == (4, 1, 12, detector_bins(32)) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[2:3], op.forward(x[2:3]))
    assert op.forward(x.double()).dtype == torch.float64
    assert op.adjoint(batch).shape == x.shape and op.fbp(batch, "hann").shape == x.shape


def test_the_operator_is_differentiable_with_the_adjoint_as_gradient():
    op = Radon(24, 9)
    x = torch.rand(2, 1, 24, 24, dtype=torch.float64, requires_grad=True)
    (op.forward(x) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, 2 * op.adjoint(op.forward(x.detach())))
    y = torch.rand(1, 1, *op.sinogram_shape, dtype=torch.float64, requires_grad=True)
    op.fbp(y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_the_operator_runs_on_the_device(device):
    op = Radon(32, 10)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    on_device = op.forward(x.to(device))
    assert on_device.device.type == device.type
    torch.testing.assert_close(on_device.cpu(), op.forward(x), rtol=1e-5, atol=1e-5)


def test_sinogram_noise_is_relative_to_the_sinograms_norm():
    op = Radon(32, 10)
    y = op.forward(torch.rand(2, 1, 32, 32))
    y_delta = add_relative_noise(y, 0.05, torch.Generator().manual_seed(0))
    for i in range(2):
        assert float((y_delta[i] - y[i]).norm() / y[i].norm()) == pytest.approx(0.05, rel=1e-4)


def test_sirt_beats_fbp_at_few_views_and_fits_the_data(phantom):
    op = Radon(128, 20)
    x = torch.from_numpy(phantom)[None, None]
    y_delta = add_relative_noise(op.forward(x), 0.01, torch.Generator().manual_seed(0))
    x_sirt = sirt(op, y_delta, 100)
    assert x_sirt.min() >= 0 and x_sirt.max() <= 1
    assert psnr(x_sirt, x) > psnr(op.fbp(y_delta).clamp(0, 1), x) + 5
    residual = float((op.forward(x_sirt) - y_delta).norm() / y_delta.norm())
    assert residual < 0.05


@pytest.mark.parametrize(
    "size, angles, message",
    [(4, 60, "image size must be between 8"), (256, 0, "number of angles must be between 1"),
     (256, 2.5, "number of angles must be an integer"), (1100, 60, "image size must be between 8 and 1024"),
     (512, 361, "number of angles must be between 1 and 360"), (256, "many", "must be an integer")],
)  # fmt: skip
def test_bad_geometries_are_refused_with_a_message(size, angles, message):
    with pytest.raises(ValueError, match=message):
        check_geometry(size, angles)


def test_wrong_shapes_and_unknown_filters_are_refused():
    op = Radon(16, 4)
    with pytest.raises(ValueError, match="expected a batch of images"):
        op.forward(torch.rand(1, 1, 16, 17))
    with pytest.raises(ValueError, match="expected a batch of sinograms"):
        op.adjoint(torch.rand(1, 1, 4, 10))
    with pytest.raises(ValueError, match="unknown FBP filter"):
        op.fbp(torch.rand(1, 1, *op.sinogram_shape), "butterworth")
    with pytest.raises(ValueError, match="unknown FBP filter"):
        CTSpec(filter="none").build()


def test_operators_are_shared_per_geometry():
    assert radon_operator(32, 5) is radon_operator(32, 5)
    assert radon_operator(32, 6) is not radon_operator(32, 5)
    assert math.isclose(CTSpec(60, 256).to_dict()["bins"], 364)
