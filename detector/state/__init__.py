"""Checkpoints of feature and model state, with the offsets they reflect."""
