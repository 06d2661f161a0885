"""Project pipelines: an explicit registry, so a missing or broken pipeline fails loudly."""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

PIPELINES = (
    "ecg_autoencoder",
    "brain_tumor_bilstm",
    "smri_cnn_lstm",
    "lstm_scratch",
    "lstm_forecast",
)
DEFAULT_PIPELINE = "ecg_autoencoder"


def register_pipelines() -> dict[str, Pipeline]:
    """Map each pipeline name to its ``Pipeline``; ``__default__`` is the main job.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = {
        name: importlib.import_module(f"medlstm.pipelines.{name}").create_pipeline()
        for name in PIPELINES
    }
    # The forecaster on any CSV (time column + value column), declared in the catalog.
    pipelines["lstm_forecast_csv"] = importlib.import_module(
        "medlstm.pipelines.lstm_forecast"
    ).create_pipeline(source="csv")
    pipelines["__default__"] = pipelines[DEFAULT_PIPELINE]
    return pipelines
