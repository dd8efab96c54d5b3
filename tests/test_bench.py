"""The bench in its quick mode (what CI runs): every figure of the JSON is there; nothing about speed is asserted."""

from __future__ import annotations

import json

import pytest
import torch

from recon_demo import bench
from recon_demo.__main__ import main as cli
from recon_demo.bench import APP_KEYS
from recon_demo.models import list_models

KEYS = {"engine_all_ms", "lecture_loop_all_ms", "speedup", "sgemm_gflops", "efficiency", "per_model", "device", *APP_KEYS}


def test_quick_bench_reports_every_figure(capsys):
    assert cli(["bench", "--quick", "--repeats", "1", "--format", "json"]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out)  # stdout holds the JSON alone; the progress went to stderr
    assert printed.err.splitlines()[0] == "bench: measuring…"
    parts = len(list_models()) + 7  # SGEMM, the seven, the unrolled network, TV, restore, the loss study, a step, CT
    assert printed.err.splitlines()[-1].startswith(f"bench: measuring: {parts}/{parts} in")
    assert KEYS <= set(report) and report["device"] == "cpu" and report["quick"]
    assert list(report["per_model"]) == list_models()
    assert all({"ms", "lecture_ms", "bf16_ms", "bf16_ratio", "app_precision", "gflop", "max_abs_diff"} <= set(m)
               for m in report["per_model"].values())  # fmt: skip
    if not report["bf16_native"]:  # an AVX2-only CPU: bf16 untimed, and the app runs every network in float32
        assert all(m["bf16_ms"] is None and m["bf16_ratio"] is None and m["app_precision"] == "fp32" for m in report["per_model"].values())
        assert "not timed here" in report["bf16_note"]
    assert report["max_abs_diff"] < 1e-4  # the engine's answers are the plain loop's
    assert 88 < report["gflop_all"] < 90  # the seven architectures' FLOPs at 256² (the issue's 89.5 with its counter)
    unrolled = report["unrolled"]  # the network that knows K, with the lecture's K, beside the UNet of the same run
    assert unrolled["ms"] > 0 and unrolled["unet_ms"] > 0  # the median of the rounds' ratios, near the medians' ratio
    assert 0.5 < unrolled["ratio_to_unet"] / (unrolled["ms"] / unrolled["unet_ms"]) < 2
    assert 15 < unrolled["gflop"] < 19  # five denoisers and six data steps, below the UNet's 18.4
    tv = report["tv"]  # TV as the app runs it, handed the same K, beside the same UNet
    assert tv["ms"] > 0 and tv["unet_ms"] == unrolled["unet_ms"] and 0.5 < tv["ratio_to_unet"] / (tv["ms"] / tv["unet_ms"]) < 2
    restore = report["restore"]  # one 256² photo: the estimate and the default methods
    assert restore["size"] == [256, 256] and restore["ms"] > restore["estimate_ms"] > 0
    assert set(restore["methods_ms"]) | set(restore["errors"]) == {"unrolled", "unet", "tv"}
    assert report["sgemm_gflops"] > 0 and report["efficiency"] > 0 and report["train_steps_per_s"] > 0
    assert all(report[key] is None for key in APP_KEYS)  # the app is measured in full mode only
    ct = report["ct"]  # the matrix-free projector beside the stored matrix at the lecture's geometry, alone at 512² × 180
    lecture, scanner = ct["projector"]
    assert (lecture["size"], lecture["angles"], scanner["size"], scanner["angles"]) == (256, 60, 512, 180)
    assert lecture["forward_ms"] > 0 and lecture["sparse_adjoint_ms"] > 0 and lecture["forward_ratio_to_sparse"] > 0
    assert lecture["sparse_mb"] > 100 * lecture["operator_kb"] / 1024  # 150 MB of matrices against 2 kB of tables
    assert "sparse_forward_ms" not in scanner and scanner["adjoint_ms"] > 0 and ct["fbp_512_180_ms"] > 0
    assert ct["unrolled_s"] is None and ct["peak_rss_mb"] is None  # the fresh process at 512² runs in full mode only
    step = report["train_step_ms"]
    assert set(step) == {"fp32", "bf16"} and step["fp32"] > 0
    if report["amp_supported"]:  # a CPU with bf16 instructions (or a GPU): both measured
        assert step["bf16"] > 0 and report["amp_speedup"] == round(step["fp32"] / step["bf16"], 2)
    else:  # emulated bf16 is not worth timing: the bench says why instead
        assert step["bf16"] is None and report["amp_speedup"] is None and "no bf16" in report["amp_note"]


