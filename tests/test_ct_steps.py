"""CT step by step: the ray/sinusoid geometry (a point's sinusoid passes through the sinogram where its ray does), the
back-projection and the filters, window/level (``recon_demo.lab.ct_steps``, ``physics.ct.ray`` and ``sinusoid``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_demo.lab import ct_steps
from recon_demo.lab.ct import CTLab, CTSetting
from recon_demo.physics.ct import FILTERS, detector_bins, fourier_filter, radon_operator, ray, sinusoid


def _distance(point, start, end) -> float:
    d, v = end - start, np.asarray(point, float) - start
    return abs(v[0] * d[1] - v[1] * d[0]) / np.hypot(*d)


@pytest.mark.parametrize("size, n_angles", [(64, 30), (65, 7), (256, 60)])
def test_a_pixels_sinusoid_passes_where_its_rays_do(size, n_angles):
    rng = np.random.default_rng(size)
    for row, col in rng.integers(0, size, size=(6, 2)):
        curve = sinusoid(size, n_angles, row, col)
        for k in range(n_angles):
            start, end = ray(size, n_angles, k, curve[k])
            assert _distance((row, col), start, end) < 1e-9  # the ray of (angle k, its bin) goes through the pixel


@pytest.mark.parametrize("row, col", [(10, 50), (32, 32), (40, 7)])
def test_the_projector_puts_a_point_on_its_sinusoid(row, col):
    """The geometry the page draws is the operator's own: a one-pixel image's sinogram is centred on its sinusoid."""
    radon = radon_operator(64, 30)
    x = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    x[0, 0, row, col] = 1
    y = radon.forward(x)[0, 0].numpy()
    centroid = (y * np.arange(y.shape[1])).sum(1) / y.sum(1)
    assert np.abs(centroid - sinusoid(64, 30, row, col)).max() < 0.1


@pytest.mark.parametrize("size", [64, 65])
def test_a_ray_ends_on_the_images_border(size):
    bins, centre = detector_bins(size), size // 2
    start, end = ray(size, 4, 0, bins // 2 - centre)  # at 0°: the vertical line through the first column
    assert np.allclose(start, (-0.5, 0)) and np.allclose(end, (size - 0.5, 0))
    assert ct_steps.ray_misses(size, 4, 0, bins // 2 - centre - 0.6)  # beyond the first column's outer edge
    assert not ct_steps.ray_misses(size, 4, 0, bins // 2 - centre - 0.4)


def test_a_ray_that_misses_the_image_has_no_ends():
    start, end = ray(64, 30, 0, detector_bins(64) - 1)  # the detector's edge: beyond the image's corner at 0°
    assert np.isnan(start).all() and np.isnan(end).all()


def test_the_ramp_and_its_windows():
    length = 1024
    ramp = fourier_filter(length, "ramp")[: length // 2]
    assert ramp[0] < 0.01 * ramp[-1] and np.all(np.diff(ramp) > 0)  # near zero at DC, rising with |ω|
    for name in FILTERS[1:]:
        windowed = fourier_filter(length, name)[: length // 2]
        assert np.all(windowed <= ramp + 1e-12) and windowed[-1] < 0.7 * ramp[-1]  # each window takes the top down


@pytest.fixture(scope="module")
def steps(lab):
    result = CTLab(lab).run(CTSetting.of(image="phantom-0", angles=60, noise=0.0), with_lpips=False)
    return result, ct_steps.steps(result)


def test_fbp_is_the_filtered_back_projection_and_sharper_than_the_plain_one(steps):
    result, s = steps
    fbp = next(r for r in result.reconstructions if r.name == "fbp").image
    assert np.abs(s.fbp - fbp).max() < 1e-4  # the row's last picture is the tab's FBP
    truth = result.x_true
    outside, inside = truth == 0, truth > 0.3

    def halo(x):  # the light beyond the object, against the light inside it
        return x[outside].mean() / x[inside].mean()

    assert halo(s.backprojection) > 0.2 > 0.05 > halo(s.fbp)  # blurred as 1/r: the plain one glows far past the edges
    assert np.corrcoef(s.fbp.ravel(), truth.ravel())[0, 1] > np.corrcoef(s.backprojection.ravel(), truth.ravel())[0, 1]
    assert s.filtered.shape == s.sinogram.shape and (s.filtered < 0).any()  # the ramp's negative lobes
    pictures = ct_steps.step_pictures(s)
    assert [p[1] for p in pictures] == [f"{i}. {t}" for i, (t, _) in enumerate(ct_steps.STEP_SENTENCES, start=1)]


def test_window_level_and_the_presets():
    x = np.linspace(0, 1, 2001)  # −1000 … +1000 HU
    hu = ct_steps.to_hu(x)
    for width, level in ct_steps.PRESETS.values():
        shown = ct_steps.window(x, width, level)
        assert shown[np.argmin(np.abs(hu - level))] == pytest.approx(0.5, abs=1e-3)
        assert shown[hu <= level - width / 2].max(initial=0) == 0 and shown[hu >= level + width / 2].min(initial=1) == 1
    assert ct_steps.PRESETS["Lung"] == (1500, -600) and ct_steps.PRESETS["Soft tissue"] == (400, 40)
    assert ct_steps.PRESETS["Bone"] == (1800, 400)
    with pytest.raises(ValueError, match="positive width"):
        ct_steps.window(x, 0, 40)


def test_clicks_map_to_the_sinogram_and_drawings_are_pictures(steps):
    result, s = steps
    n_angles, bins = s.sinogram.shape
    assert ct_steps.sinogram_point((0, 0), n_angles, bins) == (0, 0)
    assert ct_steps.sinogram_point((359, bins + 50), n_angles, bins) == (n_angles - 1, bins - 1)
    assert ct_steps.sinogram_point((180, 10), n_angles, bins) == (n_angles // 2, 10)
    drawn = ct_steps.image_with_ray(s.fbp, n_angles, 15, bins // 2)
    assert drawn.shape == (*s.fbp.shape, 3) and (drawn == ct_steps.RAY_COLOUR).all(-1).any()
    curve = ct_steps.sinogram_with_sinusoid(s.sinogram, 40, 200, s.fbp.shape[0])
    assert curve.shape == (bins, ct_steps.SINOGRAM_WIDTH, 3) and (curve == ct_steps.RAY_COLOUR).all(-1).any()
