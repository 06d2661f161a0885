"""Tests of the lstm_forecast pipeline."""
