"""The DeepLabV3+ decoder: ASPP on the deepest level plus the low-level skip."""

from animalseg.models.decoders.deeplabv3plus.decoder import deeplabv3plus_decoder

__all__ = ["deeplabv3plus_decoder"]
