"""Synthetic stand-ins for data that users must obtain themselves."""
