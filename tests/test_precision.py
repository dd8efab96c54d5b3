"""bf16 at inference: which layers stay float32, and ``evaluate --bf16-check`` deciding which checkpoints may run so."""

from __future__ import annotations

import json

import pytest
import torch

from recon_demo.__main__ import main as cli
from recon_demo.checkpoints import Manifest
from recon_demo.evaluate.precision import bf16_check, format_bf16_check
from recon_demo.models import create_model, list_models
from recon_demo.serving.engine import BF16_MAX_PSNR_CHANGE_DB, Engine, keep_float32


def test_the_unet_familys_output_convolution_stays_float32_under_autocast():
    torch.manual_seed(0)
    for name in ("unet", "resunet", "attunet", "unetpp"):
        model = create_model(name).eval()
        names = [n for n, _ in model.named_modules()]
        keep_float32(keep_float32(model))  # once is enough; a second call changes nothing
        assert [n for n, _ in model.named_modules()] == names  # Inspect's layer names stay
        seen = {}
        model.out_conv.register_forward_hook(lambda m, i, o, seen=seen: seen.update(inside=i[0].dtype, out=o.dtype))
        x = torch.rand(1, 1, 32, 32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert seen == {"inside": torch.bfloat16, "out": torch.float32} and out.dtype == torch.float32, name
        with torch.inference_mode():  # outside autocast the wrapped layer computes what it did
            torch.testing.assert_close(model.out_conv(torch.ones(1, 32, 4, 4)), torch.nn.functional.conv2d(
                torch.ones(1, 32, 4, 4), model.out_conv.weight, model.out_conv.bias))  # fmt: skip
    assert all(not hasattr(create_model(n), "float32_layers") for n in ("cnn", "rescnn", "vit"))
    import copy

    twin = copy.deepcopy(model)  # Inspect copies a model: the copy's kept layer runs the copy's own weights
    with torch.no_grad():
        twin.out_conv.bias += 1.0
        x = torch.rand(1, 32, 4, 4)
        assert torch.allclose(twin.out_conv(x), model.out_conv(x) + 1.0)


@pytest.fixture
def small_manifest(tmp_path):
    """Two shipped deblurring checkpoints and a CT one, copied (``--write`` saves this manifest, not the shipped one)."""
    import shutil
    from dataclasses import replace

    shipped = Manifest.load()
    entries = [shipped.find("cnn", "course"), shipped.find("unrolled", "general"), shipped.find("unrolled", "ct-any")]
    for entry in entries:
        shutil.copy(entry.path(shipped.weights_dir), tmp_path / entry.file)
    manifest = Manifest([replace(e, bf16={}) for e in entries], tmp_path)
    manifest.save()
    return manifest


def test_the_bf16_check_measures_each_deblurring_checkpoint_and_records_it(small_manifest, monkeypatch):
    rows = bf16_check(small_manifest, device="cpu", limit=1, size=64, write=True)
    assert [(r["model"], r["regime"]) for r in rows] == [("cnn", "course"), ("unrolled", "general")]  # CT: not checked
    for r in rows:
        assert r["psnr_change_db"] == pytest.approx(r["bf16_psnr"] - r["fp32_psnr"], abs=2e-3) and r["psnr_change_db"] != 0
        assert r["images"] == ["astronaut"] and r["runs_bf16"] == (abs(r["psnr_change_db"]) <= BF16_MAX_PSNR_CHANGE_DB)
    saved = Manifest.load(small_manifest.weights_dir)
    assert [e.bf16.get("psnr_change_db") for e in saved.entries] == [rows[0]["psnr_change_db"], rows[1]["psnr_change_db"], None]
    monkeypatch.setenv("RECON_CPU_BF16", "1")  # where bf16 is native the engine follows the record
    engine = Engine("cpu", manifest=saved)
    assert [engine.precision_name(engine.model(r["model"], regime=r["regime"])) == "bf16" for r in rows] == [r["runs_bf16"] for r in rows]
    text = format_bf16_check(rows)
    assert "1 held-out images" in text and "cnn" in text and ("yes" in text or "no: it moves PSNR by more than 0.05 dB" in text)


def test_the_bf16_check_on_the_command_line(capsys, monkeypatch):
    import recon_demo.cli.evaluate as evaluate

    asked = []
    row = {"model": "cnn", "regime": "course", "psnr_change_db": 0.01, "worst_image_change_db": 0.02, "fp32_psnr": 30.0,
           "bf16_psnr": 30.01, "images": ["a"], "setting": "s", "emulated": True, "command": "c", "runs_bf16": True}
    monkeypatch.setattr(evaluate, "bf16_check", lambda **kw: asked.append(kw) or [row])
    assert cli(["evaluate", "--bf16-check", "--write", "--limit", "2", "--format", "json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == [row]
    assert (asked[0]["limit"], asked[0]["write"]) == (2, True)
    assert cli(["evaluate", "--bf16-check", "--quiet"]) == 0 and asked[1]["write"] is False
    assert "emulated on this CPU" in capsys.readouterr().out  # the table says how bf16 ran
    assert cli(["evaluate", "--write", "--models", "cnn"]) == 2
    assert "--write goes with --bf16-check" in capsys.readouterr().err


def test_the_shipped_manifest_says_which_checkpoints_run_in_bf16():
    """Every shipped deblurring checkpoint has its change measured; those beyond 0.05 dB stay float32 (the UNet family
    measured without its output layer kept float32 would not pass; with it, the engine decides by the record)."""
    shipped = [e for e in Manifest.load().entries if e.task == "deblur"]
    assert {e.model for e in shipped} >= set(list_models())
    for entry in shipped:
        change = entry.bf16.get("psnr_change_db")
        assert isinstance(change, float) and abs(change) < 0.5 and entry.bf16["images"], entry.model
