"""The lecture's plain convolutional networks: SimpleCNN, ResCNN, and the 16-filter loss-study CNN.

Three 3×3 convolutions with ReLUs between them. The attribute names ``conv1``, ``conv2``, ``conv3`` are
the lecture's, so its published ``CNN.pth`` and ``ResCNN.pth`` load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from recon_demo.models._registry import register_model


class SimpleCNN(nn.Module):
    """conv1 → ReLU → conv2 → ReLU → conv3, no final activation (learns the image itself)."""

    residual = False  # the output is the image itself

    def __init__(self, in_ch: int = 1, out_ch: int = 1, n_filters: int = 32, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(in_ch, n_filters, kernel_size, padding=pad)
        self.conv2 = nn.Conv2d(n_filters, n_filters, kernel_size, padding=pad)
        self.conv3 = nn.Conv2d(n_filters, out_ch, kernel_size, padding=pad)
        self.relu = nn.ReLU(inplace=True)

    def spatial_chain(self) -> list[tuple[int, int]]:
        """(kernel, stride) of each layer: a plain chain, so the lecture's receptive-field formula applies."""
        return [(conv.kernel_size[0], conv.stride[0]) for conv in (self.conv1, self.conv2, self.conv3)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.features(x))


class ResCNN(SimpleCNN):
    """The same three convolutions learning the residual: ``tanh(conv3(h)) + y_delta``."""

    residual = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv3(self.features(x))) + x


@register_model(
    "cnn",
    label="CNN",
    display_name="SimpleCNN",
    description="Three 3×3 convolutions (32 filters) mapping the blurred image to the sharp one.",
)
def simple_cnn(**kwargs) -> SimpleCNN:
    return SimpleCNN(**kwargs)


@register_model(
    "rescnn",
    label="ResCNN",
    display_name="ResCNN",
    description="SimpleCNN that learns only the correction: x_rec = y_delta + tanh(CNN(y_delta)).",
)
def res_cnn(**kwargs) -> ResCNN:
    return ResCNN(**kwargs)


@register_model(
    "loss_study_cnn",
    label="LossStudyCNN",
    display_name="LossStudyCNN",
    description="The lecture's 16-filter three-layer CNN used to compare training losses.",
    group="loss_study",
)
def loss_study_cnn(**kwargs) -> SimpleCNN:
    kwargs.setdefault("n_filters", 16)
    return SimpleCNN(**kwargs)
