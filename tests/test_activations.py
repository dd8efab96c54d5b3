from __future__ import annotations

import pytest
import torch

from recon_demo import activations as ins
from recon_demo.errors import UnknownName
from recon_demo.models import create_model, knows_operator, list_models
from recon_demo.physics.blur import LECTURE_OPERATOR

ALL = list_models(group=None)


def _built(name: str) -> torch.nn.Module:
    """The architecture in eval mode; a network that knows K is bound to the lecture's, as Inspect binds it."""
    model = create_model(name).eval()
    return model.bind(LECTURE_OPERATOR.build()) if knows_operator(model) else model


@pytest.mark.parametrize("name", ALL)
def test_first_layer_activations(name):
    model = _built(name)
    act = ins.activations(model, torch.rand(1, 1, 32, 40))
    layer = dict(model.named_modules())[ins.first_conv(model)]
    assert act.shape[0] == layer.out_channels
    grid = ins.activation_grid(act)
    assert grid.ndim == 2 and 0 <= grid.min() and grid.max() <= 1


def test_first_conv_names():
    assert ins.first_conv(create_model("cnn")) == "conv1"
    assert ins.first_conv(create_model("vit")) == "patch_embed"
    assert "dec1.up" in ins.conv_layers(create_model("unet"))


@pytest.mark.parametrize("name", ALL)
def test_hooks_are_always_removed(name):
    model = _built(name)
    layers = ins.conv_layers(model)[:3]
    with pytest.raises(RuntimeError, match="boom"):
        with ins.capture_activations(model, layers) as captured:
            model(torch.rand(1, 1, 16, 16))
            assert set(captured) == set(layers)
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in model.modules())


def test_unknown_layer_lists_the_convolutions():
    with pytest.raises(UnknownName, match="convolutions are: conv1, conv2, conv3"):
        with ins.capture_activations(create_model("cnn"), ["fc"]):
            pass


def test_activation_grid_layout_and_scales():
    act = torch.arange(16 * 4 * 4, dtype=torch.float32).reshape(16, 4, 4)
    shared = ins.activation_grid(act, pad=2)
    assert shared.shape == (4 * 4 + 3 * 2, 4 * 4 + 3 * 2)
    per_channel = ins.activation_grid(act, scale="channel")
    assert per_channel[:4, :4].max() == 1 and shared[:4, :4].max() < 0.1
    with pytest.raises(ValueError, match="scale"):
        ins.activation_grid(act, scale="log")


def test_receptive_field_formula():
    assert ins.receptive_field([(3, 1)] * 3) == 7
    assert ins.receptive_field([(3, 1)] * 10) == 21  # linear in depth
    assert ins.receptive_field([(3, 2), (3, 2), (3, 2)]) == 15  # exponential in stride


@pytest.mark.parametrize("name", ["cnn", "rescnn", "loss_study_cnn"])
def test_formula_and_empirical_receptive_field_agree_on_plain_chains(name):
    model = create_model(name)
    rf = ins.empirical_receptive_field(model)
    assert ins.formula_receptive_field(model) == 7
    assert ins.receptive_field_extent(rf) == (7, 7)


def test_unet_sees_much_further_than_the_cnn():
    assert ins.formula_receptive_field(create_model("unet")) is None
    h, w = ins.receptive_field_extent(ins.empirical_receptive_field(create_model("unet")))
    assert h > 40 and w > 40


def test_flops_and_summary():
    cnn = ins.summary(create_model("cnn"))
    assert cnn["parameters"] == 9857 and cnn["receptive_field"] == 7
    # three 3×3 convolutions at 256²: 2 · 256² · 9 · (1·32 + 32·32 + 32·1) multiply-adds
    assert cnn["flops"] == 2 * 256 * 256 * 9 * (32 + 32 * 32 + 32)
    assert ins.count_flops(create_model("unet"), 64, 64) * 16 == ins.count_flops(create_model("unet"), 256, 256)


@pytest.mark.parametrize("name", list_models())
def test_first_layer_output_is_the_hooked_activation(name):
    # the lab computes it without a hook (models are shared between requests); both must be the conv's own output,
    # before any in-place ReLU that follows it
    model = create_model(name).eval()
    for shape in ((64, 64), (64, 77)):  # 77: not a multiple of the poolings, the padded columns cut off again
        y = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(0))
        direct = ins.first_layer_output(model, y)
        hooked = ins.activations(model, y)
        if name == "vit":  # its first layer cuts 8×8 patches: the last, partial one (zero-padded) is kept
            assert hooked.shape[-2:] == (8, -(-shape[1] // 8))
        else:
            assert torch.allclose(direct, hooked, atol=1e-6)
        assert float(direct.min()) < 0  # pre-activation: negative values survive


def test_every_convolution_has_a_name_a_student_can_read():
    from recon_demo.activations import conv_layers, layer_label
    from recon_demo.models import create_model, list_models

    assert layer_label("enc2.conv.net.2") == "encoder block 2, conv 2"
    assert layer_label("bottleneck.conv.conv1") == "bottleneck, conv 1"
    assert layer_label("dec3.gate.psi") == "decoder block 3, attention gate, psi"
    assert layer_label("conv1_1.net.0") == "node X1,1, conv 1" and layer_label("conv3") == "conv 3"
    assert layer_label("denoisers.1.down.2") == "denoiser 2, half resolution, conv 2"
    for name in list_models() + list_models("beyond"):
        labels = [layer_label(layer) for layer in conv_layers(create_model(name))]
        assert len(set(labels)) == len(labels) and not any("." in label for label in labels), (name, labels)


@pytest.mark.parametrize("name", ["unet", "vit", "unetpp"])
def test_flops_are_torchs_formulas_without_its_global_module_hooks(name):
    from torch.nn.modules import module as module_hooks
    from torch.utils.flop_counter import FlopCounterMode

    model = _built(name)
    with FlopCounterMode(display=False) as reference, torch.inference_mode():
        model(torch.zeros(1, 1, 64, 64))
    assert ins.count_flops(model, 64, 64) == reference.get_total_flops()

    class Probe(torch.nn.Module):  # what another request's model would see while a FLOP count runs
        def forward(self, x):
            seen.append(len(module_hooks._global_forward_pre_hooks) + len(module_hooks._global_backward_hooks))
            return x

    seen: list[int] = []
    probe = torch.nn.Sequential(Probe(), torch.nn.Conv2d(1, 1, 3))
    ins.count_flops(probe, 16, 16)
    assert seen == [0]  # FlopCounterMode's module tracker would have hooked every module of the process
