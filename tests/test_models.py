from __future__ import annotations

import pytest
import torch

from recon_demo.checkpoints import load_checkpoint
from recon_demo.errors import UnknownName
from recon_demo.models import count_parameters, create_model, knows_operator, list_models, model_info
from recon_demo.models._padding import at_multiple
from recon_demo.physics.blur import LECTURE_OPERATOR

# The lecture's parameter counts for its default configurations.
LECTURE_PARAMETERS = {
    "cnn": 9_857,
    "rescnn": 9_857,
    "unet": 1_925_025,
    "resunet": 2_011_777,
    "attunet": 1_968_708,
    "unetpp": 517_121,
    "vit": 1_249_089,
    "loss_study_cnn": 2_625,
    "fbp_resunet": 2_011_777,  # the Residual UNet; the FBP before it has no parameters
}
BEYOND_PARAMETERS = {"unrolled": 337_451}  # ours, not the lecture's: five 24-channel denoisers and six λ (≤ 2 M)
ALL = list_models(group=None)


def test_registry_lists_the_seven_lecture_architectures_in_lecture_order():
    assert list_models() == ["cnn", "rescnn", "unet", "resunet", "attunet", "unetpp", "vit"]
    assert set(ALL) == set(LECTURE_PARAMETERS) | set(BEYOND_PARAMETERS)
    assert list_models("beyond") == ["unrolled"]
    assert [model_info(n).label for n in list_models()] == [
        "CNN", "ResCNN", "UNet", "Residual UNet", "Attention UNet", "UNet++", "ViT",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_matches_the_lecture(name):
    assert count_parameters(create_model(name)) == (LECTURE_PARAMETERS | BEYOND_PARAMETERS)[name]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 1, 37, 53), (1, 1, 64, 64)])
def test_output_keeps_the_input_size_and_is_finite(name, shape, device):
    model = create_model(name).to(device).eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        out = model(x, LECTURE_OPERATOR.build()) if knows_operator(model) else model(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_info_has_words_for_the_ui(name):
    info = model_info(name)
    assert info.label and info.display_name and len(info.description) > 20


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownName, match="known models: cnn"):
        create_model("resnet50")


def test_ct_refiner_is_the_residual_unet_learning_a_correction():
    assert list_models("ct") == ["fbp_resunet"]
    refiner = create_model("fbp_resunet").eval()
    plain = create_model("resunet").eval()
    plain.load_state_dict(refiner.state_dict())  # the same weights fit both: only the global skip differs
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(refiner(x), plain(x) + x)


def test_kwargs_override_the_lecture_defaults():
    assert count_parameters(create_model("cnn", n_filters=16)) == LECTURE_PARAMETERS["loss_study_cnn"]
    assert count_parameters(create_model("unet", base_ch=8)) < LECTURE_PARAMETERS["unet"]


def test_vit_interpolates_its_positional_embedding_for_another_grid():
    model = create_model("vit").eval()
    with torch.no_grad():
        model.pos_embed.normal_()
    assert model.position_embedding(32, 32) is model.pos_embed
    resized = model.position_embedding(12, 20)
    assert resized.shape == (1, 240, 128)
    assert torch.allclose(model.position_embedding(32, 32), model.pos_embed)


def test_rescnn_is_residual():
    model = create_model("rescnn")
    with torch.no_grad():
        model.conv3.weight.zero_()
        model.conv3.bias.zero_()
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(model(x), x)  # tanh(0) + x


@pytest.mark.parametrize("name, file", [("cnn", "CNN.pth"), ("rescnn", "ResCNN.pth")])
def test_lecture_checkpoints_load_unchanged(course_dir, name, file):
    model = load_checkpoint(name, course_dir / file)
    assert count_parameters(model) == 9_857
    assert not model.training


def test_at_multiple_runs_crops_flush_with_the_image_edges():
    calls = []

    def column_in_crop(x):  # each output pixel says which crop gave it and where in that crop it sits
        calls.append(tuple(x.shape[-2:]))
        h, w = x.shape[-2:]
        return torch.arange(h, dtype=torch.float32)[:, None] * 1000 + torch.arange(w, dtype=torch.float32) + 0 * x

    x = torch.rand(1, 1, 21, 35)
    out = at_multiple(column_in_crop, x, 8)
    assert out.shape == x.shape and calls == [(16, 32)] * 4  # four crops of the largest multiples
    rows, cols = out[0, 0] // 1000, out[0, 0] % 1000
    # the left half from the crop flush with the left edge, the right half from the one flush with the right edge
    assert torch.equal(cols[:, :17], torch.arange(17.0).expand(21, 17))
    assert torch.equal(cols[:, 17:], (torch.arange(17, 35.0) - 3).expand(21, 18))
    assert torch.equal(rows[:10], torch.arange(10.0)[:, None].expand(10, 35))
    assert torch.equal(rows[10:], (torch.arange(10, 21.0) - 5)[:, None].expand(11, 35))
    calls.clear()
    assert torch.equal(at_multiple(lambda t: t * 2, x[..., :16, :32], 8), x[..., :16, :32] * 2) and not calls
    assert torch.equal(at_multiple(lambda t: t + 0, x, 8), x)  # a pixelwise network gives back exactly its input
    calls.clear()
    assert at_multiple(column_in_crop, x[..., :5, :20], 8).shape == (1, 1, 5, 20) and calls == [(8, 16), (8, 16)]  # short side padded


@pytest.mark.parametrize("name", ["unet", "resunet", "attunet", "unetpp", "vit"])
def test_a_side_that_is_not_a_multiple_gives_the_crops_result_at_each_edge(name):
    model = create_model(name).eval()
    y = torch.rand(1, 1, 64, 77)
    shift = 77 % model.size_multiple  # the right crop starts there
    with torch.inference_mode():
        out, left, right = model(y), model(y[..., : 77 - shift]), model(y[..., shift:])
    assert out.shape == y.shape and shift
    assert torch.allclose(out[..., :38], left[..., :38]) and torch.allclose(out[..., 38:], right[..., 38 - shift :])
