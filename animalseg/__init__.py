"""animalseg: Hydra-configured semantic segmentation experiments with U-Net variants."""

import os

# TensorFlow's C++ info lines (oneDNN, CUDA probing) drown the run's own output; warnings stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
