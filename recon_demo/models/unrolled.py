"""Beyond the lecture: a network that knows the operator (unrolled half-quadratic splitting).

The lecture's networks are end-to-end: they see ``y_delta`` and never ``K``, so each one is tied to the blur it
learned. Its last section points at the next step, putting the operator inside the network. ``UnrolledNet`` does
that in the form of MoDL (Aggarwal et al.) / learned half-quadratic splitting (Zhang et al., USRNet):

    x_0 = argmin_x ||K x − y_delta||² + λ_0 ||x − y_delta||²
    z_k = D_k(x_{k−1})                                     (a small learned denoiser, one per iteration)
    x_k = argmin_x ||K x − y_delta||² + λ_k ||x − z_k||²    (the data step: it uses K and Kᵀ)

Each data step solves ``(KᵀK + λ I) x = Kᵀ y_delta + λ z`` with a fixed number of conjugate-gradient steps, so it
is exact for the operator as it is (zero-padded correlation, or the Radon transform), with no periodic-boundary
assumption. The weights ``λ_k`` are learned (one per step); the operator is any object with ``forward`` and
``adjoint`` on batches (N, 1, …): ``physics.blur.Blur`` (one kernel, or one per image) or ``physics.ct.Radon``.
One checkpoint therefore serves every blur it is handed, which an end-to-end network cannot.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from recon_demo.models._padding import crop_to, pad_to_multiple
from recon_demo.models._registry import register_model


class Denoiser(nn.Module):
    """``D_k``: a two-scale residual CNN (``c`` channels at full resolution, ``2c`` at half), returning x + D(x)."""

    def __init__(self, channels: int = 24):
        super().__init__()
        c = channels
        self.head = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True))  # fmt: skip
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU(inplace=True))  # fmt: skip
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.tail = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 3, padding=1))
        # channels-last weights (kept when a state is loaded), as the engine gives every model for inference:
        # training's convolutions of 24 channels at full resolution run about twice as fast so on the CPU
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, 2)
        h = self.head(padded)  # (N, c, H, W)
        h = h + self.up(self.down(h))  # (N, c, H, W): the half-resolution path sees twice as far
        return x + crop_to(self.tail(h), size)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.ndim - 1)))  # (N, 1, 1, 1): one per image


def data_step(operator: Any, y_delta: torch.Tensor, z: torch.Tensor, lam: torch.Tensor, steps: int,
              adjoint_y: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``argmin_x ||K x − y||² + λ ||x − z||²`` by ``steps`` conjugate-gradient iterations from ``z``, per image.

    ``adjoint_y`` is ``Kᵀ y_delta`` when the caller has it (the network computes it once for all its data steps).
    Always in float32: under bf16 autocast the denoisers run in bf16, but CG's inner products would lose the
    small residuals it works on."""
    with torch.autocast(y_delta.device.type, enabled=False):
        if adjoint_y is None:
            adjoint_y = operator.adjoint(y_delta.float())
        return _conjugate_gradient(operator, adjoint_y.float(), z.float(), lam.float(), steps)


def _conjugate_gradient(operator: Any, adjoint_y: torch.Tensor, z: torch.Tensor, lam: torch.Tensor, steps: int) -> torch.Tensor:
    def gram(v: torch.Tensor) -> torch.Tensor:  # KᵀK v
        return operator.adjoint(operator.forward(v))

    x = z
    r = adjoint_y - gram(z)  # (Kᵀy + λz) − (KᵀK + λI) z
    p, rr = r, _dot(r, r)
    for _ in range(steps):
        q = gram(p) + lam * p
        alpha = rr / _dot(p, q).clamp_min(1e-20)
        x = x + alpha * p
        r = r - alpha * q
        rr_new = _dot(r, r)
        p = r + (rr_new / rr.clamp_min(1e-20)) * p
        rr = rr_new
    return x


