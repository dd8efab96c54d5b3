"""Noise: the separate step after the operator, ``y_delta = noise(K x)``. The lecture's is relative to the norm of
``K x`` (``add_relative_noise``): both tasks use it, on the blurred image and on the sinogram."""

from __future__ import annotations

import torch

from recon_demo.validation import check_finite


def _standard_normal_like(y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(y)  # the global RNG, exactly as the lecture's protocol draws it
    e = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=generator.device)
    return e.to(y.device)


def _per_image_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))  # (N, 1, 1, 1)


def add_relative_noise(y: torch.Tensor, delta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The lecture's noise: ``y + e / ||e|| · ||y|| · delta`` with ``e ~ N(0, I)``.

    Norms are taken per image, so each image in a batch gets noise of relative level ``delta``. (The course
    library normalises over the whole batch at once; for a single image, as in its evaluation, the two
    agree.) Without a ``generator`` the global torch RNG is used, which is what the lecture's protocol
    seeds with ``torch.manual_seed``.
    """
    delta = _check_noise("relative noise level", delta)
    if delta == 0:
        return y.clone()
    e = _standard_normal_like(y, generator)
    return y + e / _per_image_norm(e).clamp_min(1e-12) * _per_image_norm(y) * delta


def _check_noise(name: str, value: float) -> float:
    value = check_finite(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value

