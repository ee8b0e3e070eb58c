"""The U-Net decoder, shared by the plain, attention and ImageNet-encoder U-Nets."""

from animalseg.models.decoders.unet.decoder import UPSAMPLING, unet_decoder

__all__ = ["UPSAMPLING", "unet_decoder"]
