"""Experiment tracking (MLflow) and the plots it stores."""
