"""The lecture's UNet family: UNet, Residual UNet and Attention UNet, as one class with two switches.

An encoder of three 2×2 max-poolings (widths c, 2c, 4c, 8c with c = 32), a decoder of transposed
convolutions with skip connections, and a 1×1 output convolution; no global residual and no final
activation. ``block="residual"`` swaps every DoubleConv for a ResidualDoubleConv; ``attention=True``
gates each skip connection with the decoder's features before concatenation. Inputs of any H×W: sides that are
not multiples of 8 run as crops flush with the image's edges (``_padding.at_multiple``).

For computed tomography, ``fbp_resunet`` is the Residual UNet with a global skip (``global_residual``):
it refines a filtered back-projection by learning the correction ``x_true − x_fbp``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from recon_demo.models._padding import at_multiple
from recon_demo.models._registry import register_model


class DoubleConv(nn.Module):
    """conv in→out, ReLU, conv out→out, ReLU (3×3, padding 1)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResidualDoubleConv(nn.Module):
    """ReLU(conv2(ReLU(conv1(x))) + shortcut(x)); the shortcut is a 1×1 conv when the width changes."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + self.shortcut(x))


BLOCKS: dict[str, type[nn.Module]] = {"double": DoubleConv, "residual": ResidualDoubleConv}


class Down(nn.Module):
    """2×2 max-pool, then a block in→out."""

    def __init__(self, in_ch: int, out_ch: int, block: type[nn.Module] = DoubleConv):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = block(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class AttentionGate(nn.Module):
    """Scales a skip connection by α = sigmoid(psi(ReLU(W_g g + W_x skip))), one weight per pixel."""

    def __init__(self, gate_ch: int, skip_ch: int, inter_ch: int):
        super().__init__()
        self.W_g = nn.Conv2d(gate_ch, inter_ch, 1)
        self.W_x = nn.Conv2d(skip_ch, inter_ch, 1)
        self.psi = nn.Conv2d(inter_ch, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def attention(self, g: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The gate's map α, shape (N, 1, H, W): what the Inspect tab shows."""
        return torch.sigmoid(self.psi(self.relu(self.W_g(g) + self.W_x(skip))))

    def forward(self, g: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return skip * self.attention(g, skip)


class Up(nn.Module):
    """ConvTranspose2d in→out (2×2, stride 2), concatenate [skip, upsampled], block(out + skip → out)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, block: type[nn.Module] = DoubleConv, attention: bool = False):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        self.gate = AttentionGate(out_ch, skip_ch, out_ch) if attention else None
        self.conv = block(out_ch + skip_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if self.gate is not None:
            skip = self.gate(x, skip)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """UNet(base_ch=32) of the lecture; see the module docstring for the two variants."""

    def __init__(
        self,
        in_ch: int = 1,
        out_ch: int = 1,
        base_ch: int = 32,
        block: str = "double",
        attention: bool = False,
        global_residual: bool = False,
    ):
        super().__init__()
        self.global_residual = global_residual  # output x + UNet(x): learn the correction (no parameters)
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
        Block = BLOCKS[block]
        c = base_ch
        self.enc1 = Block(in_ch, c)
        self.enc2 = Down(c, 2 * c, Block)
        self.enc3 = Down(2 * c, 4 * c, Block)
        self.bottleneck = Down(4 * c, 8 * c, Block)
        self.dec3 = Up(8 * c, 4 * c, 4 * c, Block, attention)
        self.dec2 = Up(4 * c, 2 * c, 2 * c, Block, attention)
        self.dec1 = Up(2 * c, c, c, Block, attention)
        self.out_conv = nn.Conv2d(c, out_ch, 1)

    # under bf16 autocast (``serving.engine.keep_float32``): the output convolution in float32, 0.05 % of the FLOPs
    float32_layers = ("out_conv",)
    size_multiple = 8  # three poolings: other sizes run as crops flush with the image's edges (``at_multiple``)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return at_multiple(self._forward, x, self.size_multiple)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # (N, c, H, W)
        e2 = self.enc2(e1)  # (N, 2c, H/2, W/2)
        e3 = self.enc3(e2)  # (N, 4c, H/4, W/4)
        b = self.bottleneck(e3)  # (N, 8c, H/8, W/8)
        d = self.dec1(self.dec2(self.dec3(b, e3), e2), e1)  # (N, c, H, W)
        out = self.out_conv(d)
        return out + x if self.global_residual else out


@register_model(
    "unet",
    label="UNet",
    display_name="UNet",
    description="Encoder-decoder with skip connections (base width 32): sees the whole image at four scales.",
)
def unet(**kwargs) -> UNet:
    return UNet(**kwargs)


@register_model(
    "resunet",
    label="Residual UNet",
    display_name="ResidualUNet",
    description="UNet whose double convolutions carry a residual shortcut (1×1 conv when the width changes).",
)
def residual_unet(**kwargs) -> UNet:
    return UNet(block="residual", **kwargs)


@register_model(
    "attunet",
    label="Attention UNet",
    display_name="AttentionUNet",
    description="UNet whose skip connections are weighted per pixel by attention gates driven by the decoder.",
)
def attention_unet(**kwargs) -> UNet:
    return UNet(attention=True, **kwargs)


@register_model(
    "fbp_resunet",
    label="FBP + Residual UNet",
    display_name="ResidualUNet",
    description="CT: the Residual UNet refining a filtered back-projection, learning the correction (x_fbp + UNet(x_fbp)).",
    group="ct",
)
def fbp_residual_unet(**kwargs) -> UNet:
    return UNet(block="residual", **({"global_residual": True} | kwargs))
