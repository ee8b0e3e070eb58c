"""Segmentation metrics from one confusion matrix."""
