from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_demo.errors import UnknownName
from recon_demo.evaluate import parse_baselines
from recon_demo.images import load_example, protocol_tensor
from recon_demo.methods import blur as blur_methods
from recon_demo.methods.blur import BASELINES
from recon_demo.metrics import psnr
from recon_demo.physics.blur import Blur, OperatorSpec
from recon_demo.physics.noise import add_relative_noise


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
    assert "bm3d" not in BASELINES
    with pytest.raises(UnknownName, match="known baselines: input"):  # how the CLIs read --baselines
        parse_baselines("bm3d")


def test_our_wiener_is_scikit_images():
    # written out so the app's start imports neither skimage.restoration nor scipy.signal and scipy.fft
    from skimage.restoration import wiener

    rng = np.random.default_rng(3)
    image = rng.random((90, 70))
    psf = OperatorSpec().kernel().numpy().astype(np.float64)
    for balance in (0.02, 0.5):
        expected = wiener(image, psf, balance, clip=False)
        assert np.abs(blur_methods.wiener_hunt(image, psf, balance) - expected).max() < 1e-12


def test_tv_in_torch_is_the_scikit_image_loop_it_replaced(blurred):
    from skimage.restoration import denoise_tv_chambolle

    x_true, y_clean, kernel = blurred
    y = add_relative_noise(y_clean, 0.01, torch.Generator().manual_seed(1))[0, 0].numpy()
    K = Blur(torch.from_numpy(kernel.astype(np.float32)))
    assert np.array_equal(blur_methods.tv_denoise(y, 0.002), denoise_tv_chambolle(y, weight=0.002))

    def scikit_tv(num_iter: int = 40, weight: float = 0.002) -> np.ndarray:  # the loop before, numpy's Chambolle
        target = torch.from_numpy(y)[None, None]
        x, z, t = target.clone(), target.clone(), 1.0
        for _ in range(num_iter):
            x_next = denoise_tv_chambolle((z - K.adjoint(K.forward(z) - target))[0, 0].numpy(), weight=weight)
            x_next = torch.from_numpy(x_next.astype(np.float32))[None, None]
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            z, x, t = x_next + (t - 1) / t_next * (x_next - x), x_next, t_next
        return np.clip(x[0, 0].numpy(), 0, 1)

    tv = BASELINES["tv"](y, kernel)
    assert abs(psnr(tv, x_true) - psnr(scikit_tv(), x_true)) < 0.01
