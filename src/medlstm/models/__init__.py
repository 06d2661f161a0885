"""Model architectures, one module each; each registers itself for safe loading."""
