"""Flax NNX models: each returns (regression output, classification logits or None)."""
