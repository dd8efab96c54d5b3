from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_demo import baselines
from recon_demo.baselines import BASELINES, get_baseline
from recon_demo.errors import UnknownName
from recon_demo.images import load_example, protocol_tensor
from recon_demo.metrics import psnr
from recon_demo.operators import OperatorSpec, add_relative_noise


@pytest.fixture(scope="module", params=["camera", "astronaut"])
def blurred(request):
    x_true = protocol_tensor(load_example(request.param))
    spec = OperatorSpec()
    y = spec.build().forward(x_true)
    return x_true, y, spec.kernel().numpy()


def test_wiener_beats_the_measurement_on_a_noiseless_blur(blurred):
    x_true, y, kernel = blurred
    assert psnr(BASELINES["wiener"](y[0, 0].numpy(), kernel), x_true) > psnr(y.clamp(0, 1), x_true) + 1


def test_unflipped_wiener_would_be_worse(blurred):
    # Guards the convolution/correlation convention: scikit-image must get the flipped kernel.
    x_true, y, kernel = blurred
    right = BASELINES["wiener"](y[0, 0].numpy(), kernel)
    wrong = BASELINES["wiener"](y[0, 0].numpy(), kernel[::-1, ::-1].copy())
    assert psnr(right, x_true) > psnr(wrong, x_true) + 1


@pytest.mark.parametrize("name", ["rl", "tv"])
def test_iterative_baselines_improve_on_the_measurement(blurred, name):
    x_true, y, kernel = blurred
    y_delta = add_relative_noise(y, 0.01, torch.Generator().manual_seed(0))
    assert psnr(BASELINES[name](y_delta[0, 0].numpy(), kernel), x_true) > psnr(y_delta.clamp(0, 1), x_true) + 1


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_keep_the_shape_and_range(name):
    y = np.random.default_rng(0).uniform(-0.1, 1.1, (21, 34)).astype(np.float32)
    out = BASELINES[name](y, OperatorSpec("gaussian", 5, variance=1.0).kernel().numpy())
    assert out.shape == y.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1


def test_unknown_baseline():
    with pytest.raises(UnknownName, match="known baselines: input"):
        get_baseline("bm3d")


def test_our_wiener_is_scikit_images():
    # written out so the app's start imports neither skimage.restoration nor scipy.signal and scipy.fft
    from skimage.restoration import wiener

    rng = np.random.default_rng(3)
    image = rng.random((90, 70))
    psf = OperatorSpec().kernel().numpy().astype(np.float64)
    for balance in (0.02, 0.5):
        expected = wiener(image, psf, balance, clip=False)
        assert np.abs(baselines.wiener_hunt(image, psf, balance) - expected).max() < 1e-12
