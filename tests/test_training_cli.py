"""The ``train`` command: flags to a run, its checkpoint and manifest entry, and its refusals."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from recon_demo.__main__ import main as cli
from recon_demo.checkpoints import Manifest, load_checkpoint, read_state_dict, sha256_file
from recon_demo.physics.blur import LECTURE_OPERATOR
from recon_demo.training import (
    TrainConfig,
    Trainer,
    TrainingError,
)
from tests.test_training import SMALL, same_weights, weights

# A run small enough for CI: the lecture's CNN on 32² crops of a few images.


def test_train_cli_writes_a_loadable_checkpoint_and_a_manifest_entry(tmp_path, capsys):
    out = tmp_path / "weights" / "loss_study_cnn_course.safetensors"
    args = ["train", "--model", "loss_study_cnn", "--model-kwargs", '{"n_filters": 8}', "--steps", "30", "--batch-size", "2",
            "--patch-size", "32", "--phantoms", "2", "--max-images", "4", "--eval-every", "10", "--val-size", "64",
            "--out", str(out)]  # fmt: skip
    assert cli(args) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "30 steps" in printed and "held-out" in printed
    assert captured.err.splitlines()[-1].startswith("train: loss_study_cnn, steps: 30/30 in")  # progress on stderr
    manifest = Manifest.load(out.parent)
    entry = manifest.find("loss_study_cnn", "course")
    assert entry is not None and entry.file == out.name and entry.sha256 == sha256_file(out)
    assert entry.kwargs == {"n_filters": 8} and entry.recipe["steps"] == 30 and entry.recipe["loss"] == "mse"
    assert entry.operator == LECTURE_OPERATOR.to_dict() and entry.noise == {"kind": "relative", "level": 0.01}
    assert entry.compute["device"] == "cpu" and 0 <= entry.compute["wall_s"] <= entry.compute["cli_wall_s"] + 0.1  # rounded to 0.1 s
    assert entry.data["held_out"] and entry.data["images"] == 4
    held = entry.metrics
    assert len(held["images"]) == 6 and held["model"]["n"] == 6 and np.isfinite(held["model"]["psnr"])
    assert held["measurement"]["psnr"] == pytest.approx(24.848, abs=1e-3)  # the README's measurement row
    assert held["command"].startswith("python -m recon_demo evaluate --models loss_study_cnn=")
    # the engine and evaluate load it: the kwargs travel in the file's metadata
    model = manifest.load_model("loss_study_cnn", "course")
    assert model.conv1.out_channels == 8
    assert load_checkpoint("loss_study_cnn", out).conv1.out_channels == 8
    # a second run of the same model and regime replaces the entry rather than adding one
    assert cli([*args[:5], "--steps", "2", *args[7:], "--no-manifest"]) == 0
    assert cli([*args[:5], "--steps", "3", *args[7:]]) == 0
    assert len(Manifest.load(out.parent).entries) == 1 and Manifest.load(out.parent).entries[0].recipe["steps"] == 3
    assert json.loads((out.parent / "manifest.json").read_text())["version"] == 1


def test_train_cli_general_regime_records_its_ranges(tmp_path):
    out = tmp_path / "cnn_general.safetensors"
    assert cli(["train", "--model", "cnn", "--regime", "general", "--steps", "3", "--batch-size", "2", "--patch-size", "32",
                "--phantoms", "2", "--max-images", "2", "--val-size", "64", "--kernel-sizes", "3,7", "--ema", "0.99",
                "--out", str(out)]) == 0  # fmt: skip
    entry = Manifest.load(tmp_path).find("cnn", "general")
    assert entry.recipe["ema"] == 0.99
    assert entry.operator["kernel_size"] == [3, 7] and entry.noise == {"kind": "relative", "range": [0.0, 0.05]}
    assert entry.trained_for() == "random operators (general model)"


def test_init_starts_from_a_checkpoint_and_the_manifest_names_it(tmp_path):
    first = tmp_path / "cnn_course.safetensors"
    assert cli(["train", "--model", "cnn", "--steps", "3", "--batch-size", "2", "--patch-size", "32", "--phantoms", "2",
                "--max-images", "2", "--val-size", "64", "--out", str(first), "--no-manifest"]) == 0  # fmt: skip
    cfg = TrainConfig(**{**SMALL, "steps": 1}, init=str(first))
    assert same_weights(weights(Trainer(cfg).model), read_state_dict(first))  # before any step: the file's weights
    assert not same_weights(weights(Trainer(replace(cfg, init=None)).model), read_state_dict(first))
    out = tmp_path / "cnn_general.safetensors"
    assert cli(["train", "--model", "cnn", "--regime", "general", "--init", str(first), "--steps", "2", "--batch-size", "2",
                "--patch-size", "32", "--phantoms", "2", "--max-images", "2", "--val-size", "64", "--out", str(out)]) == 0  # fmt: skip
    recipe = Manifest.load(tmp_path).find("cnn", "general").recipe
    assert recipe["init"] == first.name and recipe["init_sha256"] == sha256_file(first)
    with pytest.raises(TrainingError, match="cannot start from .* wrong shapes"):  # another architecture's are refused
        Trainer(TrainConfig(**{**SMALL, "model": "loss_study_cnn"}, init=str(first)))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--init", "/no/such/weights.safetensors"], "no checkpoint to start from"),
        (["--steps", "0"], "steps must be an integer"),
        (["--model-kwargs", "{bad"], "--model-kwargs is not JSON"),
        (["--loss", "mse + "], "cannot read the loss term"),
        (["--regime", "general", "--angles", "10"], "the angle range is two numbers LOW,HIGH"),
        (["--out", "model.pth"], "--out must end in .safetensors"),
        (["--data", "/no/such/folder"], "no folder /no/such/folder"),
        (["--resume", "--out", "/tmp/never-trained-here.safetensors"], "nothing to resume"),
    ],
)
def test_train_cli_refuses_bad_flags_with_status_2(flags, message, capsys):
    assert cli(["train", "--model", "cnn", "--patch-size", "32", "--phantoms", "1", *flags]) == 2
    assert message in capsys.readouterr().err
