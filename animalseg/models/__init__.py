"""Segmentation models: an encoder, a U-Net decoder and the two heads."""
