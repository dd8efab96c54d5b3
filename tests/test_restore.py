"""Restoring pictures that are already blurred: the scene's operator, real edges, shake kernels, ``restore``'s CLI and
its answers, and every bad input refused with a message (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon_demo import images
from recon_demo.__main__ import main as cli
from recon_demo.errors import RestoreError
from recon_demo.evaluate.blind import blur_with_border
from recon_demo.lab.restore import parse_kernel, parse_noise, psf_kernel
from recon_demo.methods.base import Deconvolution
from recon_demo.methods.blur import BASELINES
from recon_demo.methods.edges import RealEdges
from recon_demo.metrics import psnr
from recon_demo.physics.blur import Blur, SceneBlur
from recon_demo.physics.kernels import motion_kernel, shake_kernel
from recon_demo.picture import read_picture

ROOT = Path(__file__).resolve().parents[1]


def test_the_scenes_operator_is_the_adjoint_pair_and_sees_past_the_frame():
    g = torch.Generator().manual_seed(0)
    scene = SceneBlur(Blur(motion_kernel(9, 30.0, "centered")), 6)
    x, y = torch.rand(2, 1, 44, 52, generator=g), torch.rand(2, 1, 32, 40, generator=g)
    assert scene.forward(x).shape == y.shape and scene.adjoint(y).shape == x.shape
    assert torch.allclose((scene.forward(x) * y).sum(), (x * scene.adjoint(y)).sum(), rtol=1e-5)
    # the frame of a larger scene's blur: no zero padding reaches it
    assert torch.allclose(scene.forward(x), Blur(scene.kernel).forward(x)[..., 6:-6, 6:-6])
    with pytest.raises(ValueError, match="half side"):
        SceneBlur(Blur(motion_kernel(15, 0.0)), 3)


def test_a_shake_kernel_is_a_curved_path_that_sums_to_one_about_the_centre():
    k = shake_kernel(15, seed=4).numpy()
    assert k.shape == (15, 15) and k.min() >= 0 and k.sum() == pytest.approx(1.0, abs=1e-6)
    rows, cols = np.indices(k.shape)
    assert (k * rows).sum() == pytest.approx(7, abs=0.6) and (k * cols).sum() == pytest.approx(7, abs=0.6)
    assert (k > 0.01).sum() > 8 and np.linalg.matrix_rank(np.argwhere(k > 0.01) - 7.0) == 2  # not a straight line
    assert np.array_equal(k, shake_kernel(15, seed=4).numpy()) and not np.array_equal(k, shake_kernel(15, seed=5).numpy())


def test_real_edges_keep_tv_from_ringing_at_the_frame():
    kernel = motion_kernel(11, 20.0, "centered")
    scene = images.to_grayscale(images.load_example("chelsea"))  # a training image
    x, y = blur_with_border(scene, kernel, 128, 0.01, np.random.default_rng(0), torch.Generator().manual_seed(0))
    tv = Deconvolution("tv", "TV", BASELINES["tv"])
    zero = tv(y, Blur(kernel))[0, 0].numpy()
    real = RealEdges(tv)(y, Blur(kernel))[0, 0].numpy()
    truth = x[0, 0].numpy()
    assert psnr(real, truth) > psnr(zero, truth) + 3  # the zero-padded data term rings at the edges
    inner = slice(12, -12)
    assert psnr(real, truth) > psnr(real[inner, inner], truth[inner, inner]) - 1.0  # real edges cost under 1 dB


def test_kernels_and_noise_levels_are_parsed_or_refused():
    assert parse_kernel("auto") == "auto"
    spec = parse_kernel("motion:11:30")
    assert (spec.blur, spec.kernel_size, spec.angle, spec.kernel_style) == ("motion", 11, 30.0, "centered")
    assert parse_kernel("gaussian:9:2.5").variance == 2.5 and parse_kernel("motion:9:20:ippy").kernel_style == "ippy"
    for bad, message in (("motion:10:30", "odd"), ("motion:9", "motion:SIZE:ANGLE"), ("gaussian:9:-1", "variance"),
                         ("motion:9:nan", "angle must be a number"), ("wobble", "neither auto"), ("motion:999:0", "got 999")):  # fmt: skip
        with pytest.raises(RestoreError, match=message):
            parse_kernel(bad)
    assert parse_noise("auto") is None and parse_noise("0.02") == 0.02
    for bad in ("-0.1", "5", "nan", "lots"):
        with pytest.raises(RestoreError, match="relative noise level between 0 and 1"):
            parse_noise(bad)


@pytest.mark.parametrize(
    "psf, message",
    [(np.zeros((9, 9)), "all zeros"), (-np.ones((5, 5)), "negative"), (np.full((5, 5), np.nan), "not finite"),
     (np.pad(np.ones((1, 41)), ((22, 22), (2, 2))), "larger than the image")],  # fmt: skip
    ids=["zeros", "negative", "nan", "larger-than-the-image"],
)
def test_a_bad_psf_is_refused(psf, message):
    with pytest.raises(RestoreError, match=message):
        psf_kernel(psf, (32, 32))


def test_a_photographed_psf_is_cropped_to_where_it_stands_out_of_its_background():
    psf = np.full((40, 40), 12.0)  # a faint background, as a JPEG or a photo of a point gives
    psf[20, 14:23] = 200.0
    k = psf_kernel(psf, (256, 256))
    assert k.shape == (9, 9) and float(k[4].sum()) == pytest.approx(1.0)
    with pytest.raises(RestoreError, match="no blur in it"):
        psf_kernel(np.full((9, 9), 5.0), (64, 64))


def test_a_psf_image_of_any_size_becomes_an_odd_kernel_summing_to_one():
    psf = np.zeros((20, 30))
    psf[10, 5:20] = 1.0  # a horizontal streak of 15 pixels off-centre in an even-sided picture
    k = psf_kernel(psf, (256, 256))
    assert k.shape == (15, 15) and float(k.sum()) == pytest.approx(1.0) and float(k[7].sum()) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def blurred(tmp_path_factory) -> dict[str, Path]:
    """A colour photo and a 16-bit grey slice, each blurred with real edges; and bad files."""
    folder = tmp_path_factory.mktemp("blurred")
    rng = np.random.default_rng(0)
    rgb = np.asarray(images.load_example("chelsea").convert("RGB"), dtype=np.float32)[:200, :240] / 255
    kernel = motion_kernel(9, 30.0, "centered")
    planes = [blur_with_border(np.ascontiguousarray(rgb[..., c]), kernel, 256, 0.01, np.random.default_rng(1),
                               torch.Generator().manual_seed(c))[1][0, 0].clamp(0, 1).numpy() for c in range(3)]  # fmt: skip
    Image.fromarray(np.round(np.stack(planes, -1) * 255).astype(np.uint8)).save(folder / "photo.png")
    grey = blur_with_border(images.to_grayscale(images.load_example("coins")), kernel, 160, 0.01, rng,
                            torch.Generator().manual_seed(3))[1][0, 0].clamp(0, 1).numpy()  # fmt: skip
    Image.fromarray(np.round(grey * 65535).astype(np.uint16)).save(folder / "slice16.png")
    (folder / "notes.png").write_bytes(b"not pixels")
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "black.png")
    Image.fromarray(np.full((1, 1), 128, np.uint8)).save(folder / "dot.png")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(folder / "zero_psf.png")
    Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(folder / "small.png")  # smaller than a 31² kernel
    return {p.stem: p for p in folder.iterdir()}


def test_restore_writes_each_method_at_the_inputs_size_and_colour_and_prints_json(blurred, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(["restore", str(blurred["photo"]), str(blurred["slice16"]), "--out", str(out), "--methods", "tv,input",
                "--format", "json", "--quiet"])  # fmt: skip
    answer = json.loads(capsys.readouterr().out)  # stdout is the JSON alone
    assert code == 0 and [a["input"] for a in answer["images"]] == [str(blurred["photo"]), str(blurred["slice16"])]
    photo, grey = answer["images"]
    assert photo["kernel"]["blur"] == "motion" and photo["kernel"]["kernel_size"] == 9
    assert abs((photo["kernel"]["angle"] - 30 + 90) % 180 - 90) <= 5 and 0 <= photo["kernel"]["confidence"] <= 1
    assert set(photo["outputs"]) == {"tv", "input"} and set(photo["ms"]) == {"tv", "input"} and photo["noise"] > 0
    tv = Image.open(photo["outputs"]["tv"])
    assert tv.mode == "RGB" and tv.size == Image.open(blurred["photo"]).size and photo["colour"] == "each channel restored"
    means = np.asarray(tv, np.float64).mean((0, 1)) / np.asarray(Image.open(blurred["photo"]), np.float64).mean((0, 1))
    assert np.abs(means - 1).max() < 0.01  # no colour shift
    g = Image.open(grey["outputs"]["tv"])
    assert g.mode.startswith("I") and g.size == Image.open(blurred["slice16"]).size and grey["colour"] == "grey"
    assert Path(grey["outputs"]["tv"]).name == "slice16__tv.png"


def test_restore_takes_a_kernel_a_psf_file_and_a_noise_level(blurred, tmp_path, capsys):
    psf = np.zeros((15, 15), np.uint8)
    psf[7, 3:12] = 255
    Image.fromarray(psf).save(tmp_path / "psf.png")
    for kernel, expected in (("motion:9:30", {"blur": "motion", "kernel_size": 9, "angle": 30.0, "confidence": None}),
                             ("defocus:3", {"blur": "defocus", "kernel_size": 7, "radius": 3.0, "angle": None}),
                             (str(tmp_path / "psf.png"), {"file": str(tmp_path / "psf.png")})):  # fmt: skip
        assert cli(["restore", str(blurred["slice16"]), "--out", str(tmp_path), "--methods", "tv", "--kernel", kernel,
                    "--noise", "0.01", "--format", "json", "--quiet"]) == 0  # fmt: skip
        answer = json.loads(capsys.readouterr().out)["images"][0]
        assert expected.items() <= answer["kernel"].items() and answer["noise"] == 0.01


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{notes}"], "not a readable image"),
        (["{empty}"], "the file is empty"),
        (["{black}"], "flat"),
        (["{dot}"], "at least 16 pixels"),
        (["{photo}", "--kernel", "{zero_psf}"], "all zeros"),
        (["{photo}", "--kernel", "motion:8:20"], "odd"),
        (["{photo}", "--kernel", "motion:9:20:wobbly"], "kernel style"),
        (["{photo}", "--kernel", "defocus:0"], "defocus radius must be a number in [1, 15], got 0"),
        (["{photo}", "--kernel", "defocus:-3"], "defocus radius must be a number in [1, 15], got -3"),
        (["{photo}", "--noise", "-1"], "between 0 and 1"),
        (["{photo}", "--methods", "magic"], "unknown method magic"),
        (["/nonexistent.png"], "No such file"),
        (["{photo}", "{small}", "--kernel", "motion:31:0"], "larger than"),  # the second image: nothing written for the first
        (["{photo}", "--device", "cuda:7"], "not available"),
    ],
    ids=["not-an-image", "empty", "all-zero", "1x1", "zero-psf", "even-kernel", "bad-style", "defocus-0", "defocus-negative",
         "negative-noise", "bad-method",
         "missing-file", "kernel-larger-than-a-later-image", "no-such-device"],
)
def test_restore_refuses_bad_input_with_a_message_and_status_2(blurred, tmp_path, capsys, argv, message):
    args = [a.format(**{k: str(v) for k, v in blurred.items()}) for a in argv]
    assert cli(["restore", *args, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == "" and captured.err.startswith("restore: ")
    assert not (tmp_path / "out").exists()  # nothing written before every input was checked


def test_a_picture_over_the_pixel_limit_is_refused_naming_the_limit(tmp_path):
    Image.fromarray(np.zeros((1100, 1000), np.uint8) + 9).save(tmp_path / "big.png")
    with pytest.raises(RestoreError, match="at most 1,048,576"):
        read_picture(tmp_path / "big.png")


def test_restore_runs_as_a_command_with_progress_on_stderr(blurred, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recon_demo", "restore", str(blurred["slice16"]), "--out", str(tmp_path),
                           "--methods", "tv"], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{blurred['slice16']}: motion") and "slice16.png" in proc.stderr
