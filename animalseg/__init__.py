"""animalseg: Hydra-configured semantic segmentation experiments with U-Net variants."""

__version__ = "0.1.0"
