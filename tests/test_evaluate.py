from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recon_demo.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reproduces_the_lecture_checkpoints_golden_numbers(course_dir, golden, golden_images):
    """The issue's acceptance command, run as a user runs it."""
    models = f"cnn={course_dir / 'CNN.pth'},rescnn={course_dir / 'ResCNN.pth'}"
    cmd = [sys.executable, "-m", "recon_demo", "evaluate", "--models", models, "--baselines", "input",
           "--images", str(golden_images), "--lpips", "--format", "json"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["protocol"]["images"] == golden["protocol"]["images"]
    for image, rows in golden["per_image"].items():
        for name, expected in rows.items():
            got = result["per_image"][image][name]
            assert got["psnr"] == pytest.approx(expected["psnr"], abs=1e-3), (image, name)
            assert got["ssim"] == pytest.approx(expected["ssim"], abs=1e-4), (image, name)
            assert got["lpips"] == pytest.approx(expected["lpips"], abs=1e-4), (image, name)
    for name, expected in golden["mean"].items():
        for metric in ("psnr", "ssim", "lpips"):
            assert result["results"][name][metric] == pytest.approx(expected[metric], abs=1e-3 if metric == "psnr" else 1e-4)
        assert result["results"][name]["n"] == 3


def test_table_mirrors_the_lecture(course_dir, golden_images, capsys):
    code = main(["evaluate", "--models", f"cnn={course_dir / 'CNN.pth'}", "--images", str(golden_images), "--limit", "1"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "1 images, motion 9 @ 20° (ippy), noise 0.01, seed 123"
    assert re.fullmatch(r"CNN \| MSE: \d\.\d{6} \| PSNR: \d+\.\d{3} dB \| SSIM: \d\.\d{4}", lines[1])


def test_baselines_on_the_default_held_out_images(capsys):
    code = main(
        [
            "evaluate",
            "--baselines",
            "input,wiener",
            "--limit",
            "2",
            "--operator",
            "gaussian",
            "--kernel-size",
            "7",
            "--variance",
            "2",
            "--format",
            "json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"]["images"] == ["astronaut", "camera"]
    assert result["protocol"]["operator"] == "gaussian" and result["protocol"]["kernel_size"] == 7
    assert result["results"]["input"]["n"] == 2 and result["results"]["input"]["lpips"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "resnet=x.pth"], "unknown model 'resnet'"),
        (["--models", "cnn=/nonexistent/CNN.pth"], "no checkpoint file"),
        (["--baselines", "input", "--kernel-size", "8"], "kernel size must be odd, got 8"),
        (["--baselines", "input", "--noise", "nan"], "--noise"),
        (["--baselines", "bm3d"], "unknown baseline"),
        (["--baselines", "input", "--images", "/nonexistent"], "no folder"),
        ([], "nothing to evaluate"),
        (["--baselines", "input", "--size", "100000"], "--size must be an integer in [8, 2048]"),
        (["--baselines", "input", "--angle", "inf"], "angle must be a number in [-360, 360], got inf"),
        (["--baselines", "input", "--limit", "0"], "--limit must be an integer in [1, "),
    ],
)
def test_bad_arguments_give_a_clear_message(argv, message, capsys):
    assert main(["evaluate", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_model_without_shipped_weights_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("recon_demo.checkpoints.WEIGHTS_DIR", tmp_path)  # a weights folder with no manifest
    assert main(["evaluate", "--models", "cnn"]) == 2
    assert "no shipped course checkpoint for cnn yet; pass cnn=PATH" in capsys.readouterr().err


def test_off_course_runs_the_five_settings_of_the_general_check(capsys):
    from recon_demo.evaluate import OFF_COURSE
    from recon_demo.training import GENERAL_RANGES

    for op, noise in OFF_COURSE:  # inside the general regime's ranges, away from the lecture's setting
        assert op.blur in GENERAL_RANGES.blurs and GENERAL_RANGES.noise[0] <= noise <= GENERAL_RANGES.noise[1]
        assert GENERAL_RANGES.kernel_size[0] <= op.kernel_size <= GENERAL_RANGES.kernel_size[1]
        assert (op.blur, op.kernel_size, op.angle, noise) != ("motion", 9, 20.0, 0.01)
    assert main(["evaluate", "--baselines", "input,wiener", "--limit", "1", "--off-course", "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)["off_course"]
    assert [r["protocol"]["noise"] for r in results] == [noise for _, noise in OFF_COURSE]
    assert [r["protocol"]["kernel_size"] for r in results] == [op.kernel_size for op, _ in OFF_COURSE]
    assert all(set(r["results"]) == {"input", "wiener"} for r in results)


@pytest.fixture
def cnn_only_weights(tmp_path, monkeypatch):
    """A weights folder shipping the course CNN alone."""
    import shutil

    from recon_demo.checkpoints import WEIGHTS_DIR

    manifest = json.loads((WEIGHTS_DIR / "manifest.json").read_text())
    manifest["checkpoints"] = [e for e in manifest["checkpoints"] if (e["model"], e["regime"]) == ("cnn", "course")]
    shutil.copy(WEIGHTS_DIR / manifest["checkpoints"][0]["file"], tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr("recon_demo.checkpoints.WEIGHTS_DIR", tmp_path)
    return tmp_path


def test_all_selects_the_shipped_checkpoints_of_the_regime(cnn_only_weights, capsys):
    argv = ["evaluate", "--models", "all", "--baselines", "input", "--limit", "2"]
    assert main([*argv, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["results"]) == ["cnn", "input"]
    assert result["protocol"]["checkpoints"] == {"cnn": "shipped (course)"}
    assert result["notes"] == ["no course weights yet, so left out of 'all': ResCNN, UNet, Residual UNet, "
                               "Attention UNet, UNet++, ViT"]  # fmt: skip
    assert result["results"]["cnn"]["params"] == 9857 and result["results"]["input"]["params"] is None
    assert result["results"]["cnn"]["ms"] > 0 and result["results"]["input"]["ms"] > 0
    assert result["results"]["cnn"]["psnr"] > result["results"]["input"]["psnr"]

    assert main([*argv, "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "2 images, motion 9 @ 20° (ippy), noise 0.01, seed 123, 256² on cpu"
    assert lines[2] == "| model | MSE | PSNR | SSIM | LPIPS | parameters | ms per 256² |"
    assert re.fullmatch(r"\| CNN \| \d\.\d{6} \| \d+\.\d{3} dB \| \d\.\d{4} \| — \| 9,857 \| \d+\.\d \|", lines[4])
    assert re.fullmatch(r"\| Measurement \| .* \|  \| \d+\.\d \|", lines[5])

    assert main(["evaluate", "--models", "all", "--regime", "general"]) == 2
    assert "no general weights are shipped yet, so 'all' selects no model" in capsys.readouterr().err


def test_off_course_markdown_gives_one_row_per_setting_with_the_best_in_bold(capsys):
    from recon_demo.evaluate import OFF_COURSE

    assert main(["evaluate", "--baselines", "input,wiener", "--limit", "1", "--off-course", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2] == "| setting | Measurement | Wiener |"
    rows = lines[4:]
    assert [row.split(" | ")[0] for row in rows] == [f"| {op.describe()}, noise {noise:g}" for op, noise in OFF_COURSE]
    assert all(row.count("**") == 2 and re.fullmatch(r"\| .* \| \**\d+\.\d\d\** \| \**\d+\.\d\d\** \|", row) for row in rows)
