"""The shipped checkpoints: each manifest entry's file matches its sha256, loads in the engine, improves on the
measurement by at least 1 dB on two held-out images at its training operator, and `evaluate` reproduces the
held-out metrics the manifest records."""

from __future__ import annotations

import pytest
import torch

from recon_demo.checkpoints import Manifest, sha256_file
from recon_demo.engine import Engine
from recon_demo.evaluate import EvalConfig, run_evaluation
from recon_demo.images import load_example, protocol_tensor
from recon_demo.metrics import psnr
from recon_demo.models import list_models
from recon_demo.operators import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec, add_relative_noise

MANIFEST = Manifest.load()
ENTRIES = {f"{e.model}-{e.regime}": e for e in MANIFEST.entries}


def test_the_manifest_describes_lecture_architectures_in_known_regimes():
    assert ENTRIES, "weights/manifest.json lists no checkpoint"
    for entry in MANIFEST.entries:
        assert entry.model in list_models() and entry.regime in ("course", "general")
        assert entry.recipe["steps"] > 0 and entry.compute["device"] and entry.compute["wall_s"] > 0
        assert entry.data["held_out"] and set(entry.metrics) >= {"command", "protocol", "model", "measurement"}


def _operator(entry) -> tuple[OperatorSpec, float]:
    if entry.regime == "general":
        return LECTURE_OPERATOR, LECTURE_NOISE
    return OperatorSpec(**entry.operator), float(entry.noise["level"])


@pytest.mark.parametrize("key", ENTRIES)
def test_a_shipped_checkpoint_loads_and_improves_on_the_measurement(key):
    entry = ENTRIES[key]
    assert sha256_file(entry.path(MANIFEST.weights_dir)) == entry.sha256
    engine = Engine("cpu", manifest=MANIFEST)
    model = engine.model(entry.model, regime=entry.regime)
    op, noise = _operator(entry)
    for i, name in enumerate(("camera", "coffee")):
        x_true = protocol_tensor(load_example(name))
        y_delta = add_relative_noise(op.build().forward(x_true), noise, torch.Generator().manual_seed(i))
        x_rec = engine.forward(model, y_delta)[0]
        assert psnr(x_rec, x_true) > psnr(y_delta.clamp(0, 1), x_true) + 1, name


@pytest.mark.parametrize("key", ENTRIES)
def test_evaluate_reproduces_the_recorded_held_out_metrics(key):
    entry = ENTRIES[key]
    op, noise = _operator(entry)
    result = run_evaluation(EvalConfig(models=[(entry.model, None)], baselines=["input"], operator=op, noise=noise,
                                       regime=entry.regime, device="cpu"))  # fmt: skip
    for metric in ("mse", "psnr", "ssim"):
        assert result["results"][entry.model][metric] == pytest.approx(entry.metrics["model"][metric], abs=1e-4)
        assert result["results"]["input"][metric] == pytest.approx(entry.metrics["measurement"][metric], abs=1e-4)
