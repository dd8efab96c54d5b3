"""Padding to a multiple, so that pooling and patching networks accept any H×W and give it back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``x`` (N, C, H, W) at the bottom and right to a multiple of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` to crop back to. Reflection (rather than
    zeros) keeps the padded border looking like image, so the network sees no artificial edge; it needs
    ``H, W > pad``, which holds for every input of at least ``multiple`` pixels a side, and falls back to
    replication below that.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo ``pad_to_multiple``."""
    return x[..., : size[0], : size[1]]
