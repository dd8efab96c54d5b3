"""The iterative methods, one step at a time: the registry the Iterations view runs (``lab.iterations``).

Each ``IterativeMethod`` yields its iterates ``x_1, x_2, …`` from ``(y_delta, operator)``: Landweber, CGLS and
Richardson-Lucy on the blur ``K`` (``methods.blur``), SIRT on the Radon transform ``A`` (``physics.ct``). A new one is
its iterate generator and one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from recon_demo.methods.blur import cgls_iterates, landweber_iterates, richardson_lucy_iterates
from recon_demo.physics.ct import sirt_iterates


@dataclass(frozen=True)
class IterativeMethod:
    """A method that regularises only by stopping, and its iterates."""

    name: str
    label: str
    task: str  # "deblur" (the blur K) or "ct" (the Radon transform A)
    sentence: str  # what a student should know of it, in one line
    iterates: Callable[[torch.Tensor, object], Iterator[torch.Tensor]]  # (y_delta, operator) → x_1, x_2, …


def _sirt(y_delta: torch.Tensor, radon) -> Iterator[torch.Tensor]:
    return sirt_iterates(radon, y_delta)


METHODS: dict[str, IterativeMethod] = {
    m.name: m
    for m in (
        IterativeMethod("landweber", "Landweber", "deblur", "Gradient descent on ½||K x − y||² from zero: each step adds "
                        "Kᵀ of what is still unexplained.", landweber_iterates),
        IterativeMethod("cgls", "CGLS", "deblur", "Conjugate gradients on KᵀK x = Kᵀy: the same least-squares goal, "
                        "reached (and overshot) in far fewer steps.", cgls_iterates),
        IterativeMethod("rl", "Richardson-Lucy", "deblur", "Multiplicative updates that keep the image positive: the "
                        "maximum-likelihood method for photon noise.", richardson_lucy_iterates),
        IterativeMethod("sirt", "SIRT (CT)", "ct", "CT's Landweber, each ray and pixel weighted by its length; every "
                        "iterate clamped to [0, 1].", _sirt),
    )
}  # fmt: skip
