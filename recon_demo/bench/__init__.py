"""How fast the engine is, against a plain lecture-style loop and the machine (``python -m recon_demo bench``).

Everything is measured in one run, on the same 256² input:
- per model, the median of ``--repeats`` timed runs for the engine and for a plain lecture-style loop (each
  model built as in the lecture, fp32, NCHW, called one after another under ``torch.no_grad()``), the model's
  FLOPs (``torch.utils.flop_counter``), and the largest difference between their outputs; where bf16 is native,
  the engine under bf16 autocast too (``bf16_ms``, ``bf16_ratio``: how many times faster), else ``None`` and why
  (emulated bf16 is many times slower: not worth timing); and the precision the app runs it in (``app_precision``);
- the totals for all seven and their ratio (``speedup``); the unrolled network (knows K) and TV with the lecture's
  K, and their times as multiples of the UNet's (``unrolled.ratio_to_unet``, ``tv.ratio_to_unet``): the three
  timed in turn, round after round, each ratio the median of the rounds' (a shared CPU's speed drifts);
- ``restore`` on one 256² grey photo with real edges: the kernel's estimate and the default methods, end to end;
- the machine's limit: SGEMM throughput on the same run, and ``efficiency`` = (all seven's FLOPs ÷ the engine's
  time) ÷ SGEMM throughput;
- the app, on the same device: the import floor (a fresh interpreter importing torch and gradio), the cold start
  (``python app.py`` started until its first reconstruction is served through ``gradio_client``) and the app's
  own share of it (from the moment ``app.py`` logs that torch and gradio are imported); the round trip of ``/reconstruct`` for three models (a new noise
  seed each time, so nothing is cached), split by what the server reports (``server_ms``: the methods, the
  metrics and measurement, the PNGs) and the rest (transport and queue); the idle server's CPU from /proc over 20 s,
  15 s after the last request, no page open; and a classroom at once (``loadtest.classroom``: 30 clients × 5
  reconstructions + 3 trainings; p50/p95 of all requests and each client's own p95, throughput, peak memory), unless
  ``--no-classroom``;
- training: the loss study's steps per second and wall time;
- CT (``ct_bench``): the matrix-free projector against the stored matrix it replaced, FBP and the unrolled network
  at 512², 180 angles, and the peak memory of a reconstruction there.
Speed does not depend on weight values: the shipped checkpoints are used where they exist, randomly initialised
ones otherwise (the JSON says which). ``--quick`` (for CI, under a minute) repeats less, skips the app, and
trains a small study. Nothing is asserted here; the command (``cli.bench``) prints a table or, with ``--format
json``, the figures.
"""

from __future__ import annotations

import copy
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon_demo import images
from recon_demo.activations import count_flops
from recon_demo.bench import ct as ct_bench
from recon_demo.checkpoints import Manifest, ManifestEntry, save_checkpoint
from recon_demo.models import create_model, list_models
from recon_demo.physics.blur import LECTURE_OPERATOR
from recon_demo.physics.kernels import motion_kernel
from recon_demo.progress import Report, no_progress
from recon_demo.serving.engine import Engine, select_device
from recon_demo.serving.loadtest import classroom, idle_usage, start_app, stop_app
from recon_demo.serving.runtime import native_bf16

IDLE_SETTLE_S, IDLE_WINDOW_S = 15.0, 20.0  # the idle server: measured from /proc over 20 s, 15 s after the last request
ROUNDTRIP_MODELS = ("unet", "rescnn", "wiener")  # three models through the app, two networks and a baseline
APP_KEYS = ("import_floor_s", "cold_start_s", "app_start_s", "first_request_ms", "roundtrip_ms", "roundtrip_models", "roundtrip_compute_ms",
            "roundtrip_overhead_ms", "roundtrip_split_ms", "idle_cpu_fraction", "idle_wakeups_per_s", "classroom")  # None without the app


