"""The blind estimate (``methods.estimate``): known kernels found again, the noise level read, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_demo import images
from recon_demo.evaluate.blind import blur_with_border
from recon_demo.methods.estimate import check_measurement, estimate, estimate_sigma, relative_noise
from recon_demo.physics.kernels import gaussian_kernel, motion_kernel


def _scene(name: str = "chelsea") -> np.ndarray:  # a training image: the estimator was tuned on these, never on held-out
    return images.to_grayscale(images.load_example(name))


def _measured(kernel: torch.Tensor, noise: float, name: str = "chelsea", seed: int = 0) -> np.ndarray:
    _, y = blur_with_border(_scene(name), kernel, 256, noise, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
    return y[0, 0].numpy()


@pytest.mark.parametrize("length, angle", [(7, 30.0), (11, 100.0), (15, 160.0)])
def test_a_linear_motion_is_found_to_the_pixel_and_within_3_degrees(length, angle):
    found = estimate(_measured(motion_kernel(length, angle, "centered"), 0.01, "coins"))
    assert found.spec.blur == "motion" and found.spec.kernel_size == length
    assert abs((found.spec.angle - angle + 90) % 180 - 90) <= 3.0
    assert found.confidence > 0.3 and not found.negligible


@pytest.mark.parametrize("name", ["chelsea", "coins", "gravel"])
def test_a_gaussian_is_found_within_a_quarter_of_its_variance(name):
    found = estimate(_measured(gaussian_kernel(13, 3.0), 0.01, name))
    assert found.spec.blur == "gaussian" and abs(found.spec.variance / 3.0 - 1) < 0.25


@pytest.mark.parametrize("delta, high", [(0.005, 2.0), (0.02, 1.3)])
def test_the_noise_level_is_read_from_the_finest_details(delta, high):
    # a textured scene leaves some detail in the finest diagonal band: the reading errs high, more at low noise
    y = _measured(motion_kernel(9, 45.0, "centered"), delta)
    assert 0.9 * delta <= relative_noise(y, estimate_sigma(y)) <= high * delta
    pure = np.random.default_rng(0).normal(0.5, 0.02, (128, 128))  # noise alone: σ exactly
    assert estimate_sigma(pure) == pytest.approx(0.02, rel=0.05)


def test_a_sharp_picture_is_no_blur_to_speak_of():
    found = estimate(_scene("coins")[:256, :256])
    assert found.negligible
    assert found.spec.blur != "gaussian" or found.spec.variance >= 0.1  # inside the blur controls the estimate fills


def test_the_answer_is_plain_json_values():
    found = estimate(_measured(motion_kernel(9, 20.0, "centered"), 0.01))
    d = found.to_dict()
    assert set(d["kernel"]) == {"blur", "kernel_size", "angle", "kernel_style", "variance", "radius", "confidence"}
    assert all(type(v) in (str, int, float, type(None)) for v in d["kernel"].values())
    assert type(found.spec.angle) is float and type(found.spec.kernel_size) is int  # not numpy's (the sliders get them)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.zeros((64, 64)), "flat"),
        (np.full((64, 64), 0.7), "flat"),
        (np.ones((8, 8)), "at least 16"),
        (np.ones((1, 1)), "at least 16"),
        (np.full((32, 32), np.nan), "not finite"),
        (np.ones((4, 32, 32)), "one grey image"),
    ],
    ids=["all-zero", "constant", "8x8", "1x1", "nan", "3-d"],
)
def test_what_cannot_be_estimated_from_is_refused_with_a_reason(y, message):
    with pytest.raises(ValueError, match=message):
        check_measurement(y)
    with pytest.raises(ValueError, match=message):
        estimate(y)
