"""Train the LSTM forecaster through the shared core and forecast the test windows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import TensorDataset

from medlstm.core.evaluation import history_to_mlflow, training_curves_figure
from medlstm.core.params import parsed
from medlstm.core.training import (
    StepOutput,
    TrainingParams,
    fit,
    predict,
    seed_everything,
)
from medlstm.models.forecaster import LSTMForecaster
from medlstm.pipelines.lstm_forecast.windowing import Windows

STRATEGIES = ("direct", "recursive")


def strategy_of(params: dict[str, Any]) -> str:
    """The multi-step strategy, validated: ``direct`` (one output per step) or ``recursive``."""
    strategy = params.get("strategy", "direct")
    if strategy not in STRATEGIES:
        raise ValueError(
            f"lstm_forecast.forecast.strategy must be one of {STRATEGIES}, got {strategy!r}."
        )
    return strategy


def mse_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> StepOutput:
    """Mean squared error of ``model(x)`` against ``y`` for a batch ``(x, y)``."""
    x, y = batch
    return StepOutput(nn.functional.mse_loss(model(x), y))


def _scaled_dataset(
    windows: Windows, scaler: dict[str, float], n_targets: int
) -> TensorDataset:
    def scale(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(
            ((a - scaler["mean"]) / scaler["std"]).astype(np.float32)
        )

    return TensorDataset(scale(windows.x), scale(windows.y[:, :n_targets]))


def train_forecaster(
    windows: dict[str, Windows],
    scaler: dict[str, float],
    model_params: dict[str, Any],
    forecast_params: dict[str, Any],
    training_params: dict[str, Any],
) -> tuple[LSTMForecaster, dict[str, list[dict]], Figure, dict[str, Any]]:
    """Fit the LSTM on scaled training windows, early-stopping on the validation windows.

    A ``direct`` model predicts all ``horizon`` steps at once; a ``recursive`` one is
    trained on the first step only and rolled forward at forecast time.

    Returns:
        The model (best validation epoch), its per-epoch history for MLflow, the
        training-curves figure and a training summary.
    """
    params = parsed(TrainingParams, training_params, "lstm_forecast.training")
    horizon = windows["train"].y.shape[1]
    n_targets = horizon if strategy_of(forecast_params) == "direct" else 1
    seed_everything(params.seed)
    model = LSTMForecaster(horizon=n_targets, **model_params)
    result = fit(
        model,
        _scaled_dataset(windows["train"], scaler, n_targets),
        _scaled_dataset(windows["val"], scaler, n_targets),
        params,
        batch_loss=mse_loss,
    )
    summary = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "best_val_loss": min(r["val_loss"] for r in result.history),
        "n_parameters": sum(p.numel() for p in result.model.parameters()),
        "n_train_windows": len(windows["train"]),
        "n_val_windows": len(windows["val"]),
    }
    figure = training_curves_figure(
        result.history, "LSTM forecaster: MSE on scaled values"
    )
    return result.model, history_to_mlflow(result.history), figure, summary


def forecast_lstm(
    model: LSTMForecaster, windows: dict[str, Windows], scaler: dict[str, float]
) -> np.ndarray:
    """Forecast every test window ``horizon`` steps ahead, in the series' own units, (n, horizon)."""
    test = windows["test"]
    steps = test.y.shape[1]
    scaled = _scaled_dataset(test, scaler, steps)
    (out,) = predict(
        model,
        scaled,
        device="cpu",
        forward=lambda m, batch: m.forecast(batch[0], steps),
    )
    return out.astype(np.float64) * scaler["std"] + scaler["mean"]
