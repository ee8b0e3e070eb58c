"""The Feature Pyramid Network decoder (Kirillov et al.'s panoptic FPN head for semantics)."""

from animalseg.models.decoders.fpn.decoder import fpn_decoder

__all__ = ["fpn_decoder"]
