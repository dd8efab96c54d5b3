"""Training: one loop behind the ``train`` CLI, the loss study and the app's Train tab.

A ``TrainConfig`` says everything a run needs (model, loss spec, steps, batch, patch, learning rate and
schedule, the operator or ranges of operators, data, seed, device). ``Trainer.run`` is a generator of
``TrainEvent``: one per optimiser step (loss, each loss term, learning rate, elapsed time) and, every
``eval_every`` steps and at the end, the metrics and the reconstruction of one fixed held-out measurement.
The CLI draws them as a progress bar, the UI as live plots.

Measurements are synthesised on the fly, ``y_delta = K x_true + e`` with the lecture's relative noise per
image (for ``task="ct"``: the sinogram ``A x_true + e`` of a whole image, whose filtered back-projection is
the network's input, cropped with its target), from clean training images that are never stored blurred:
the training split of the package images, procedural phantoms and any folder of user images. A ``cancel`` (a ``threading.Event`` or a callable) is
polled before every module's forward pass and around the backward pass, so a run stops within a fraction of
a step and keeps the model as of its last completed step.

Runs are resumable: every ``checkpoint_every`` steps, on cancel and at the end, the model, optimiser,
scheduler, step count and random-number states go to ``<checkpoint>.state.pt``; ``resume=True`` continues
from there, and on the CPU a resumed run ends with exactly the weights of an uninterrupted one.

The package: ``config`` (``TrainConfig``, ``OperatorRanges``, ``TrainEvent``), ``data`` (images, batches,
measurements), ``loop`` (``Trainer``) and ``record`` (the manifest entry); the ``train`` command is ``cli.train``.
"""

from __future__ import annotations

from recon_demo.training.config import (
    DATA_SOURCES,
    GENERAL_RANGES,
    MAX_BATCH,
    MAX_IMAGE_SIZE,
    MAX_STEPS,
    SAMPLINGS,
    SCHEDULES,
    TASKS,
    OperatorRanges,
    TrainConfig,
    TrainEvent,
    TrainingError,
    parse_source,
)
from recon_demo.training.data import (
    TrainingImages,
    _training_patch,
    clean_batch,
    ct_batch,
    detail,
    measure,
    validation_pair,
)
from recon_demo.training.loop import Trainer, train
from recon_demo.training.record import heldout_metrics, manifest_entry

__all__ = [
    "DATA_SOURCES", "GENERAL_RANGES", "MAX_BATCH", "MAX_IMAGE_SIZE", "MAX_STEPS", "SAMPLINGS", "SCHEDULES", "TASKS",
    "OperatorRanges", "TrainConfig", "TrainEvent", "Trainer", "TrainingError", "TrainingImages", "_training_patch",
    "clean_batch", "ct_batch", "detail", "heldout_metrics", "manifest_entry", "measure", "parse_source", "train",
    "validation_pair",
]  # fmt: skip
