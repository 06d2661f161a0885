"""Code that derives the small real-data excerpts shipped under ``data/01_raw``."""
