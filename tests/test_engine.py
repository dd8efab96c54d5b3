from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from recon_demo.checkpoints import Manifest, save_checkpoint
from recon_demo.errors import UnknownName
from recon_demo.images import load_example, protocol_tensor
from recon_demo.models import create_model, list_models
from recon_demo.physics.blur import OperatorSpec
from recon_demo.physics.noise import add_relative_noise
from recon_demo.serving.engine import Engine, select_device


@pytest.fixture(scope="module")
def measurement():
    x_true = protocol_tensor(load_example("moon"))
    K = OperatorSpec().build()
    return x_true, add_relative_noise(K.forward(x_true), 0.01, torch.Generator().manual_seed(0)), K


def test_device_selection(monkeypatch):
    monkeypatch.setenv("RECON_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")
    monkeypatch.delenv("RECON_DEVICE")
    assert select_device().type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_models_and_baselines_in_one_call(course_dir, measurement):
    x_true, y_delta, K = measurement
    engine = Engine("cpu", manifest=Manifest([], course_dir))
    heard = []
    results = engine.reconstruct(
        y_delta, ["cnn", "rescnn", "unet"], baselines=["input", "wiener"], operator=K, x_true=x_true,
        checkpoints={"cnn": course_dir / "CNN.pth", "rescnn": course_dir / "ResCNN.pth"}, report=lambda *a: heard.append(a),
    )  # fmt: skip
    by_name = {r.name: r for r in results}
    assert list(by_name) == ["cnn", "rescnn", "unet", "input", "wiener"]
    assert [(done, total) for done, total, _ in heard] == [(i, 5) for i in range(1, 6)]  # each method, the failed one too
    assert by_name["unet"].image is None and "no shipped course checkpoint for unet" in by_name["unet"].error
    for name in ("cnn", "rescnn", "input", "wiener"):
        r = by_name[name]
        assert r.image.shape == (256, 256) and 0 <= r.image.min() and r.image.max() <= 1
        assert set(r.metrics) == {"mse", "psnr", "ssim", "lpips", "dc"} and r.ms >= 0
    assert by_name["cnn"].metrics["psnr"] > by_name["input"].metrics["psnr"]
    assert by_name["cnn"].label == "CNN"


def test_models_are_built_once_and_cached(course_dir):
    engine = Engine("cpu")
    a = engine.model("cnn", course_dir / "CNN.pth")
    assert engine.model("cnn", str(course_dir / "CNN.pth")) is a
    assert not a.training


def test_shipped_weights_come_from_the_manifest(tmp_path, measurement):
    model = create_model("unetpp")
    sha = save_checkpoint(model, tmp_path / "unetpp.safetensors")
    entry = {"model": "unetpp", "regime": "general", "file": "unetpp.safetensors", "sha256": sha}
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": [entry]}))
    engine = Engine("cpu", manifest=Manifest.load(tmp_path))
    assert engine.available("general")["unetpp"] is None
    assert engine.available("course")["unetpp"] == "no course weights yet"
    assert set(engine.available()) == set(list_models())
    (result,) = engine.reconstruct(measurement[1], ["unetpp"], regime="general")
    assert result.error is None and result.image.shape == (256, 256)


def test_unknown_names_are_refused(measurement):
    engine = Engine("cpu")
    with pytest.raises(UnknownName, match="unknown model"):
        engine.reconstruct(measurement[1], ["resnet"])
    with pytest.raises(UnknownName, match="unknown baseline"):
        engine.reconstruct(measurement[1], baselines=["bm3d"], operator=measurement[2])


@pytest.mark.parametrize("name", list_models())
def test_engine_matches_the_plain_lecture_loop(name):
    # channels-last layout and inference mode must not change the answer (the bench reports the same check)
    torch.manual_seed(0)
    plain = create_model(name).eval()
    engine = Engine("cpu", manifest=Manifest([], "."))
    prepared = engine.prepare(create_model(name))
    prepared.load_state_dict(plain.state_dict())
    y = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = plain(y).clamp(0, 1)
    out, ms = engine.forward(prepared, y)
    assert out.is_contiguous() and ms > 0
    assert (out - expected).abs().max() < 1e-4


def together(engine: Engine, model, inputs: list[torch.Tensor]) -> list:
    """``engine.infer(model, y)`` for each input at once, while another request is held in flight (so they wait
    for company and batch; the batch closes when full, at ``len(inputs)``): each output, or the exception raised."""
    engine.batcher.window_s, engine.batcher.max_batch = 30.0, len(inputs)
    blocker, started, release = torch.nn.Identity(), threading.Event(), threading.Event()
    original = engine.batcher._run

    def run(m, x):
        if m is blocker:
            started.set()
            release.wait(30)
        return original(m, x)

    engine.batcher._run = run
    holder = threading.Thread(target=engine.batcher, args=(blocker, torch.zeros(1, 1, 8, 8)))
    holder.start()
    try:
        assert started.wait(30)
        with ThreadPoolExecutor(len(inputs)) as pool:
            futures = [pool.submit(engine.infer, model, y) for y in inputs]
            return [f.exception(30) or f.result() for f in futures]
    finally:
        release.set()
        holder.join(30)
        engine.batcher._run = original


def test_concurrent_calls_run_as_one_batch_equal_to_unbatched_ones():
    torch.manual_seed(0)
    engine = Engine("cpu", manifest=Manifest([], "."))
    model = engine.prepare(create_model("unet"))
    inputs = [torch.rand(1, 1, 64, 64) for _ in range(4)]
    batched = together(engine, model, inputs)
    assert engine.batcher.batch_sizes == [1, 4]  # the held request alone, then the four together
    for y, out in zip(inputs, batched):
        assert out.shape == (1, 1, 64, 64)
        assert (out - engine.forward(model, y)[0]).abs().max() < 1e-5  # float rounding of another batch size


def test_a_lone_call_runs_at_once_and_a_failing_batch_tells_every_caller():
    engine = Engine("cpu", manifest=Manifest([], "."))
    model = engine.prepare(create_model("cnn"))
    engine.batcher.window_s = 30.0
    engine.infer(model, torch.rand(1, 1, 32, 32))  # alone on the server: no wait for company (else 30 s here)
    assert engine.batcher.batch_sizes == [1]

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("out of memory")

    errors = together(engine, Broken(), [torch.rand(1, 1, 16, 16) for _ in range(3)])
    assert all(isinstance(e, RuntimeError) and "out of memory" in str(e) for e in errors)
    assert engine.infer(model, torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)  # the batcher still serves
