"""The U-Net++ decoder (Zhou et al., 2018): nested, densely connected skips."""

from animalseg.models.decoders.unetplusplus.decoder import unetplusplus_decoder

__all__ = ["unetplusplus_decoder"]