def _timed_ms(fn, device: torch.device) -> float:
    """One call of ``fn`` in ms (waiting for the GPU on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000


def _median_ms(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: weights in cache, oneDNN / cuDNN primitives chosen
    return statistics.median(_timed_ms(fn, device) for _ in range(repeats))


def sgemm_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Single-precision matrix-multiply throughput: the best of ``repeats`` n×n products."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = min(_median_ms(lambda: a @ b, 1, device) for _ in range(repeats))
    return 2 * n**3 / (best / 1000) / 1e9


BENCHED = (*list_models(), *list_models("beyond"))  # the seven, then the unrolled network (timed with the lecture's K)


def weights_dir(folder: Path) -> tuple[Path, str]:
    """The shipped weights when every architecture has them, else random checkpoints written to ``folder``."""
    shipped = Manifest.load()
    if all(shipped.find(name) for name in BENCHED):
        return shipped.weights_dir, "shipped"
    manifest = Manifest([], folder)
    torch.manual_seed(0)
    for name in BENCHED:
        path = folder / f"{name}.safetensors"
        manifest.upsert(ManifestEntry(name, "course", path.name, save_checkpoint(create_model(name), path)))
    return folder, "random (no shipped weights yet; speed does not depend on them)"


def models_section(engine: Engine, repeats: int, report=lambda name: None) -> dict:
    """Engine against the plain loop, model by model, with FLOPs and the outputs' agreement; ``report(name)``
    after each model."""
    torch.manual_seed(0)
    y = torch.rand(1, 1, 256, 256)
    per_model, max_diff = {}, 0.0
    native, note = native_bf16(engine.device.type)
    bf16 = Engine(engine.device, manifest=engine.manifest, precision="bf16") if native else None  # emulated: not timed
    app = Engine(engine.device, manifest=engine.manifest)  # as the app runs each one
    for name in list_models():
        plain = engine.manifest.load_model(name).to(engine.device).eval()  # the lecture's way: NCHW, fp32
        prepared = engine.model(name)
        x = y.to(engine.device)

        def lecture_call(model=plain, x=x):
            with torch.no_grad():
                return model(x)

        lecture_ms = _median_ms(lecture_call, repeats, engine.device)
        engine_ms = _median_ms(lambda model=prepared: engine.forward(model, y), repeats, engine.device)
        diff = float((engine.forward(prepared, y)[0] - lecture_call().clamp(0, 1).cpu()).abs().max())
        max_diff = max(max_diff, diff)
        bf16_ms = None
        if bf16 is not None:
            fast = bf16.model(name)
            bf16_ms = _median_ms(lambda model=fast: bf16.forward(model, y), repeats, engine.device)
        per_model[name] = {
            "ms": round(engine_ms, 1),
            "lecture_ms": round(lecture_ms, 1),
            "bf16_ms": bf16_ms and round(bf16_ms, 1),
            "bf16_ratio": bf16_ms and round(engine_ms / bf16_ms, 2),  # how many times faster bf16 ran
            "app_precision": app.precision_name(app.model(name)),
            "gflop": round(count_flops(plain) / 1e9, 2),
            "max_abs_diff": diff,
        }
        report(name)
    engine_all = sum(m["ms"] for m in per_model.values())
    lecture_all = sum(m["lecture_ms"] for m in per_model.values())
    return {
        **handed_k_section(engine, y, repeats, report),
        "engine_all_ms": round(engine_all, 1),
        "lecture_loop_all_ms": round(lecture_all, 1),
        "speedup": round(lecture_all / engine_all, 3),
        "gflop_all": round(sum(m["gflop"] for m in per_model.values()), 2),
        "max_abs_diff": max_diff,
        "bf16_native": native,
        "bf16_note": note if native else f"{note}: bf16 is not timed here, and the app runs every network in float32",
        "per_model": per_model,
    }


def handed_k_section(engine: Engine, y: torch.Tensor, repeats: int, report=lambda name: None) -> dict:
    """The methods handed the lecture's K, the unrolled network and TV, on the same 256² input, against the UNet:
    the three run in turn, ``repeats`` rounds, and each ratio is the median of the rounds' ratios, so that a
    machine that slows down or speeds up during the run (a shared CPU does, by 30 % and more) moves both."""
    unet, model = engine.model("unet"), engine.model("unrolled")
    K = LECTURE_OPERATOR.build()
    tv = engine.methods(baselines=["tv"])[0]  # TV as the app runs it, handed the same K
    calls = {"unet": lambda: engine.forward(unet, y), "unrolled": lambda: engine.forward(model, y, K), "tv": lambda: tv(y, K)}
    times = _interleaved_ms(calls, repeats, engine.device)
    flops = count_flops(copy.deepcopy(model).bind(K))  # a private copy: binding K changes how it is called
    report("unrolled")
    report("tv")

    def against_unet(name: str) -> dict:
        ratios = [t / u for t, u in zip(times[name], times["unet"])]
        return {"ms": round(statistics.median(times[name]), 1), "ratio_to_unet": round(statistics.median(ratios), 2)}

    unet_ms = round(statistics.median(times["unet"]), 1)
    precision = "bf16 denoisers" if engine.runs_bf16(model) else "fp32"
    return {"unrolled": {**against_unet("unrolled"), "gflop": round(flops / 1e9, 2), "unet_ms": unet_ms, "precision": precision},
            "tv": {**against_unet("tv"), "unet_ms": unet_ms}}  # fmt: skip


def _interleaved_ms(calls: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Each call's time in ms, ``repeats`` rounds of all the calls in turn (after one warm-up each)."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(_timed_ms(fn, device))
    return times


def autocast_section(engine: Engine, repeats: int) -> dict:
    """On CUDA: all seven with bf16 autocast, and the PSNR change it causes on a real image."""
    from recon_demo.images import load_example, protocol_tensor
    from recon_demo.metrics import psnr
    from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR
    from recon_demo.physics.noise import add_relative_noise

    x_true = protocol_tensor(load_example("camera"))
    y = add_relative_noise(LECTURE_OPERATOR.build().forward(x_true), LECTURE_NOISE, torch.Generator().manual_seed(0))
    out, worst = {}, 0.0
    for name in list_models():
        model = engine.model(name)

        def amp_call(model=model):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return engine.forward(model, y)

        out[name] = round(_median_ms(amp_call, repeats, engine.device), 2)
        worst = max(worst, abs(psnr(amp_call()[0], x_true) - psnr(engine.forward(model, y)[0], x_true)))
    return {"autocast_all_ms": round(sum(out.values()), 2), "autocast_per_model_ms": out, "autocast_max_psnr_change_db": worst}


def restore_section(engine: Engine, repeats: int) -> dict:
    """``restore`` as a person runs it on one 256² grey photo with real edges (camera, held out, blurred by motion
    11 @ 60°, δ 0.01): the estimate and the default methods (the unrolled network and TV handed the estimate with
    real edges, the general UNet), after one untimed run; the median of ``repeats`` (at least 3)."""
    from recon_demo.evaluate.blind import blur_with_border
    from recon_demo.lab.restore import DEFAULT_METHODS, Restorer
    from recon_demo.methods.estimate import estimate
    from recon_demo.picture import Picture

    scene = images.to_grayscale(images.load_example("camera"))
    _, y = blur_with_border(scene, motion_kernel(11, 60.0, "centered"), 256, 0.01, np.random.default_rng(0),
                            torch.Generator().manual_seed(0))  # fmt: skip
    picture = Picture(y[0, 0].clamp(0, 1).numpy())
    restorer = Restorer(engine)
    restorer.restore(picture, DEFAULT_METHODS)  # the backends pick their kernels for this size
    totals, estimates, per_method = [], [], {}
    for _ in range(max(3, repeats)):
        start = time.perf_counter()
        result = restorer.restore(picture, DEFAULT_METHODS)
        totals.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        estimate(picture.grey)
        estimates.append((time.perf_counter() - start) * 1000)
        for name, ms in result.ms.items():
            per_method.setdefault(name, []).append(ms)
    return {"restore": {"size": list(picture.pixels.shape), "methods": list(DEFAULT_METHODS), "ms": round(statistics.median(totals), 1),
                        "estimate_ms": round(statistics.median(estimates), 1),
                        "methods_ms": {n: round(statistics.median(v), 1) for n, v in per_method.items()},
                        "errors": result.errors}}  # fmt: skip


def import_floor_s() -> float:
    """Seconds a fresh interpreter takes to import torch and gradio: the floor under any start of the app
    (the second of two runs, so both it and the app's start read warm file caches)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, gradio"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times[-1]


def app_section(weights: Path, repeats: int, device: torch.device, with_classroom: bool = True) -> dict:
    """Cold start of ``python app.py`` to its first served reconstruction (less the import floor: the app's own
    share), the /reconstruct round trip split by what the server reports, the idle server's CPU, a classroom."""
    from gradio_client import Client

    floor = import_floor_s()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log")
    start = time.time()
    try:
        proc, url = start_app(weights, log=log, env={"RECON_DEVICE": str(device)})
    except RuntimeError:
        said = Path(log.name).read_text()[-2000:]
        log.close()
        raise RuntimeError(f"app.py did not start; it said: {said}") from None
    try:
        client = Client(url, verbose=False)
        models = ",".join(ROUNDTRIP_MODELS)
        first = time.perf_counter()
        client.predict(models=models, seed=0, api_name="/reconstruct")
        served, first_ms = time.time(), (time.perf_counter() - first) * 1000
        imported = re.search(r"torch and gradio imported at ([0-9.]+)", Path(log.name).read_text())
        if imported is None:
            raise RuntimeError("app.py did not log when its imports were done")
        times, server = [], []
        for seed in range(1, repeats + 1):
            t = time.perf_counter()
            out = client.predict(models=models, seed=seed, angle=20 + seed, api_name="/reconstruct")  # new each time
            times.append((time.perf_counter() - t) * 1000)
            server.append(out["server_ms"])
        roundtrip = statistics.median(times)
        part = {key: statistics.median(s[key] for s in server) for key in ("compute", "lab", "encode")}
        time.sleep(IDLE_SETTLE_S)  # the last request's work settles, as an operator would wait before looking
        idle = idle_usage(proc.pid, IDLE_WINDOW_S)
        report = {
            "import_floor_s": round(floor, 2), "cold_start_s": round(served - start, 2),
            "app_start_s": round(served - float(imported.group(1)), 2), "first_request_ms": round(first_ms, 1),
            "roundtrip_ms": round(roundtrip, 1), "roundtrip_models": models,
            "roundtrip_compute_ms": round(part["compute"], 1), "roundtrip_overhead_ms": round(roundtrip - part["compute"], 1),
            "roundtrip_split_ms": {"metrics_and_measurement": round(part["lab"] - part["compute"], 1),
                                   "png_encoding": round(part["encode"], 1),
                                   "transport_and_queue": round(roundtrip - part["lab"] - part["encode"], 1)},
            "idle_cpu_fraction": None if idle is None else round(idle[0], 4),
            "idle_wakeups_per_s": None if idle is None else round(idle[1], 1),
        }  # fmt: skip
        if with_classroom:
            report["classroom"] = classroom(url, proc.pid)
        return report
    finally:
        stop_app(proc)
        log.close()


def training_section(quick: bool, device: str | None, report=lambda what: None) -> dict:
    from recon_demo.lab.loss_study import EXPERIMENTS, LossStudy, LossStudyConfig

    cfg = LossStudyConfig(losses=dict(EXPERIMENTS["pure"]), lpips=False, device=device)
    if quick:
        cfg.epochs, cfg.size = 2, 128
    study = LossStudy(cfg)
    for _ in study.run():
        pass
    report("loss study")
    steps = cfg.steps * len(cfg.losses)
    return {
        "loss_study_s": round(study.wall_s, 2),
        "loss_study_scale": f"{len(cfg.losses)} × {cfg.steps} steps at {cfg.size}²",
        "train_steps_per_s": round(steps / sum(r.seconds for r in study.results.values()), 2),
    } | amp_section(quick, device)


def amp_section(quick: bool, device: str | None) -> dict:
    """The training CLI's step, fp32 against ``--amp`` (bf16 autocast), for the recipe of the shipped UNets:
    a UNet on 8 crops of 96² (quick: 64²). The first steps warm up and are not counted."""
    from recon_demo.training import TrainConfig, Trainer

    warm, timed = (1, 3) if quick else (3, 12)
    ms: dict[str, float | None] = {"fp32": None, "bf16": None}
    bf16, why = native_bf16(select_device(device).type)
    for amp in (False, True) if bf16 else (False,):
        cfg = TrainConfig(model="unet", steps=warm + timed, batch_size=8, patch_size=64 if quick else 96, phantoms=4,
                          max_images=4, eval_every=0, device=device, amp=amp)  # fmt: skip
        elapsed = [event.elapsed for event in Trainer(cfg).run()]
        ms["bf16" if amp else "fp32"] = round((elapsed[-1] - elapsed[warm - 1]) / timed * 1000, 1)
    return {"train_step_ms": ms, "train_step_scale": f"unet, 8 × {cfg.patch_size}²", "amp_supported": bf16, "amp_note": why,
            "amp_speedup": round(ms["fp32"] / ms["bf16"], 2) if bf16 else None}  # fmt: skip


def run_bench(quick: bool = False, device: str | None = None, repeats: int | None = None, app: bool | None = None,
              progress: Report = no_progress, with_classroom: bool = True) -> dict:  # fmt: skip
    """Every measurement of the module's docstring; ``progress`` hears of each part done (the app, SGEMM, each
    model, bf16 autocast on CUDA, the loss study, the training step)."""
    device_t = select_device(device)
    repeats = repeats or (3 if quick else 15)
    with_app = app if app is not None else not quick
    parts = [*(["app"] if with_app else []), "SGEMM", *BENCHED, "tv", "restore", *(["autocast"] if device_t.type == "cuda" else []),
             "loss study", "training step", "CT"]  # fmt: skip
    done = iter(range(1, len(parts) + 1))

    def finished(what: str) -> None:
        progress(next(done), len(parts), what)

    with tempfile.TemporaryDirectory() as tmp:
        weights, source = weights_dir(Path(tmp))
        engine = Engine(device_t, manifest=Manifest.load(weights), precision="fp32")  # the float32 figures; bf16 beside them
        report = {"device": str(device_t), "threads": torch.get_num_threads(), "torch": torch.__version__, "weights": source,
                  "quick": quick, "repeats": repeats}  # fmt: skip
        # The app first, while this process is idle: its cold start shares the two cores with nothing else.
        if with_app:
            report.update(app_section(weights, 10, device_t, with_classroom))
            finished("app")
        else:
            report.update(dict.fromkeys(APP_KEYS))
        report["sgemm_gflops"] = round(sgemm_gflops(device_t), 1)
        finished("SGEMM")
        report.update(models_section(engine, repeats, finished))
        achieved = report["gflop_all"] / (report["engine_all_ms"] / 1000)
        report["achieved_gflops"] = round(achieved, 1)
        report["efficiency"] = round(achieved / report["sgemm_gflops"], 3)
        report.update(restore_section(Engine(device_t, manifest=engine.manifest), repeats))  # as a person runs it
        finished("restore")
        if device_t.type == "cuda":
            report.update(autocast_section(engine, repeats))
            finished("autocast")
        report.update(training_section(quick, device, finished))
        finished("training step")
        report["ct"] = ct_bench.ct_section(quick, repeats, _interleaved_ms)  # the projector runs on the CPU
        finished("CT")
    return report

