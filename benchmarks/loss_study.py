"""The loss study's wall time, measured against a plain lecture-style loop in the same run.

    python3 -m benchmarks.loss_study [--experiment pure|mixed|all] [--format table|json]

Three timings, each of the whole experiment (every configuration: 80 steps at 256², then the test
reconstruction):
- ``recon_demo``: ``LossStudy.run`` as the CLI and the app run it;
- ``plain``: the loop a student writes from the lecture (same data, model, seeds and losses, the measurement
  made per batch, nothing else), in a fresh process with Python's default allocator settings;
- ``plain_tuned``: the same plain loop after ``runtime.tune_allocator``, which shows how much of the gain is
  that setting, and what our loop adds to it.
The reconstructions' PSNR are printed too; the plain loop and ours use different noise draws, so they agree
to a few tenths of a dB, not exactly. Nothing here is asserted: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import torch

from recon_demo.lab.loss_study import EXPERIMENTS, LossStudy, LossStudyConfig
from recon_demo.losses import parse_loss
from recon_demo.metrics import psnr
from recon_demo.models import create_model
from recon_demo.physics.noise import add_relative_noise
from recon_demo.serving.runtime import tune_allocator
from recon_demo.training import TrainingImages, validation_pair


def plain_loop(losses: dict[str, str]) -> dict:
    """The lecture's loop, written plainly: preloaded 256² images, shuffled epochs, on-the-fly measurements."""
    cfg = LossStudyConfig(losses=losses)
    data = TrainingImages(("package", "phantoms"), cfg.size, cfg.n_images, cfg.n_images)
    train_cfg = cfg.train_config("mse")
    x_all = torch.stack([data[i][:, :256, :256] for i in range(len(data))])  # (32, 1, 256, 256)
    K = cfg.operator.build()
    x_test, y_test = validation_pair(train_cfg)
    out = {}
    start_all = time.perf_counter()
    for label, spec in losses.items():
        start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss_fn = parse_loss(spec)
        per_epoch = min(cfg.epoch_batches, math.ceil(len(data) / cfg.batch_size))
        for _ in range(cfg.epochs):
            order = torch.randperm(len(data))
            for b in range(per_epoch):
                x = x_all[order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
                y_delta = add_relative_noise(K(x), cfg.noise)
                loss = loss_fn(model(y_delta), x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            x_rec = model(y_test).clamp(0, 1)
        out[label] = {"seconds": time.perf_counter() - start, "psnr": psnr(x_rec, x_test)}
    return {"wall_s": time.perf_counter() - start_all, "results": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="pure", choices=(*EXPERIMENTS, "all"))
    parser.add_argument("--format", default="table", choices=("table", "json"))
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    losses = {k: v for name, presets in EXPERIMENTS.items() if args.experiment in (name, "all") for k, v in presets.items()}
    if args.plain:
        if args.tuned:
            tune_allocator()
        print(json.dumps(plain_loop(losses)))
        return 0

    def child(*flags: str) -> dict:
        cmd = [sys.executable, "-m", "benchmarks.loss_study", "--plain", "--experiment", args.experiment, *flags]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    plain = child()
    plain_tuned = child("--tuned")
    study = LossStudy(LossStudyConfig(losses=losses, lpips=False))
    for _ in study.run():
        pass
    ours = {label: {"seconds": r.seconds, "psnr": r.metrics["psnr"]} for label, r in study.results.items()}
    report = {
        "experiment": args.experiment,
        "steps_per_configuration": study.cfg.steps,
        "threads": torch.get_num_threads(),
        "recon_demo_s": round(study.wall_s, 2),
        "plain_s": round(plain["wall_s"], 2),
        "plain_tuned_s": round(plain_tuned["wall_s"], 2),
        "speedup_vs_plain": round(plain["wall_s"] / study.wall_s, 2),
        "steps_per_s": round(study.cfg.steps * len(losses) / study.wall_s, 2),
        "per_configuration": {
            label: {"recon_demo": ours[label], "plain": plain["results"][label], "plain_tuned": plain_tuned["results"][label]}
            for label in losses
        },
    }
    if args.format == "json":
        print(json.dumps(report, indent=1))
        return 0
    print(f"loss study '{args.experiment}': {len(losses)} configurations × {study.cfg.steps} steps at 256², "
          f"{report['threads']} threads")  # fmt: skip
    print(f"recon_demo  {report['recon_demo_s']:6.1f} s  ({report['steps_per_s']} steps/s)")
    print(f"plain loop  {report['plain_s']:6.1f} s  (speed-up {report['speedup_vs_plain']}×)")
    print(f"plain loop, tuned allocator  {report['plain_tuned_s']:6.1f} s")
    for label, row in report["per_configuration"].items():
        print(f"  {label:<30} PSNR ours {row['recon_demo']['psnr']:.3f} dB, plain {row['plain']['psnr']:.3f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
