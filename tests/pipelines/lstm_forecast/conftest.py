"""Fixtures for the lstm_forecast tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def params() -> dict:
    """The base parameters of the pipeline, as Kedro would pass them."""
    path = PROJECT_ROOT / "conf" / "base" / "parameters_lstm_forecast.yml"
    return yaml.safe_load(path.read_text())["lstm_forecast"]
