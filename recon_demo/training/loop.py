"""The training loop: ``Trainer`` builds a run (model, optimiser, schedule, data; resumable, cancellable, under
torchrun too) and ``Trainer.run`` yields an event per step."""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from recon_demo.checkpoints import CheckpointError, load_state, read_state_dict, save_checkpoint
from recon_demo.losses import WeightedLoss, check_available, parse_loss, self_supervised_parts
from recon_demo.metrics import compute_metrics
from recon_demo.models import create_model, knows_operator
from recon_demo.physics.blur import Blur, OperatorSpec
from recon_demo.physics.ct import radon_operator
from recon_demo.serving.engine import select_device
from recon_demo.serving.runtime import native_bf16, tune_allocator
from recon_demo.training import distributed
from recon_demo.training.config import _RESUMABLE_CHANGES, TrainConfig, TrainEvent, TrainingError
from recon_demo.training.data import TrainingImages, clean_batch, ct_batch, ct_sinogram_batch, measure, validation_pair


class _Stop(Exception):
    """Raised inside the forward pass when the run is cancelled."""


def _should_stop(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    if cfg.schedule == "cosine":
        return lambda step: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    return lambda step: 1.0


class Trainer:
    """One run of a ``TrainConfig``: build with it (and ``resume=True`` to continue), then iterate ``run()``."""

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg = cfg.validated()
        tune_allocator()
        try:
            self.world, self.device = distributed.setup(select_device(cfg.device))  # torchrun: join the others
        except (ValueError, RuntimeError) as err:
            raise TrainingError(str(err)) from None
        if self.world.distributed and cfg.sampling == "epochs":  # an epoch's short last batch would leave ranks uneven
            raise TrainingError("under torchrun, train with --sampling patches (epochs end in a short batch that the processes cannot share)")
        if cfg.amp and self.device.type not in ("cuda", "cpu"):
            raise TrainingError(f"mixed precision (amp) runs on CUDA or the CPU, not on {self.device.type}")
        self.notices: list[str] = []  # what the CLI says before training (a refused --amp)
        if cfg.amp and not (bf16 := native_bf16(self.device.type))[0]:
            self.cfg = cfg = replace(cfg, amp=False)  # the manifest then records fp32, the precision actually used
            self.notices.append(f"--amp ignored: {bf16[1]}; training in fp32")
        self.loss_fn: WeightedLoss = parse_loss(cfg.loss)
        try:
            check_available(self.loss_fn)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        torch.manual_seed(cfg.seed)  # the lecture's seeding: identical initial weights for every loss
        try:
            self.model: nn.Module = create_model(cfg.model, **cfg.model_kwargs).to(self.device)
        except TypeError as err:
            raise TrainingError(f"bad model kwargs for {cfg.model}: {err}") from None
        if cfg.init is not None:  # a warm start; a resume then replaces these weights with the saved ones
            try:
                load_state(self.model, read_state_dict(cfg.init), cfg.model)
            except CheckpointError as err:
                raise TrainingError(f"cannot start from {cfg.init}: {err}") from None
        # --ema: a moving average of the weights, validated and saved in their place (``averaged``)
        self.ema_model: nn.Module | None = copy.deepcopy(self.model).requires_grad_(False) if cfg.ema else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(cfg))
        self.generator = torch.Generator().manual_seed(cfg.seed)  # crops, flips, operators and noise
        self.data = TrainingImages(cfg.data, cfg.image_size, cfg.phantoms, cfg.max_images)
        self.x_val, self.y_val = validation_pair(cfg)
        self.step = 0
        self.elapsed = 0.0
        self.segments = [[cfg.steps, 0]]  # (the run's --steps, the step it started from): more than one after a
        # resume with another --steps, whose cosine schedule then jumps to its value at that step of the new length
        self.precision = [[0, _precision(cfg)]]  # (from step, "fp32" or "bf16"): a resume may switch --amp
        if resume:
            self._load_state()
        self.train_model: nn.Module = self.model  # what the step calls: under torchrun, DDP averages the gradients
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    # -- resumable state ----------------------------------------------------------------------------

    def _load_state(self) -> None:
        path = self.cfg.state_path()
        if path is None or not path.is_file():
            raise TrainingError(f"nothing to resume: no training state at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged or foreign file: say so, never unpickle code
            raise TrainingError(f"cannot read the training state {path} ({type(err).__name__}: {err})") from None
        saved = json.loads(state["config"])
        saved = TrainConfig().to_dict() | saved  # a field added since the state was written has its default
        if saved.get("ranges") and "styles" in saved["ranges"]:  # states written before "styles" became "kernel_styles"
            saved["ranges"]["kernel_styles"] = saved["ranges"].pop("styles")
        if saved.get("operator"):  # "style" became "kernel_style"; fields added since (a drawn kernel) take their defaults
            saved["operator"] = OperatorSpec.from_dict(saved["operator"]).to_dict()
        current = self.cfg.to_dict()
        changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
        if changed:
            detail = ", ".join(f"{k}: {saved.get(k)!r} → {current[k]!r}" for k in changed)
            raise TrainingError(f"{path} was trained with another configuration ({detail}); start a new run instead")
        self.model.load_state_dict(state["model"])
        if self.ema_model is not None:
            self.ema_model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.segments = json.loads(state.get("segments", "null")) or [[saved["steps"], 0]]
        if self.segments[-1][0] != self.cfg.steps:  # resumed with another length: the schedule changes from here
            self.segments.append([self.cfg.steps, self.step])
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.world.size:
            raise TrainingError(f"{path} was trained by {saved_world} process(es) and this run has {self.world.size}: the global "
                                "batch would change; resume with the same torchrun --nproc_per_node (and nodes)")  # fmt: skip
        self.precision = json.loads(state.get("precision", "null")) or [[0, _precision(TrainConfig(amp=saved["amp"]))]]
        if self.precision[-1][1] != _precision(self.cfg):  # resumed with --amp switched
            self.precision.append([self.step, _precision(self.cfg)])

    def save_state(self, generator_state: torch.Tensor | None = None) -> Path | None:
        """Write the resumable state (atomically) beside the checkpoint; ``None`` when the run has no checkpoint."""
        path = self.cfg.state_path()
        if path is None or not self.world.is_main:  # under torchrun, rank 0 writes for all (they hold the same)
            return None
        state = {
            "config": json.dumps(self.cfg.to_dict()),
            "model": _on_cpu(self.model),
            **({"ema": _on_cpu(self.ema_model)} if self.ema_model is not None else {}),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state() if generator_state is None else generator_state,
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "elapsed": self.elapsed,
            "segments": json.dumps(self.segments),
            "precision": json.dumps(self.precision),
            "world_size": self.world.size,  # the global batch is batch_size × this: a resume must keep it
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def save_weights(self) -> str | None:
        """Write the model's weights to ``checkpoint`` as safetensors; returns the sha256 (``None`` without a path)."""
        if self.cfg.checkpoint is None or not self.world.is_main:
            return None
        metadata = {"model": self.cfg.model, "kwargs": json.dumps(self.cfg.model_kwargs), "step": str(self.step)}
        if self.cfg.ema:
            metadata["ema"] = str(self.cfg.ema)
        return save_checkpoint(self.averaged, self.cfg.checkpoint, metadata)

    @property
    def averaged(self) -> nn.Module:
        """The weights a run validates and saves: their moving average with ``--ema``, else the model itself."""
        return self.model if self.ema_model is None else self.ema_model

    def _update_average(self) -> None:
        """After an optimiser step: move the average towards the weights, with a decay that starts low
        (``(1 + step) / (10 + step)``, capped by ``ema``) so that the first steps do not freeze it at the init."""
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for average, now in zip(self.ema_model.state_dict().values(), self.model.state_dict().values(), strict=True):
                if average.is_floating_point():
                    average.lerp_(now, 1 - decay)
                else:  # an integer buffer (none of the lecture's models has one): copied, not averaged
                    average.copy_(now)

    # -- the loop -----------------------------------------------------------------------------------

    def validate(self) -> tuple[dict[str, float | None], np.ndarray]:
        """Metrics and reconstruction of the fixed held-out measurement, with the weights as they are now (their
        moving average with ``--ema``)."""
        model = self.averaged
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            y_val = self.y_val.to(self.device)
            x_rec = model(y_val, self._validation_operator()) if knows_operator(model) else model(y_val)
            x_rec = x_rec.float().clamp(0, 1).cpu()
        model.train(was_training)
        image = x_rec[0, 0].numpy()
        return compute_metrics(image, self.x_val), image

    def _validation_operator(self):
        """The operator of the fixed validation measurement: the config's blur, or for CT its Radon transform."""
        if self.cfg.task == "ct":
            return radon_operator(self.cfg.val_size, self.cfg.angles)
        return self.cfg.operator.build()

    def _train_step(self, cancel) -> tuple[float, dict[str, float]]:
        world = self.world
        # Under torchrun every process draws the global batch (the same draws: one seed) and keeps its slice.
        cfg = replace(self.cfg, batch_size=self.cfg.batch_size * world.size) if world.distributed else self.cfg
        operator = None
        if cfg.task == "ct" and knows_operator(self.model):  # the sinogram and the Radon transform itself
            x_true, y_delta, operator = ct_sinogram_batch(cfg, self.data, self.step, self.generator, self.device)
        elif cfg.task == "ct":
            x_true, y_delta = ct_batch(cfg, self.data, self.step, self.generator, self.device)
        else:
            x_true = clean_batch(cfg, self.data, self.step, self.generator).to(self.device)
            y_delta, operator = measure(cfg, x_true, self.generator)
        if world.distributed:
            mine = slice(world.rank * self.cfg.batch_size, (world.rank + 1) * self.cfg.batch_size)
            x_true, y_delta = x_true[mine], y_delta[mine]
            if isinstance(operator, Blur) and operator.kernel.ndim == 3:
                operator = Blur(operator.kernel[mine])
        def network(y: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp):
                x = self.train_model(y, operator) if knows_operator(self.model) else self.train_model(y)
            return x.float()

        x_rec = network(y_delta)
        if cfg.self_supervised:  # x_true made the measurement and is seen no more: the loss has y_delta and K only
            parts = self_supervised_parts(cfg.self_supervised, network, y_delta, x_rec, operator, cfg.noise, self.generator)
            loss = sum(parts.values())
        else:
            parts = self.loss_fn.parts(x_rec, x_true)
            loss = self.loss_fn.total(parts)
        bad = not bool(torch.isfinite(loss))
        if world.distributed:  # every process learns it, or the others would wait in the all-reduce for ever
            bad = distributed.any_rank(bad, world, self.device)
        if bad:
            raise TrainingError(f"the loss became {float(loss.detach())} at step {self.step + 1}; try a smaller learning rate")
        stoppable = not world.distributed  # in the middle of a step the other processes would wait forever
        if stoppable and _should_stop(cancel):
            raise _Stop
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if stoppable and _should_stop(cancel):
            raise _Stop
        self.optimizer.step()
        self.scheduler.step()
        if self.ema_model is not None:
            self._update_average()
        return float(loss.detach()), {k: float(v.detach()) for k, v in parts.items()}

    def run(self, cancel=None) -> Iterator[TrainEvent]:
        """Train up to ``cfg.steps``, yielding an event per step; the last one says ``done`` or ``cancelled``.

        ``cancel`` is a ``threading.Event`` or a callable returning True to stop. On a stop the step in flight
        is dropped, the model is the one of the last completed step and its state is saved for ``resume``;
        the last event then carries no new validation (call ``validate()`` for one).
        """
        cfg = self.cfg
        self.model.train()

        def poll(*_):
            if _should_stop(cancel):
                raise _Stop

        world = self.world
        watched = [self.model] + ([self.ema_model] if self.ema_model is not None else [])  # validation runs the average
        hooks = [] if world.distributed else [m.register_forward_pre_hook(poll) for net in watched for m in net.modules()]
        last = TrainEvent(self.step, cfg.steps, math.nan, {}, self.scheduler.get_last_lr()[0], self.elapsed)
        try:
            while self.step < cfg.steps:
                if world.distributed and distributed.any_rank(_should_stop(cancel), world, self.device):
                    self.save_state()  # agreed between steps: every process stops after the same one
                    last.status = "cancelled"
                    break
                generator_state = self.generator.get_state()  # the state to save if this step is dropped
                lr = self.scheduler.get_last_lr()[0]
                start = time.perf_counter()
                try:
                    loss, parts = self._train_step(cancel)
                except _Stop:
                    self.elapsed += time.perf_counter() - start
                    self.save_state(generator_state)
                    last.status = "cancelled"
                    break
                self.step += 1
                self.elapsed += time.perf_counter() - start
                last = TrainEvent(self.step, cfg.steps, loss, parts, lr, self.elapsed)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_state()
                if self.step < cfg.steps:
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and world.is_main:
                        try:
                            last.metrics, last.x_rec = self.validate()
                        except _Stop:  # cancelled while validating: the step itself is complete
                            self.save_state()
                            last.status = "cancelled"
                            break
                    yield last
        finally:
            for h in hooks:
                h.remove()
        if last.status == "running":
            self.save_state()
            self.save_weights()
            last.status = "done"
            if world.is_main:
                last.metrics, last.x_rec = self.validate()
        yield last  # a cancelled run returns at once, without a final validation


def _on_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state, for the resumable state."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _precision(cfg: TrainConfig) -> str:
    return "bf16" if cfg.amp else "fp32"


def train(cfg: TrainConfig, cancel=None, resume: bool = False) -> Iterator[TrainEvent]:
    """``Trainer(cfg, resume).run(cancel)``: the events of one run."""
    return Trainer(cfg, resume).run(cancel)
