"""Training data preparation, losses and the resumable training loop."""
