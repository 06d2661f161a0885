"""Project pipelines: an explicit registry, so a missing or broken pipeline fails loudly."""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

from medlstm.tracking.pipeline_ml import sliceable

PIPELINES = (
    "ecg_autoencoder",
    "brain_tumor_bilstm",
    "smri_cnn_lstm",
    "lstm_scratch",
    "lstm_forecast",
    # Optuna studies of the ECG autoencoder and 1D-CNN (docs/scaling.md).
    "ecg_tuning",
)
# Extra entry points of a pipeline package: registered name -> (package, create_pipeline kwargs).
VARIANTS = {
    # Classify every beat of a new WFDB record with the trained model.
    "ecg_autoencoder_inference": ("ecg_autoencoder", {"variant": "inference"}),
    # The forecaster on any CSV (time column + value column), declared in the catalog.
    "lstm_forecast_csv": ("lstm_forecast", {"source": "csv"}),
}
DEFAULT_PIPELINE = "ecg_autoencoder"


def _create(package: str, **kwargs) -> Pipeline:
    # Training pipelines that log a pyfunc model still run in parts (--nodes,
    # --from-nodes, --to-nodes): see medlstm.tracking.pipeline_ml.
    return sliceable(
        importlib.import_module(f"medlstm.pipelines.{package}").create_pipeline(
            **kwargs
        )
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Map each pipeline name to its ``Pipeline``; ``__default__`` is the main job.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = {name: _create(name) for name in PIPELINES}
    pipelines |= {
        name: _create(pkg, **kwargs) for name, (pkg, kwargs) in VARIANTS.items()
    }
    pipelines["__default__"] = pipelines[DEFAULT_PIPELINE]
    return pipelines
