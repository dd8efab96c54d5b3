"""The lecture's architectures, one file per family, registered by name.

Import order fixes the registry's order; within the group "reconstruction" it is the lecture's: CNN, ResCNN, UNet,
Residual UNet, Attention UNet, UNet++, ViT. The group "beyond" holds the unrolled network that knows K.
"""

from recon_demo.models import cnn, unet, unetpp, unrolled, vit  # noqa: F401  (registration happens on import)
from recon_demo.models._registry import (
    ModelInfo,
    count_parameters,
    create_model,
    is_handed_operator,
    knows_operator,
    list_models,
    model_info,
    register_model,
    size_multiple,
)

__all__ = ["ModelInfo", "count_parameters", "create_model", "is_handed_operator", "knows_operator", "list_models", "model_info", "register_model", "size_multiple"]
