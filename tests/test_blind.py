"""``evaluate --blind``: held-out images blurred with real edges, the estimate scored against the truth, each method
handed the estimate and the true kernel; the flags checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recon_demo.__main__ import main as cli
from recon_demo.evaluate.blind import ALREADY_BLURRED, BlindConfig, blur_with_border, draw_kernel, held_out, run_blind


def test_a_measurement_is_the_centre_of_a_larger_blurred_crop():
    scene = np.random.default_rng(0).random((200, 220)).astype(np.float32)
    kernel, truth = draw_kernel("motion", np.random.default_rng(1))
    x, y = blur_with_border(scene, kernel, 64, 0.0, np.random.default_rng(2), torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (1, 1, 64, 64) and truth["blur"] == "motion" and 5 <= truth["kernel_size"] <= 15
    # no dark border: the edges are blurred scene, as bright on average as the middle
    assert abs(float(y[..., :, :3].mean()) - float(y.mean())) < 0.05
    colour, _ = blur_with_border(np.stack([scene] * 3, -1), kernel, 64, 0.01, np.random.default_rng(2), torch.Generator())
    assert colour.shape == (64, 64, 3) and torch.equal(colour[..., 0], colour[..., 2])  # the same crop of every channel


def test_the_clock_is_no_ground_truth():
    assert "clock" in ALREADY_BLURRED and "clock" not in [name for _, name, _ in held_out(("photos",), None)]


def test_the_blind_benchmark_scores_the_estimate_and_each_method_both_ways():
    result = run_blind(BlindConfig(methods=["tv"], sets=("photos", "colour"), kinds=("motion",), per_image=1, size=96,
                                   limit=1, device="cpu"))  # fmt: skip
    photos, colour = result["summary"]["photos/motion"], result["summary"]["colour/motion"]
    assert photos["n"] == colour["n"] == 1 and photos["family"] in (0.0, 1.0)
    assert set(photos["scores"]) == {"input", "tv@estimate", "tv@true"}
    assert {"tv@estimate/channels", "tv@true/channels"} <= set(colour["scores"]) and "colour_shift" in colour["scores"]["input"]
    assert photos["scores"]["tv@true"]["psnr"] > photos["scores"]["input"]["psnr"]
    sample = result["samples"][0]
    assert {"angle_error", "length_error", "found", "noise_found", "truth"} <= set(sample)


def test_evaluate_blind_prints_json_and_refuses_unknown_sets(capsys):
    argv = ["evaluate", "--blind", "--baselines", "tv", "--blind-sets", "photos", "--blind-kinds", "gaussian",
            "--per-image", "1", "--limit", "1", "--size", "64", "--format", "json", "--quiet"]  # fmt: skip
    assert cli(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["summary"]) == ["photos/gaussian"] and out["protocol"]["border"] == 12
    assert cli(["evaluate", "--blind", "--blind-sets", "moon", "--quiet"]) == 2
    assert "--blind-sets takes a comma list of photos, medical, colour" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown blind kind"):
        draw_kernel("wobble", np.random.default_rng(0))
