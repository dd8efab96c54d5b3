"""What a finished run leaves in the weights manifest: its recipe, data, compute and held-out metrics."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from recon_demo.checkpoints import ManifestEntry, sha256_file
from recon_demo.physics import spec
from recon_demo.physics.ct import CTSpec
from recon_demo.training.config import TrainConfig
from recon_demo.training.loop import Trainer


def heldout_metrics(cfg: TrainConfig, checkpoint: str | Path) -> dict:
    """The ``evaluate`` protocol on the held-out images for a trained checkpoint, with the command that
    reproduces it (the spec's own flags): at the run's fixed operator, or at the lecture's for a general model. For CT,
    against FBP at the run's angles and noise (``"fbp"`` takes the place of ``"measurement"``). In float32
    (``--precision fp32``), so that the figures are the same on every machine."""
    from recon_demo.evaluate import CTEvalConfig, EvalConfig, run_ct_evaluation, run_evaluation

    models, common = [(cfg.model, str(checkpoint))], {"noise": cfg.noise, "lpips": True, "precision": "fp32"}
    if cfg.task == "ct":
        acquisition = CTSpec(angles=cfg.angles, size=cfg.val_size, filter=cfg.ct_filter)
        result = run_ct_evaluation(CTEvalConfig(models=models, baselines=["fbp"], spec=acquisition, **common))
        task, baseline, flags, reference = "--task ct ", "fbp", spec.command_flags(acquisition, keep=("angles",)), ("fbp", "fbp")
    else:
        result = run_evaluation(EvalConfig(models=models, baselines=["input"], operator=cfg.operator, **common))
        task, baseline, flags, reference = "", "input", spec.command_flags(cfg.operator), ("measurement", "input")
    command = (f"python -m recon_demo evaluate {task}--models {cfg.model}={checkpoint} --baselines {baseline} {flags} "
               f"--noise {cfg.noise:g} --lpips --precision fp32")  # fmt: skip
    return _metrics_record(result, command, cfg.model, reference)


def _metrics_record(result: dict, command: str, model: str, reference: tuple[str, str]) -> dict:
    """The manifest's ``metrics``: the command, protocol, images, the model's averages and the reference's
    (``reference`` = (key in the record, name in the result))."""
    key, name = reference
    return {
        "command": command,
        "protocol": result["protocol"]["summary"],
        "images": result["protocol"]["images"],
        "model": result["results"][model],
        key: result["results"][name],
    }


def manifest_entry(trainer: Trainer, checkpoint: Path, sha256: str, manifest_dir: Path, wall_s: float) -> ManifestEntry:
    """The manifest's description of a finished run: what, trained how, on what, where, and how good."""
    cfg = trainer.cfg
    if cfg.task == "ct":
        operator = CTSpec(angles=cfg.angles, size=cfg.image_size, filter=cfg.ct_filter).to_dict()  # angles: those it is measured at
        if cfg.angle_range is not None:
            operator["angle_range"] = list(cfg.angle_range)  # those it trained over
        noise = {"kind": "relative", "level": cfg.noise, "on": "sinogram"}
    elif cfg.ranges is None:
        operator, noise = cfg.operator.to_dict(), {"kind": "relative", "level": cfg.noise}
    else:
        ranges = asdict(cfg.ranges)
        noise = {"kind": "relative", "range": list(ranges.pop("noise"))}
        operator = json.loads(json.dumps(ranges))
    return ManifestEntry(
        model=cfg.model,
        regime=cfg.regime(),
        file=os.path.relpath(checkpoint, manifest_dir),
        sha256=sha256,
        kwargs=cfg.model_kwargs,
        operator=operator,
        noise=noise,
        recipe={
            "loss": cfg.loss if cfg.self_supervised is None else f"self-supervised {cfg.self_supervised}", "optimizer": "Adam", "lr": cfg.lr, "schedule": cfg.schedule, "steps": trainer.step,
            "batch_size": cfg.batch_size, "patch_size": cfg.patch_size, "sampling": cfg.sampling, "seed": cfg.seed,
            "amp": cfg.amp,
        } | ({"segments": trainer.segments} if len(trainer.segments) > 1 else {})
          | ({"precision": trainer.precision} if len(trainer.precision) > 1 else {})
          | ({"amp_note": " ".join(trainer.notices)} if trainer.notices else {})
          | ({"processes": trainer.world.size, "global_batch": cfg.batch_size * trainer.world.size} if trainer.world.distributed else {})
          | ({"crop_scales": list(cfg.crop_scales)} if cfg.crop_scales != (1.0,) else {})
          | ({"min_detail": cfg.min_detail} if cfg.min_detail else {})
          | ({"ema": cfg.ema} if cfg.ema else {})
          | ({"init": os.path.relpath(cfg.init, manifest_dir), "init_sha256": sha256_file(cfg.init)} if cfg.init else {}),  # fmt: skip
        data={"sources": list(cfg.data), **trainer.data.describe(), "held_out": "never used (see README)"},
        compute={
            "device": str(trainer.device), "wall_s": round(trainer.elapsed, 1), "cli_wall_s": round(wall_s, 1),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
        },  # fmt: skip
        metrics=heldout_metrics(cfg, checkpoint),
        task=cfg.task,
    )
