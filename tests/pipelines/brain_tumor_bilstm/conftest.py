"""Fixtures for the brain_tumor_bilstm tests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.pipelines.brain_tumor_bilstm.factories import PARAMS_FILE


@pytest.fixture
def params() -> dict[str, Any]:
    """The shipped base parameters of the pipeline (a fresh copy per test)."""
    return yaml.safe_load(PARAMS_FILE.read_text())["brain_tumor_bilstm"]
