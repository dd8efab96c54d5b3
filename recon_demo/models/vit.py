"""The lecture's Vision Transformer reconstructor.

The image is cut into P×P patches, each embedded to d numbers; a learned positional embedding is added;
four pre-norm transformer blocks let every patch attend to every other (cost quadratic in the number of
patches); a transposed-convolution decoder turns the tokens back into pixels, added to the input
(residual learning). Sides that are not multiples of P run as crops flush with the image's edges
(``_padding.at_multiple``); the positional embedding is interpolated to another token grid.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from recon_demo.models._padding import at_multiple
from recon_demo.models._registry import register_model


class TransformerBlock(nn.Module):
    """Pre-norm block: z + MHA(LN(z)), then z + MLP(LN(z))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.norm1(z)
        z = z + self.attn(h, h, h, need_weights=False)[0]
        return z + self.mlp(self.norm2(z))


class ViTReconstructor(nn.Module):
    residual = True  # output = y_delta + decoder(tokens)

    def __init__(
        self,
        img_size: int = 256,
        patch_size: int = 8,
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_dim: int = 256,
        in_ch: int = 1,
        out_ch: int = 1,
    ):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.patch_embed = nn.Conv2d(in_ch, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, embed_dim))
        self.blocks = nn.ModuleList(TransformerBlock(embed_dim, num_heads, mlp_dim) for _ in range(depth))
        d = embed_dim
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(d, d // 2, patch_size, stride=patch_size),
            nn.ReLU(inplace=True),
            nn.Conv2d(d // 2, d // 2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d // 2, d // 4, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d // 4, out_ch, 1),
        )

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """The learned embedding, bicubically resized when the token grid is not the training grid."""
        if (gh, gw) == (self.grid, self.grid):
            return self.pos_embed
        d = self.pos_embed.shape[-1]
        grid = self.pos_embed.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, d, g, g)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, gh * gw, d)  # (1, N, d)

    @property
    def size_multiple(self) -> int:
        """The patch side: other sizes run as crops flush with the image's edges (``at_multiple``)."""
        return self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return at_multiple(self._forward, x, self.size_multiple)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x)  # (B, d, gh, gw)
        b, d, gh, gw = t.shape
        z = t.flatten(2).transpose(1, 2) + self.position_embedding(gh, gw)  # (B, N, d)
        for block in self.blocks:
            z = block(z)
        t = z.transpose(1, 2).reshape(b, d, gh, gw)  # (B, d, gh, gw)
        return x + self.decoder(t)


@register_model(
    "vit",
    label="ViT",
    display_name="ViTReconstructor",
    description="Vision Transformer: 8×8 patches attend to each other globally; residual output.",
)
def vit(**kwargs) -> ViTReconstructor:
    return ViTReconstructor(**kwargs)
