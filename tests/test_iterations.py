"""The Iterations view's core: the iterative methods step by step, semi-convergence, the discrepancy principle, the
cache and the slider's pictures (``recon_demo.lab.iterations``, ``methods.blur``'s and ``physics.ct``'s iterates)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recon_demo.lab.blur import Lab
from recon_demo.lab.iterations import METHODS, IterationLab, IterationSetting, figure
from recon_demo.lab.setting import Setting, SettingError
from recon_demo.methods.blur import cgls_iterates, landweber_iterates, richardson_lucy_iterates
from recon_demo.physics.blur import LECTURE_OPERATOR
from recon_demo.physics.ct import radon_operator, sirt, sirt_iterates


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, 48, 48, generator=g)
    K = LECTURE_OPERATOR.build().for_solver()
    return x, K, K.forward(x)


def _take(iterates, n):
    return [t.clone() for _, t in zip(range(n), iterates)]


@pytest.mark.parametrize("iterates", [landweber_iterates, cgls_iterates])
def test_least_squares_iterations_shrink_the_residual_on_exact_data(iterates):
    x, K, y = _problem()
    residuals = [float((K.forward(t) - y).norm()) for t in _take(iterates(y, K), 30)]
    assert all(b <= a + 1e-6 for a, b in zip(residuals, residuals[1:]))  # Landweber and CGLS never increase it
    assert residuals[-1] < 0.5 * residuals[0]


def test_cgls_fits_faster_than_landweber():
    x, K, y = _problem(1)
    landweber, cgls = _take(landweber_iterates(y, K), 10)[-1], _take(cgls_iterates(y, K), 10)[-1]
    assert (K.forward(cgls) - y).norm() < 0.5 * (K.forward(landweber) - y).norm()


def test_richardson_lucy_stays_positive_and_fits_the_data():
    x, K, y = _problem(2)
    steps = _take(richardson_lucy_iterates(y, K), 40)
    assert all(float(t.min()) >= 0 for t in steps)
    assert (K.forward(steps[-1]) - y).norm() < 0.5 * (K.forward(steps[0]) - y).norm()


def test_sirt_is_its_iterates_stopped():
    radon = radon_operator(32, 12)
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = radon.forward(x)
    assert torch.equal(sirt(radon, y, iterations=7), _take(sirt_iterates(radon, y), 7)[-1])


@pytest.fixture(scope="module")
def iteration_lab(lab):
    return IterationLab(lab)


@pytest.mark.parametrize("method", ["landweber", "rl"])
def test_semi_convergence_at_high_noise(iteration_lab, method):
    """The issue's target: at δ 0.05 on a held-out image the best iterate is ≥ 1 dB above the last one shown, and it
    comes earlier than at δ 0.01 (the noise is fitted sooner); the residual keeps falling meanwhile."""
    result = iteration_lab.run(IterationSetting(method=method, image="camera", noises=(0.01, 0.05), iterations=100))
    low, high = result.traces
    assert high.psnr.max() - high.psnr[-1] >= 1.0
    assert high.best < low.best
    assert high.residual[-1] < high.residual[high.best - 1]
    stop = high.discrepancy  # Morozov: the first iterate within τ of the noise's share of ||y||
    assert stop is not None and high.residual[stop - 1] <= 1.05 * high.noise_share < high.residual[: stop - 1].min()
    assert abs(high.psnr[stop - 1] - high.psnr.max()) < 2.0  # it stops near the best without knowing x_true


def test_results_are_cached_and_the_slider_shows_each_iterate(iteration_lab, lab):
    setting = IterationSetting(method="cgls", iterations=12)
    result = iteration_lab.run(setting)
    assert iteration_lab.run(setting) is result and iteration_lab.cached(setting) is result
    K = LECTURE_OPERATOR.build().for_solver()
    y = lab.measurement(Setting(image="camera", noise=0.01))
    fifth = _take(cgls_iterates(y, K), 5)[-1][0, 0].clamp(0, 1).numpy()
    assert np.abs(result.traces[0].picture(5) - fifth).max() <= 0.5 / 255 + 1e-6  # the picture at k is iterate k
    assert result.traces[0].picture(999).shape == result.x_true.shape  # beyond the run: its last iterate
    assert figure(result, 5).axes[0].get_ylabel().startswith("PSNR")


def test_sirt_traces_a_sinogram(iteration_lab):
    result = iteration_lab.run(IterationSetting(method="sirt", image="phantom-0", angles=30, iterations=10))
    assert result.measurements[0].shape[0] == 30 and len(result.traces[1].psnr) == 10
    assert result.traces[0].psnr[-1] > result.traces[0].psnr[0]  # noise 0.01, ten steps: still climbing


def test_the_unrolled_network_is_drawn_on_the_same_axes():
    result = IterationLab(Lab()).run(IterationSetting(method="landweber", iterations=10))  # the shipped weights
    assert result.network and len(result.network_psnr) == 2 and len(result.network_psnr[0]) >= 2
    assert result.network_psnr[0][-1] > result.traces[0].psnr.max()  # its few learned steps beat ten plain ones


def test_the_discrepancy_principle_needs_delta_not_the_ground_truth(iteration_lab):
    result = iteration_lab.run(IterationSetting(method="landweber", iterations=20))
    for trace in result.traces:
        assert trace.noise_share == pytest.approx(trace.noise / np.sqrt(1 + trace.noise**2))


def test_settings_that_differ_only_in_what_the_method_ignores_share_a_result():
    assert IterationSetting(method="landweber", angles=30).validated() == IterationSetting(method="landweber").validated()
    assert IterationSetting(method="sirt", operator=replace(LECTURE_OPERATOR, angle=45)).validated().operator == LECTURE_OPERATOR


@pytest.mark.parametrize("change, message", [({"method": "nope"}, "unknown iterative method"), ({"iterations": 5000}, "iterations"),
                                             ({"noises": (0.01, 9.0)}, "noise level"), ({"image": "nope"}, "unknown image")])
def test_bad_settings_say_what_is_allowed(change, message):
    with pytest.raises(SettingError, match=message):
        IterationSetting(**change).validated()


def test_every_method_has_a_sentence():
    assert {m.task for m in METHODS.values()} == {"deblur", "ct"} and all(len(m.sentence) > 30 for m in METHODS.values())


def test_lesson_10_says_what_the_tab_shows(iteration_lab):
    """The lesson's numbers, at the tab's defaults (Landweber, camera, the lecture's blur, δ 0.01 and 0.05, 200 steps)."""
    from recon_demo.lab.lessons import LESSONS

    low, high = iteration_lab.run(IterationSetting()).traces
    text = LESSONS["stop-early"].text
    assert "within ten steps" in text and high.best <= 10
    assert "about 8 dB" in text and 7 <= high.psnr.max() - high.psnr[-1] <= 9
    assert "ten times later" in text and 7 <= low.best / high.best <= 14
