"""Shared core: one training loop, one evaluation module, safe model persistence."""
