"""Micro-batching: concurrent calls of one network on inputs of one shape run as one batch.

Students who open the teacher's link ask the same model, on measurements of the same size, at the same moment.
``MicroBatcher(run)`` gathers such calls: the first caller of a key (the model and the input's shape) leads a
batch; while callers outside its batch are in flight it waits up to ``window_s`` for more callers of that key (at
most ``max_batch``; it stops waiting once every caller in flight has joined), then runs ``run(model, stacked)`` once
and hands each caller its own copy of its slice. A caller alone on the server does not wait at all. Each sample is computed independently by the networks (no batch statistics in
eval mode), so a batched result equals the unbatched one to float rounding (``tests/test_engine.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

WINDOW_S = 0.01  # how long a batch's leader waits for company while other requests are in flight
MAX_BATCH = 8


@dataclass(eq=False)
class _Batch:
    model: torch.nn.Module
    inputs: list[torch.Tensor] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)  # max_batch reached: the leader stops waiting
    done: threading.Event = field(default_factory=threading.Event)
    closed: bool = False  # the leader has taken the inputs: later callers start a new batch
    output: torch.Tensor | None = None
    error: BaseException | None = None


class MicroBatcher:
    """``batcher(model, x)`` = ``run(model, x)`` for one input (1, C, H, W), batched with concurrent callers."""

    def __init__(self, run: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor], window_s: float = WINDOW_S,
                 max_batch: int = MAX_BATCH):  # fmt: skip
        self._run = run
        self.window_s = window_s
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._open: dict[tuple, _Batch] = {}  # key → the batch still taking callers
        self._in_flight = 0  # calls inside __call__, of any key
        self.batch_sizes: list[int] = []  # the size of each batch run (the last 1,000), for the bench and tests

    def __call__(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return self._run(model, x)  # already a batch: run as it is
        key = (id(model), tuple(x.shape), x.dtype)
        with self._lock:
            self._in_flight += 1
            batch = self._open.get(key)
            leader = batch is None
            if leader:
                batch = self._open[key] = _Batch(model)
            index = len(batch.inputs)
            batch.inputs.append(x)
            if len(batch.inputs) >= self.max_batch:
                self._close(key, batch)
            elif len(batch.inputs) >= self._in_flight:
                batch.full.set()  # every caller in flight is in this batch: no reason to wait for more
            company = self._in_flight > len(batch.inputs)  # callers elsewhere that may still join
        try:
            if leader:
                return self._lead(key, batch, company)[index : index + 1].clone()
            batch.done.wait()
            if batch.error is not None:  # a new exception per caller: one instance raised in several threads is not safe
                raise RuntimeError(f"batched inference failed: {batch.error}") from batch.error
            return batch.output[index : index + 1].clone()  # its own memory: a cached image must not hold the batch
        finally:
            with self._lock:
                self._in_flight -= 1

    def _close(self, key: tuple, batch: _Batch) -> None:
        """Under the lock: no caller joins ``batch`` any more."""
        batch.closed = True
        batch.full.set()
        if self._open.get(key) is batch:
            del self._open[key]

    def _lead(self, key: tuple, batch: _Batch, company: bool) -> torch.Tensor:
        if company:
            batch.full.wait(self.window_s)
        with self._lock:
            self._close(key, batch)
            inputs = list(batch.inputs)
            self.batch_sizes = [*self.batch_sizes[-999:], len(inputs)]
        try:
            batch.output = self._run(batch.model, torch.cat(inputs) if len(inputs) > 1 else inputs[0])
        except BaseException as err:  # every caller of the batch hears of it
            batch.error = err
            raise
        finally:
            batch.done.set()
        return batch.output
