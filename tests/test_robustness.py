from __future__ import annotations

import pytest

from recon_demo.lab.robustness import MEASUREMENT, as_rows, sweep
from recon_demo.lab.setting import Setting, SettingError


def test_noise_sweep_degrades_every_method(lab):
    points = sweep(lab, Setting.of(image="camera", models=("cnn", "wiener")), "noise", (0.0, 0.05), regimes=("course", "general"))
    scores = {(p.model, p.value): p.psnr for p in points}
    assert set(scores) == {(m, v) for m in ("CNN (course)", "CNN (general)", "Wiener", MEASUREMENT) for v in (0.0, 0.05)}
    assert all(scores[(m, 0.0)] > scores[(m, 0.05)] for m in ("CNN (course)", "Wiener", MEASUREMENT))


def test_a_sweep_reports_each_value_as_it_goes(lab):
    heard: list[tuple[int, int, str]] = []
    sweep(lab, Setting.of(image="camera", models=("cnn",)), "angle", (10.0, 30.0, 45.0), report=lambda *a: heard.append(a))
    assert heard == [(0, 3, "angle = 10"), (1, 3, "angle = 30"), (2, 3, "angle = 45"), (3, 3, "done")]


def test_baselines_suffer_an_operator_mismatch(lab):
    points = sweep(lab, Setting.of(image="camera", models=("tv",)), "angle", (20.0, 90.0))
    at = {p.value: p.psnr for p in points if p.model == "TV"}
    assert at[20.0] > at[90.0] + 3  # TV assumes the 20° kernel while the blur is at 90°
    told = {p.value: p.psnr for p in sweep(lab, Setting.of(image="camera", models=("tv",)), "angle", (90.0,), told=True)
            if p.model == "TV"}  # fmt: skip
    assert told[90.0] > at[90.0] + 3  # handed the true kernel, it holds up


def test_models_without_weights_are_left_out_of_the_plot(lab):
    points = sweep(lab, Setting.of(models=("rescnn", "wiener")), "kernel_size", (7, 9))
    assert any(p.psnr is None for p in points)
    assert {row[2] for row in as_rows(points)} == {"Wiener", MEASUREMENT}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"parameter": "colour"}, "sweep one of noise, angle, kernel_size"),
        ({"parameter": "noise", "values": tuple(range(20))}, "1 to 12 values"),
        ({"parameter": "kernel_size", "values": (8,)}, "kernel size must be odd"),
    ],
)
def test_bad_sweeps_are_refused(lab, kwargs, message):
    with pytest.raises(SettingError, match=message):
        sweep(lab, Setting.of(models=("wiener",)), **kwargs)
