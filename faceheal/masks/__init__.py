"""Damage masks: supplied by the user, generated for training/evaluation, or detected."""
