"""The lecture's architectures, one file per family, registered by name.

Import order fixes the registry's order, which is the lecture's: CNN, ResCNN, UNet, Residual UNet,
Attention UNet, UNet++, ViT (then the loss-study CNN).
"""

from recon_demo.models import cnn, unet, unetpp, vit  # noqa: F401  (registration happens on import)
from recon_demo.models._registry import (
    ModelInfo,
    count_parameters,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = ["ModelInfo", "count_parameters", "create_model", "list_models", "model_info", "register_model"]