class UnrolledNet(nn.Module):
    """Unrolled HQS: ``iterations`` learned denoisers between exact data steps (see the module docstring).

    ``forward(y_delta, operator)``; ``iterates(y_delta, operator)`` gives x_0 … x_K for the Inspect tab.
    For CT the measurement is a sinogram and the first estimate is the operator's ``fbp`` (when it has one)
    instead of ``y_delta`` itself. Defaults: measured on a 2-core CPU at 256², five iterations of 24-channel
    denoisers with five CG steps each cost 2.3× the lecture's UNet in float32 and 1.6-1.7× with the denoisers in
    bf16, and train at 0.57 s a step (bf16, batch 8 of 96²); four iterations of four CG steps,
    fine-tuned, cost 1.7× in float32 but lost 0.3 to 2.1 dB. A blur's data steps run by scipy's FFT where no gradient is
    asked (``Blur.for_solver``): by torch's FFT one request ran at 1.39× the UNet instead of 1.66× by
    convolution, but two at once took 2.3× the time of two by convolution (its thread teams contend).
    """

    knows_operator = True  # the training loop, the engine and Inspect hand it the operator
    # Trained under bf16 autocast (``--amp``); at inference the engine runs it in bf16 only where bf16 is native and its
    # checkpoint's held-out PSNR moves by at most 0.05 dB (``Engine.runs_bf16``, the manifest's ``bf16``), the denoisers
    # in bf16 and the data steps in float32. On a 2-core AVX512-BF16 CPU that took a 256² image from 2.3 to 1.6-1.7
    # times the UNet's time, for 0.01 to 0.11 dB of held-out PSNR at the lecture's and the five off-course settings.

    def __init__(self, iterations: int = 5, channels: int = 24, cg_steps: int = 5, lam: float = 0.05):
        super().__init__()
        self.cg_steps = cg_steps
        self.denoisers = nn.ModuleList(Denoiser(channels) for _ in range(iterations))
        self.log_lam = nn.Parameter(torch.full((iterations + 1,), math.log(lam)))  # λ_0 … λ_K, kept positive

    def bind(self, operator: Any) -> UnrolledNet:
        """Keep ``operator`` for calls without one, ``model(y_delta)``: for tools written for end-to-end networks
        (Inspect's hooks and its receptive field's backward pass), on a private copy of the model."""
        self.bound_operator = operator
        return self

    def _operator(self, operator: Any) -> Any:
        operator = operator if operator is not None else getattr(self, "bound_operator", None)
        if operator is None:
            raise ValueError("the unrolled network needs the operator: model(y_delta, operator)")
        return operator.for_solver() if hasattr(operator, "for_solver") else operator  # a blur: by scipy's FFT

    def first_estimate(self, y_delta: torch.Tensor, operator: Any = None, adjoint_y: torch.Tensor | None = None) -> torch.Tensor:
        """x_0: the regularised data step from the measurement (from its FBP for CT), what the first denoiser sees."""
        operator = self._operator(operator)
        with torch.autocast(y_delta.device.type, enabled=False):  # the FBP in float32, as the data steps
            if hasattr(operator, "fbp"):
                start = operator.fbp(y_delta.float())
            else:  # a blur; one whose unknown is larger than the measurement (``SceneBlur``) offers its own start
                start = operator.start(y_delta) if hasattr(operator, "start") else y_delta
        return data_step(operator, y_delta, start, self.log_lam[0].exp(), self.cg_steps, adjoint_y)

    def iterates(self, y_delta: torch.Tensor, operator: Any = None) -> list[torch.Tensor]:
        """The estimates x_0 (``first_estimate``) … x_K (the result)."""
        operator = self._operator(operator)
        lam = self.log_lam.exp()
        with torch.autocast(y_delta.device.type, enabled=False):
            adjoint_y = operator.adjoint(y_delta.float())  # Kᵀ y_delta, the same in every data step
        x = self.first_estimate(y_delta, operator, adjoint_y)
        out = [x]
        for k, denoise in enumerate(self.denoisers, start=1):
            x = data_step(operator, y_delta, denoise(x.to(y_delta.dtype)), lam[k], self.cg_steps, adjoint_y)
            out.append(x)
        return out

    def forward(self, y_delta: torch.Tensor, operator: Any = None) -> torch.Tensor:
        return self.iterates(y_delta, operator)[-1]


@register_model(
    "unrolled",
    label="Unrolled (knows K)",
    display_name="UnrolledNet",
    description="beyond the lecture: learned denoisers between exact data steps that use K (unrolled HQS)",
    group="beyond",
)
def unrolled(**kwargs) -> UnrolledNet:
    return UnrolledNet(**kwargs)
