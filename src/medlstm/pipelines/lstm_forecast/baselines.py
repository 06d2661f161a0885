"""Baselines scored on exactly the LSTM's test windows."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression

from medlstm.pipelines.lstm_forecast.training import strategy_of
from medlstm.pipelines.lstm_forecast.windowing import Windows


def naive_forecast(x: np.ndarray, steps: int) -> np.ndarray:
    """Last value repeated: (n, lookback) -> (n, steps)."""
    return np.repeat(x[:, -1:], steps, axis=1)


def mean_forecast(x: np.ndarray, steps: int) -> np.ndarray:
    """Mean of the lookback repeated: (n, lookback) -> (n, steps)."""
    return np.repeat(x.mean(axis=1, keepdims=True), steps, axis=1)


def fit_autoregression(train: Windows, strategy: str) -> LinearRegression:
    """Least-squares AR(lookback) on the training windows: all steps (direct) or the next one."""
    targets = train.y if strategy == "direct" else train.y[:, 0]
    return LinearRegression().fit(train.x, targets)


def autoregression_forecast(
    model: LinearRegression, x: np.ndarray, steps: int
) -> np.ndarray:
    """(n, lookback) -> (n, steps), feeding predictions back when the model has fewer outputs."""
    window, chunks, produced = x, [], 0
    while produced < steps:
        step = model.predict(window).reshape(len(x), -1)
        chunks.append(step)
        produced += step.shape[1]
        window = np.concatenate([window, step], axis=1)[:, -x.shape[1] :]
    return np.concatenate(chunks, axis=1)[:, :steps]


def forecast_baselines(
    windows: dict[str, Windows], forecast_params: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Naive, lookback-mean and linear-AR forecasts of the test windows, each (n, horizon).

    The AR model sees the same lookback as the LSTM, is fitted on the same training
    windows and uses the same multi-step strategy.
    """
    test = windows["test"]
    steps = test.y.shape[1]
    ar = fit_autoregression(windows["train"], strategy_of(forecast_params))
    return {
        "naive": naive_forecast(test.x, steps),
        "mean": mean_forecast(test.x, steps),
        "ar": autoregression_forecast(ar, test.x, steps),
    }
