"""Specs that describe themselves (``recon_demo.physics.spec``): a field added to a spec reaches the widgets, the API,
the URL and the CLI by itself, and the shipped specs' descriptions are complete and consistent."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import gradio as gr
import pytest
import torch

from recon_demo.lab.ct import CTSetting
from recon_demo.lab.setting import FLAT_FIELDS, Setting, SettingError
from recon_demo.physics import spec
from recon_demo.physics.blur import LECTURE_OPERATOR, OperatorSpec
from recon_demo.physics.ct import CTSpec
from recon_demo.physics.ranges import GENERAL_RANGES, OperatorRanges
from recon_demo.physics.spec import param
from recon_demo.ui._widgets import spec_widgets
from recon_demo.ui.api import reconstruct_endpoint, train_endpoint


@dataclasses.dataclass(frozen=True)
class TiltedSpec(OperatorSpec):
    """A new operator parameter, declared the way a contributor would: its field, and its use in ``kernel()``."""

    shift: int = param(0, "Kernel shift", int, low=-3, high=3, step=1, unit="px", url="shift", applies_to=("motion",))

    def kernel(self) -> torch.Tensor:
        return torch.roll(super().kernel(), self.shift, dims=1)


def test_a_new_field_reaches_the_widgets_the_api_the_url_and_the_cli(lab):
    # widgets: a slider with the field's bounds, step, label and elem_id
    with gr.Blocks():
        widgets = spec_widgets(TiltedSpec())
    shift = widgets["shift"]
    assert isinstance(shift, gr.Slider) and (shift.minimum, shift.maximum, shift.step) == (-3, 3, 1)
    assert shift.label == "Kernel shift (px)" and shift.elem_id == "shift"
    assert list(widgets)[:5] == ["blur", "kernel_size", "angle", "variance", "kernel_style"]

    # the API: the endpoint's signature has the field, the value is validated and it changes the measurement
    base = Setting(operator=TiltedSpec())
    fn = reconstruct_endpoint(lab, base)
    parameters = inspect.signature(fn).parameters
    assert "shift" in parameters and parameters["shift"].annotation is int and parameters["shift"].default == 0
    plain = fn(image="moon", models="wiener")
    shifted = fn(image="moon", models="wiener", shift=2)
    assert shifted["setting"]["shift"] == "2" and plain["setting"]["shift"] == "0"
    assert plain["table"]["rows"][0] != shifted["table"]["rows"][0]  # the measurement moved with the kernel
    with pytest.raises(gr.Error, match=r"shift must be an integer in \[-3, 3\], got 7"):
        fn(image="moon", models="wiener", shift=7)
    assert "shift" in inspect.signature(train_endpoint(base)).parameters

    # the URL: written under its key and read back; a bad value is dropped with a warning
    assert Setting(operator=TiltedSpec(shift=-1)).to_query()["shift"] == "-1"
    read, warnings = Setting.from_query({"shift": "2", "angle": "45"}, base)
    assert read.operator == TiltedSpec(shift=2, angle=45.0) and not warnings
    read, warnings = Setting.from_query({"shift": "9"}, base)
    assert read.operator.shift == 0 and "ignored shift='9'" in warnings[0]

    # the CLI: a flag with its type, default and help
    parser = argparse.ArgumentParser()
    spec.add_arguments(parser, TiltedSpec)
    args = parser.parse_args(["--shift", "-2", "--angle", "30"])
    assert spec.from_args(TiltedSpec, args) == TiltedSpec(shift=-2, angle=30.0)
    assert "Kernel shift (px), an integer in [-3, 3]; motion only (default 0)" in " ".join(parser.format_help().split())
    with pytest.raises(ValueError, match="shift must be an integer"):
        spec.from_args(TiltedSpec, parser.parse_args(["--shift", "5"]))


def test_every_field_of_the_shipped_specs_describes_itself():
    for spec_cls in (OperatorSpec, CTSpec):
        described = spec.params(spec_cls)
        assert list(described) == [f.name for f in dataclasses.fields(spec_cls)]  # no field without its Param
        assert spec.validated(spec_cls()) == spec_cls()  # the defaults are allowed
        flags = [flag for name, p in described.items() for flag in spec.flags_of(name, p)]
        assert len(flags) == len(set(flags))
    keys = Setting.query_keys()
    assert len(keys) == len(set(keys.values())) == len(FLAT_FIELDS)  # one URL key per flat field, none shared
    assert set(keys.values()) == set(FLAT_FIELDS)
    assert LECTURE_OPERATOR.validated() == LECTURE_OPERATOR


def test_validation_names_the_field_and_what_is_allowed():
    cases = [
        (dict(kernel_size=4), "kernel size must be odd, got 4"),
        (dict(kernel_size=33), r"kernel size must be an integer in \[1, 31\], got 33"),
        (dict(angle=float("nan")), r"angle must be a number in \[-360, 360\]"),
        (dict(variance=0), r"variance must be a number in \[0.05, 20\]"),
        (dict(blur="box"), "blur must be one of motion, gaussian, defocus, drawn, got 'box'"),
        (dict(kernel_style="wavy"), "kernel style must be one of ippy, centered"),
    ]
    for flat, message in cases:
        with pytest.raises(SettingError, match=message):
            Setting.of(**flat).validated()
    with pytest.raises(SettingError, match=r"number of angles must be an integer in \[1, 360\]"):
        CTSetting.of(angles=361).validated()
    with pytest.raises(ValueError, match=r"FBP filter must be one of ramp"):
        CTSpec(filter="box").validated()


def test_the_training_ranges_come_from_the_spec_and_keep_the_recorded_names():
    # the manifests and training states record these names: they must not change with the generated class
    assert list(dataclasses.asdict(GENERAL_RANGES)) == ["blurs", "kernel_size", "angle", "variance", "kernel_styles", "noise",
                                                        "lecture_share"]  # fmt: skip
    assert GENERAL_RANGES.kernel_size == (3, 15) and GENERAL_RANGES.blurs == ("motion", "gaussian")
    draws = {OperatorRanges().validate().sample(torch.Generator().manual_seed(s))[0].blur for s in range(40)}
    assert draws == {"motion", "gaussian"}  # never "drawn": a drawing has no range to draw from
    with pytest.raises(ValueError, match="blurs must be a non-empty list of motion, gaussian"):
        OperatorRanges(blurs=("drawn",)).validate()
    with pytest.raises(ValueError, match=r"kernel size must be an integer in \[1, 31\], got 101"):
        OperatorRanges(kernel_size=(3, 101)).validate()


# ------------------------------------------------------------------------------------- a new blur kind, in one place


def _box_kernel(s) -> torch.Tensor:
    return torch.full((s.kernel_size, s.kernel_size), 1.0 / s.kernel_size**2)


@pytest.fixture
def box_kind():
    """A toy blur kind, added the way a contributor would: its builder and its row (``physics.kernels.register``)."""
    from recon_demo.physics import kernels

    kind = kernels.register(kernels.BlurKind("box", _box_kernel, lambda s: f"box {s.kernel_size}×{s.kernel_size}"))
    yield kind
    kernels.BLUR_KINDS.pop("box")


def test_a_new_blur_kind_reaches_the_widgets_url_api_clis_badge_restore_and_the_reproduce_command(box_kind, lab, tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from recon_demo.__main__ import main as cli
    from recon_demo.checkpoints import ManifestEntry

    box = OperatorSpec(blur="box", kernel_size=5)
    assert box.validated() == box and box.describe() == "box 5×5" and torch.allclose(box.kernel().sum(), torch.tensor(1.0))
    # widgets: the blur's radio offers it
    with gr.Blocks():
        widgets = spec_widgets(box)
    assert ("box", "box") in widgets["blur"].choices and widgets["blur"].value == "box"
    assert not widgets["angle"].visible and not widgets["variance"].visible  # fields of other kinds hidden
    # the URL, both ways
    assert Setting(operator=box).to_query()["blur"] == "box"
    read, warnings = Setting.from_query({"blur": "box", "size": "5"})
    assert read.operator.blur == "box" and read.operator.kernel_size == 5 and not warnings
    # the API: accepted, validated, and it changes the measurement
    fn = reconstruct_endpoint(lab)
    boxed, plain = fn(image="moon", models="wiener", blur="box", kernel_size=5), fn(image="moon", models="wiener", kernel_size=5)
    assert boxed["setting"]["blur"] == "box" and boxed["table"]["rows"][0] != plain["table"]["rows"][0]
    # the CLI flags and the reproduce command: what the spec prints, the flags read back
    parser = argparse.ArgumentParser()
    spec.add_arguments(parser, OperatorSpec)
    assert spec.command_flags(box) == "--blur box --kernel-size 5"
    assert spec.from_args(OperatorSpec, parser.parse_args(spec.command_flags(box).split())) == box
    assert OperatorSpec.parse(box.text()) == box and box.text() == "box:5"
    capsys.readouterr()
    assert cli(["evaluate", "--baselines", "input,wiener", *spec.command_flags(box).split(), "--limit", "1", "--size", "64",
                "--format", "json", "--quiet"]) == 0  # fmt: skip  (the reproduce command's flags, run)
    protocol = json.loads(capsys.readouterr().out)["protocol"]
    assert protocol["operator"] == "box" and protocol["kernel"] == "box:5" and protocol["summary"].startswith("box 5×5")
    with pytest.raises(ValueError, match=r"write motion:SIZE:ANGLE\[:KERNEL_STYLE\], gaussian:SIZE:VARIANCE, defocus:RADIUS, drawn:SIZE:DRAWN, box:SIZE"):
        OperatorSpec.parse("ring:5")
    # the "trained for" badge: a checkpoint trained for the box, met with a motion blur, and the general ranges
    entry = ManifestEntry("cnn", "course", "f", "0", operator=box.to_dict(), noise={"kind": "relative", "level": 0.01})
    assert entry.trained_for() == "box 5×5, noise 0.01"
    assert entry.covers(box, 0.01) and not entry.covers(LECTURE_OPERATOR, 0.01)
    assert not GENERAL_RANGES.covers(box, 0.01)  # the shipped general models never trained on a box
    assert lab.badge("cnn", Setting(operator=box, regime="general")) is not None  # so the page marks them ⚠ there
    # restore --kernel box:5
    picture = tmp_path / "blurred.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(picture)
    capsys.readouterr()
    assert cli(["restore", str(picture), "--out", str(tmp_path / "out"), "--kernel", "box:5", "--methods", "wiener",
                "--format", "json", "--noise", "0.01", "--quiet"]) == 0  # fmt: skip
    (answer,) = json.loads(capsys.readouterr().out)["images"]
    assert answer["kernel"]["blur"] == "box" and answer["kernel"]["kernel_size"] == 5
    assert (tmp_path / "out" / "blurred__wiener.png").is_file()
