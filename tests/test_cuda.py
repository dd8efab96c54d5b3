"""What only a GPU can check: the CUDA paths give the CPU's answers. Marked ``cuda``; skipped without CUDA (CI
has none). ``benchmarks/gpu.sh`` runs them with the bench on the day a device is lent (``pytest -m cuda``)."""

from __future__ import annotations

import pytest
import torch

from recon_demo.checkpoints import Manifest
from recon_demo.images import load_example, protocol_tensor
from recon_demo.metrics import psnr
from recon_demo.models import create_model, list_models
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR
from recon_demo.physics.noise import add_relative_noise
from recon_demo.serving.engine import Engine
from tests.test_engine import together

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def engines():
    manifest = Manifest([], ".")
    return Engine("cpu", manifest=manifest, precision="fp32"), Engine("cuda", manifest=manifest, precision="fp32")


@pytest.mark.parametrize("name", list_models())
def test_every_architecture_gives_the_cpus_answer_on_cuda(engines, name):
    cpu, gpu = engines
    torch.manual_seed(0)
    model = create_model(name)
    on_cpu, on_gpu = cpu.prepare(create_model(name)), gpu.prepare(create_model(name))
    on_cpu.load_state_dict(model.state_dict())
    on_gpu.load_state_dict(model.state_dict())
    y = torch.rand(1, 1, 256, 256)
    expected, _ = cpu.forward(on_cpu, y)
    out, ms = gpu.forward(on_gpu, y)
    assert out.device.type == "cpu" and ms > 0
    assert (out - expected).abs().max() < 5e-3  # cuDNN may use TF32 for convolutions


def test_batched_calls_on_cuda_equal_single_ones(engines):
    _, gpu = engines
    model = gpu.prepare(create_model("unet"))
    inputs = [torch.rand(1, 1, 128, 128) for _ in range(3)]
    batched = together(gpu, model, inputs)
    assert 3 in gpu.batcher.batch_sizes
    for y, out in zip(inputs, batched):
        assert (out - gpu.forward(model, y)[0]).abs().max() < 1e-4


def test_a_shipped_unet_scores_the_same_on_cuda():
    manifest = Manifest.load()
    if manifest.find("unet") is None:
        pytest.skip("no shipped UNet")
    x_true = protocol_tensor(load_example("camera"))
    y = add_relative_noise(LECTURE_OPERATOR.build().forward(x_true), LECTURE_NOISE, torch.Generator().manual_seed(0))
    scores = [psnr(Engine(d, manifest=manifest, precision="fp32").network("unet")(y), x_true) for d in ("cpu", "cuda")]
    assert abs(scores[0] - scores[1]) < 0.05


def test_training_steps_on_cuda_with_and_without_bf16():
    from recon_demo.training import TrainConfig, Trainer

    for amp in (False, True):
        cfg = TrainConfig(model="unet", steps=3, batch_size=4, patch_size=64, phantoms=4, max_images=4, eval_every=0,
                          device="cuda", amp=amp)  # fmt: skip
        losses = [event.loss for event in Trainer(cfg).run()]
        assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
