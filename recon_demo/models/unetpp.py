"""The lecture's compact UNet++: two levels of nested, densely connected skip pathways.

Nodes ``x{i}_{j}`` at depth i and nesting j; upsampling is bilinear ×2 (no parameters), so the decoder
nodes see every shallower node of their row. Sides that are not multiples of 4 (two poolings) run as crops
flush with the image's edges (``_padding.at_multiple``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from recon_demo.models._padding import at_multiple
from recon_demo.models._registry import register_model
from recon_demo.models.unet import DoubleConv


class UNetPlusPlus(nn.Module):
    def __init__(self, in_ch: int = 1, out_ch: int = 1, base_ch: int = 32):
        super().__init__()
        c = base_ch
        self.pool = nn.MaxPool2d(2)
        self.conv0_0 = DoubleConv(in_ch, c)
        self.conv1_0 = DoubleConv(c, 2 * c)
        self.conv2_0 = DoubleConv(2 * c, 4 * c)
        self.conv0_1 = DoubleConv(c + 2 * c, c)
        self.conv1_1 = DoubleConv(2 * c + 4 * c, 2 * c)
        self.conv0_2 = DoubleConv(c + c + 2 * c, c)
        self.out_conv = nn.Conv2d(c, out_ch, 1)

    @staticmethod
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    # under bf16 autocast (``serving.engine.keep_float32``): the output convolution in float32, 0.05 % of the FLOPs
    float32_layers = ("out_conv",)
    size_multiple = 4  # two poolings: other sizes run as crops flush with the image's edges (``at_multiple``)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return at_multiple(self._forward, x, self.size_multiple)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x0_0 = self.conv0_0(x)  # (N, c, H, W)
        x1_0 = self.conv1_0(self.pool(x0_0))  # (N, 2c, H/2, W/2)
        x2_0 = self.conv2_0(self.pool(x1_0))  # (N, 4c, H/4, W/4)
        x0_1 = self.conv0_1(torch.cat([x0_0, self.up(x1_0)], 1))
        x1_1 = self.conv1_1(torch.cat([x1_0, self.up(x2_0)], 1))
        x0_2 = self.conv0_2(torch.cat([x0_0, x0_1, self.up(x1_1)], 1))
        return self.out_conv(x0_2)


@register_model(
    "unetpp",
    label="UNet++",
    display_name="UNetPlusPlus",
    description="Nested UNet: dense skip pathways between encoder and decoder, bilinear upsampling.",
)
def unet_plus_plus(**kwargs) -> UNetPlusPlus:
    return UNetPlusPlus(**kwargs)
