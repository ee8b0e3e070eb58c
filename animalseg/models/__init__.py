"""Segmentation models: an encoder, a U-Net decoder and the two heads.

Importing the package registers the model classes, which ``keras.models.load_model`` needs to
rebuild a checkpoint.
"""

from animalseg.models.base import SegmentationModel
from animalseg.models.unet import AttentionUNet, EncoderUNet, UNet

__all__ = ["AttentionUNet", "EncoderUNet", "SegmentationModel", "UNet"]
