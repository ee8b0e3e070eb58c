"""The Keras training loop: evaluation, checkpoints, schedules and the trainer."""
