from __future__ import annotations

import json
import pickle

import pytest
import torch

from recon_demo.checkpoints import CheckpointError, Manifest, load_checkpoint, read_state_dict, save_checkpoint
from recon_demo.models import create_model


def test_safetensors_round_trip(tmp_path):
    model = create_model("cnn")
    sha = save_checkpoint(model, tmp_path / "cnn.safetensors")
    loaded = load_checkpoint("cnn", tmp_path / "cnn.safetensors")
    assert len(sha) == 64
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_pth_with_a_state_dict_wrapper_loads(tmp_path):
    model = create_model("rescnn")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    loaded = load_checkpoint("rescnn", tmp_path / "wrapped.pth")  # the weights inside the wrapper, not a fresh init
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_mismatched_checkpoint_names_the_architecture_and_keys(tmp_path):
    torch.save(create_model("cnn", n_filters=16).state_dict(), tmp_path / "small.pth")
    with pytest.raises(
        CheckpointError,
        match=r"does not fit SimpleCNN \(cnn\).*wrong shapes .*conv1.weight \(16, 1, 3, 3\) \(expected \(32, 1, 3, 3\)\)",
    ):
        load_checkpoint("cnn", tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match=r"UNet \(unet\): missing keys .*unexpected keys conv1.bias"):
        load_checkpoint("unet", tmp_path / "small.pth")


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch ran_code_marker",))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"conv1.weight": _RunsCode()}))
    with pytest.raises(CheckpointError, match="not a tensor checkpoint that can be read safely"):
        read_state_dict(tmp_path / "evil.pth")
    assert not (tmp_path / "ran_code_marker").exists()


def test_non_tensor_contents_and_garbage_are_refused(tmp_path):
    torch.save({"conv1.weight": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="state dict"):
        read_state_dict(tmp_path / "list.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="can be read safely"):
        read_state_dict(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        read_state_dict(tmp_path / "absent.pth")


def test_oversized_files_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr("recon_demo.checkpoints.MAX_CHECKPOINT_BYTES", 1000)
    save_checkpoint(create_model("cnn"), tmp_path / "cnn.safetensors")
    with pytest.raises(CheckpointError, match="limited to"):
        read_state_dict(tmp_path / "cnn.safetensors")


def _manifest(tmp_path, sha: str) -> Manifest:
    entry = {
        "model": "cnn",
        "regime": "course",
        "file": "cnn_course.safetensors",
        "sha256": sha,
        "kwargs": {},
        "operator": {"blur": "motion", "kernel_size": 9, "angle": 20.0, "style": "ippy"},
        "noise": {"kind": "relative", "level": 0.01},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "checkpoints": [entry]}))
    return Manifest.load(tmp_path)


def test_manifest_finds_and_verifies_shipped_weights(tmp_path):
    sha = save_checkpoint(create_model("cnn"), tmp_path / "cnn_course.safetensors")
    manifest = _manifest(tmp_path, sha)
    entry = manifest.find("cnn", "course")
    assert entry.trained_for() == "motion 9 @ 20°, noise 0.01"
    assert manifest.find("cnn", "general") is None
    manifest.load_model("cnn", "course")
    with pytest.raises(CheckpointError, match="no shipped general checkpoint for cnn"):
        manifest.load_model("cnn", "general")
    with pytest.raises(ValueError, match="unknown regime"):
        manifest.find("cnn", "mayo")


def test_manifest_refuses_a_file_whose_sha256_changed(tmp_path):
    save_checkpoint(create_model("cnn"), tmp_path / "cnn_course.safetensors")
    with pytest.raises(CheckpointError, match="sha256"):
        _manifest(tmp_path, "0" * 64).load_model("cnn")


def test_the_repository_manifest_is_well_formed():
    manifest = Manifest.load()
    for entry in manifest.entries:
        assert entry.path(manifest.weights_dir).is_file(), entry.file


def test_what_a_checkpoint_covers_and_how_a_badge_says_it():
    from recon_demo.checkpoints import ManifestEntry
    from recon_demo.physics.blur import LECTURE_OPERATOR, OperatorSpec

    handed = ManifestEntry("unrolled", "general", "f", "0", operator={"blurs": ["motion", "gaussian"]},
                           noise={"kind": "relative", "range": [0, 0.05]})  # fmt: skip
    far = OperatorSpec.parse("motion:31:77:centered")  # no range holds it: a network handed K is not tied to a kernel
    assert handed.covers(far, 0.05, given_k=True) and not handed.covers(far, 0.06, given_k=True)
    assert not handed.covers(far, 0.01)  # as an end-to-end network the kernel size is out of its default range
    no_range = ManifestEntry("unrolled", "general", "f", "0", noise={"kind": "relative", "level": 0.01})
    assert no_range.covers(far, 0.2, given_k=True)  # a fixed noise level records no range: any level is its guess
    newer = ManifestEntry("cnn", "course", "f", "0", operator={"blur": "bokeh", "kernel_size": 9, "blades": 6},
                          noise={"kind": "relative", "level": 0.01})  # fmt: skip  (a blur this version does not know)
    assert newer.trained_for() == "blur bokeh, kernel_size 9, blades 6, noise 0.01"
    defocused = ManifestEntry("cnn", "course", "f", "0", operator=OperatorSpec.parse("defocus:3").to_dict(),
                              noise={"kind": "relative", "level": 0.01})  # fmt: skip
    assert defocused.trained_for() == "defocus, radius 3 px, noise 0.01"
    assert ManifestEntry("cnn", "course", "f", "0", operator=LECTURE_OPERATOR.to_dict(), noise={"level": 0.01}).covers(
        LECTURE_OPERATOR, 0.01)