def test_without_native_bf16_the_bench_says_amp_is_not_supported(monkeypatch):
    from recon_demo.bench import amp_section

    monkeypatch.setenv("RECON_CPU_BF16", "0")
    out = amp_section(quick=True, device="cpu")
    assert out["train_step_ms"]["bf16"] is None and out["amp_speedup"] is None and out["amp_note"] == "RECON_CPU_BF16=0"


def test_where_bf16_is_native_each_model_is_timed_in_both_and_the_app_precision_follows_the_manifest(monkeypatch, tmp_path):
    from recon_demo.checkpoints import Manifest, ManifestEntry, save_checkpoint
    from recon_demo.models import create_model
    from recon_demo.serving.engine import Engine

    monkeypatch.setenv("RECON_CPU_BF16", "1")  # as on a CPU with AVX512-BF16 (emulated here: slow, so one small model)
    monkeypatch.setattr(bench, "list_models", lambda: ["cnn", "rescnn"])
    monkeypatch.setattr(bench, "handed_k_section", lambda *args, **kwargs: {})
    manifest = Manifest([], tmp_path)
    for name, change in (("cnn", 0.004), ("rescnn", 0.2)):
        path = tmp_path / f"{name}.safetensors"
        manifest.upsert(ManifestEntry(name, "course", path.name, save_checkpoint(create_model(name), path), bf16={"psnr_change_db": change}))
    r = bench.models_section(Engine("cpu", manifest=Manifest.load(tmp_path)), repeats=1)
    assert r["bf16_native"] and r["bf16_note"] == "RECON_CPU_BF16=1"
    for m in r["per_model"].values():
        assert m["bf16_ms"] > 0 and m["bf16_ratio"] == pytest.approx(m["ms"] / m["bf16_ms"], rel=0.05, abs=0.01)
    assert {n: m["app_precision"] for n, m in r["per_model"].items()} == {"cnn": "bf16", "rescnn": "fp32"}  # 0.2 dB: float32


def test_bench_refuses_bad_flags(capsys):
    assert cli(["bench", "--repeats", "0"]) == 2
    assert "--repeats must be in [1, 1000]" in capsys.readouterr().err


@pytest.mark.slow
def test_the_app_section_splits_the_round_trip_and_measures_the_idle_server(trained_weights):
    from recon_demo.bench import app_section

    r = app_section(trained_weights, repeats=2, device=torch.device("cpu"), with_classroom=False)
    assert set(r) == set(APP_KEYS) - {"classroom"}
    assert 0 < r["app_start_s"] < r["cold_start_s"] and r["import_floor_s"] > 0
    assert 0 < r["first_request_ms"] < r["cold_start_s"] * 1000
    split = r["roundtrip_split_ms"]
    assert set(split) == {"metrics_and_measurement", "png_encoding", "transport_and_queue"}
    assert r["roundtrip_overhead_ms"] == pytest.approx(r["roundtrip_ms"] - r["roundtrip_compute_ms"], abs=0.2)
    assert sum(split.values()) == pytest.approx(r["roundtrip_overhead_ms"], abs=0.5)  # the parts make the whole
    assert 0 <= r["idle_cpu_fraction"] < 0.5 and r["idle_wakeups_per_s"] > 0


@pytest.mark.slow
def test_the_gpu_script_runs_on_the_cpu_and_writes_one_json(tmp_path):
    import subprocess
    from pathlib import Path

    out = tmp_path / "gpu.json"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", "benchmarks/gpu.sh", "--cpu", str(out)], cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["gpu"] is None and report["targets"] is None
    assert report["bench"]["device"] == "cpu" and list(report["bench"]["per_model"]) == list_models()
    tests = report["cuda_tests"]
    assert tests["failures"] == tests["errors"] == 0 and tests["exit_status"] in (0, 5)
    if not torch.cuda.is_available():
        assert tests["tests"] == tests["skipped"] > 0  # the CUDA tests were collected and skipped themselves
    assert "gpu.sh: " in done.stdout


def test_the_methods_handed_k_are_timed_in_turn_with_the_unet():
    """Round after round, each call once, so that a drifting machine speed moves the UNet's time and theirs alike."""
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("unet", "unrolled", "tv")}
    times = bench._interleaved_ms(calls, 3, torch.device("cpu"))
    assert order == ["unet", "unrolled", "tv"] * 4  # one warm-up each, then three rounds
    assert {name: len(t) for name, t in times.items()} == {"unet": 3, "unrolled": 3, "tv": 3}
