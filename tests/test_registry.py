"""The one registry of methods (``recon_demo.methods.registry``): every method a person can pick, of either task, is
built by ``build`` from its name and runs in the one method shape, saying itself what it is."""

from __future__ import annotations

import pytest
import torch

from recon_demo.errors import UnknownName
from recon_demo.images import load_example, protocol_tensor
from recon_demo.methods import registry
from recon_demo.methods.base import Unavailable, run_methods
from recon_demo.methods.ct import measure
from recon_demo.physics.blur import LECTURE_OPERATOR
from recon_demo.physics.ct import radon_operator
from recon_demo.physics.noise import add_relative_noise
from recon_demo.serving.engine import Engine

SIZE = 64  # small: every method of both tasks runs in a few seconds


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("cpu", precision="fp32")  # the shipped weights


@pytest.fixture(scope="module")
def measurements() -> dict:
    x_true = protocol_tensor(load_example("camera"), SIZE)
    blur, radon = LECTURE_OPERATOR.build(), radon_operator(SIZE, 30)
    generator = torch.Generator().manual_seed(0)
    return {"deblur": (x_true, add_relative_noise(blur(x_true), 0.01, generator), blur),
            "ct": (x_true, measure(x_true, radon, 0.01, generator), radon)}  # fmt: skip


CASES = [(task, name) for task in registry.TASKS for name in registry.choices(task)] + [("deblur", "input")]


@pytest.mark.parametrize(("task", "name"), CASES)
def test_every_registered_method_is_built_by_name_and_runs_in_the_one_shape(task, name, engine, measurements):
    (method,) = registry.build([name], engine, task, regime="general" if task == "deblur" else "course", angles=60)
    assert method.name == name and method.label == registry.label(name)
    assert not isinstance(method, Unavailable), method.error  # every registered network ships weights for its task
    assert method.is_network == (name in registry.networks(task))
    assert method.handed_operator == registry.is_handed_operator(name)
    x_true, y_delta, operator = measurements[task]
    (result,) = run_methods([method], y_delta, operator, x_true)
    assert result.error is None and result.image.shape == (SIZE, SIZE)
    assert torch.isfinite(torch.from_numpy(result.image)).all() and 0 <= result.image.min() <= result.image.max() <= 1
    assert result.metrics["psnr"] > 10  # a reconstruction, not noise


def test_the_shipped_networks_are_all_built_and_unknown_names_are_refused(engine):
    built = registry.build(registry.networks("deblur"), engine, regime="course")
    assert not [m.name for m in built if isinstance(m, Unavailable)]  # the fourteen checkpoints ship
    with pytest.raises(UnknownName, match="unknown model or method 'bm3d' for deblur; choose from cnn, rescnn"):
        registry.build(["bm3d"], engine)
    with pytest.raises(UnknownName, match="unknown model or method 'unet' for ct; choose from fbp_resunet"):
        registry.build(["unet"], engine, "ct")
