"""Any H×W for the pooling and patching networks, whose layers need sides that are a multiple of 2, 4 or 8.

``at_multiple`` runs such a network on crops whose sides are multiples, each flush with an edge of the image, and
assembles the result: the networks learned from crops whose edges are the measurement's edges, where the blur
fades into the zero padding, and that is what each crop shows them at the image's edges. Padding the measurement
at the bottom and right (by reflection, as this module once did) put that fade inside the network's input, where
it reads as a dark line that the network then draws (on `clock`, 256×341: a line 0.11 darker along the right edge;
over 31 crops of training images at 256×341, 251×256 and 250×250 the UNet gained 3.6 dB from the crops, and lost
6.6 dB with zero padding instead).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def at_multiple(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``forward`` (which needs H and W multiples of ``multiple``) applied to ``x`` (N, C, H, W) of any size.

    A side that is a multiple is used whole. Otherwise two crops of the largest multiple that fits cover it, one
    flush with each end, and each half of the output comes from the crop that holds that half's image edge (up to
    four crops when neither side is a multiple; they are offset by less than ``multiple``, so each crop's cut edge
    lies beyond the far half, which the other crop gives). A side shorter than ``multiple`` is padded by
    replication instead, and cropped back.
    """
    h, w = x.shape[-2:]
    ph, pw = ((-n) % multiple if n < multiple else 0 for n in (h, w))
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    H, W = x.shape[-2:]
    ch, cw = H - H % multiple, W - W % multiple
    if (ch, cw) == (H, W):
        return forward(x)[..., :h, :w]
    rows = [torch.cat([forward(x[..., top : top + ch, left : left + cw])[..., a - top : b - top, c - left : d - left]
                       for left, c, d in _spans(W, cw)], dim=-1)
            for top, a, b in _spans(H, ch)]  # fmt: skip
    return torch.cat(rows, dim=-2)[..., :h, :w]


def _spans(n: int, crop: int) -> list[tuple[int, int, int]]:
    """Along a side of ``n`` pixels, crops of ``crop``: (where one starts, the output span it gives: start, end).
    Two crops flush with the ends give a half each; each half fits in its crop, as n = crop + r with the remainder
    r < multiple ≤ crop, so n < 2 crop."""
    if crop == n:
        return [(0, 0, n)]
    return [(0, 0, n // 2), (n - crop, n // 2, n)]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``x`` (N, C, H, W) at the bottom and right to a multiple of ``multiple``; returns it and the
    original ``(H, W)`` for ``crop_to``. For an input without the measurement's fading edges (the unrolled network's
    denoisers see an estimate of the image); replication where a side is not longer than the padding."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo ``pad_to_multiple``."""
    return x[..., : size[0], : size[1]]
