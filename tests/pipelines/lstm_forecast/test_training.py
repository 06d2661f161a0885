"""The forecaster module, its training through the shared core, and the baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlstm.core.persistence import load_model, save_model
from medlstm.models.forecaster import LSTMForecaster
from medlstm.pipelines.lstm_forecast.baselines import (
    autoregression_forecast,
    fit_autoregression,
    forecast_baselines,
    mean_forecast,
    naive_forecast,
)
from medlstm.pipelines.lstm_forecast.training import (
    forecast_lstm,
    strategy_of,
    train_forecaster,
)
from medlstm.pipelines.lstm_forecast.windowing import Windows

FAST_TRAINING = {
    "epochs": 3,
    "batch_size": 32,
    "lr": 0.01,
    "early_stopping_patience": None,
    "seed": 0,
    "device": "cpu",
    "show_progress": False,
}


def sine_windows(
    n: int, lookback: int = 12, horizon: int = 3, seed: int = 0
) -> Windows:
    """Windows of a noiseless sine with a random phase per window."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, (n, 1)) + np.arange(lookback + horizon) * 0.4
    values = 800 + 100 * np.sin(t)
    return Windows(
        x=values[:, :lookback],
        y=values[:, lookback:],
        series_id=np.full(n, "s", dtype=object),
        target_time=np.tile(
            np.arange(lookback, lookback + horizon, dtype=float), (n, 1)
        ),
    )


@pytest.fixture(scope="module")
def windows() -> dict[str, Windows]:
    return {
        "train": sine_windows(256),
        "val": sine_windows(64, seed=1),
        "test": sine_windows(64, seed=2),
    }


SCALER = {"mean": 800.0, "std": 100.0}


class TestLSTMForecaster:
    def test_direct_output_shape(self):
        model = LSTMForecaster(hidden_size=8, horizon=4)
        assert model(torch.zeros(5, 10)).shape == (5, 4)

    def test_recursive_forecast_feeds_predictions_back(self):
        torch.manual_seed(0)
        model = LSTMForecaster(hidden_size=8, horizon=1).eval()
        x = torch.randn(3, 6)
        expected, window = [], x
        with torch.no_grad():
            for _ in range(4):
                step = model(window)
                expected.append(step)
                window = torch.cat([window[:, 1:], step], dim=1)
        torch.testing.assert_close(model.forecast(x, 4), torch.cat(expected, dim=1))

    def test_direct_forecast_is_the_head_output(self):
        model = LSTMForecaster(hidden_size=8, horizon=5).eval()
        x = torch.randn(2, 6)
        with torch.no_grad():
            torch.testing.assert_close(model.forecast(x, 3), model(x)[:, :3])

    def test_saved_and_loaded_safely(self, tmp_path):
        model = LSTMForecaster(hidden_size=8, horizon=2)
        save_model(model, tmp_path / "m.pt")
        loaded = load_model(tmp_path / "m.pt")
        assert isinstance(loaded, LSTMForecaster)
        assert loaded.config == model.config
        x = torch.randn(2, 7)
        torch.testing.assert_close(loaded(x), model.eval()(x))

    def test_invalid_size(self):
        with pytest.raises(ValueError, match=">= 1"):
            LSTMForecaster(horizon=0)


class TestTraining:
    @pytest.mark.parametrize(("strategy", "outputs"), [("direct", 3), ("recursive", 1)])
    def test_strategy_sets_the_output_size(self, windows, strategy, outputs):
        model, history, figure, summary = train_forecaster(
            windows, SCALER, {"hidden_size": 8}, {"strategy": strategy}, FAST_TRAINING
        )
        assert model.horizon == outputs
        assert summary["epochs_run"] == 3
        assert [p["step"] for p in history["val_loss"]] == [1, 2, 3]
        assert figure.axes

    def test_learns_a_sine_better_than_naive(self, windows):
        model, history, _, _ = train_forecaster(
            windows,
            SCALER,
            {"hidden_size": 16},
            {"strategy": "direct"},
            {**FAST_TRAINING, "epochs": 6},
        )
        losses = [p["value"] for p in history["val_loss"]]
        assert losses[-1] < losses[0]
        forecast = forecast_lstm(model, windows, SCALER)
        assert forecast.shape == windows["test"].y.shape
        lstm_mae = np.abs(forecast - windows["test"].y).mean()
        naive_mae = np.abs(
            naive_forecast(windows["test"].x, 3) - windows["test"].y
        ).mean()
        assert lstm_mae < naive_mae

    def test_forecast_is_in_original_units(self, windows):
        model = LSTMForecaster(hidden_size=4, horizon=3)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        # A zero network predicts 0 in scaled units, i.e. the training mean.
        np.testing.assert_allclose(forecast_lstm(model, windows, SCALER), 800.0)

    def test_unknown_strategy(self):
        with pytest.raises(ValueError, match="direct"):
            strategy_of({"strategy": "dirct"})

    def test_bad_training_parameter_is_named(self, windows):
        with pytest.raises(ValueError, match="lstm_forecast.training.epoch"):
            train_forecaster(windows, SCALER, {}, {"strategy": "direct"}, {"epoch": 3})


class TestBaselines:
    def test_naive_and_mean(self):
        x = np.array([[1.0, 2.0, 6.0], [4.0, 4.0, 1.0]])
        np.testing.assert_array_equal(naive_forecast(x, 2), [[6, 6], [1, 1]])
        np.testing.assert_array_equal(mean_forecast(x, 2), [[3, 3], [3, 3]])

    @pytest.mark.parametrize("strategy", ["direct", "recursive"])
    def test_autoregression_recovers_a_linear_process(self, strategy):
        # y[t] = 0.6 y[t-1] - 0.3 y[t-2] + 10 + noise: its forecast is the noiseless recursion.
        rng = np.random.default_rng(0)
        series = np.full(3000, 14.0)
        for t in range(2, len(series)):
            series[t] = 0.6 * series[t - 1] - 0.3 * series[t - 2] + 10 + rng.normal()
        view = np.lib.stride_tricks.sliding_window_view(series, 8)
        n = len(view)
        train = Windows(view[:, :5], view[:, 5:], np.zeros(n), np.zeros((n, 3)))
        model = fit_autoregression(train, strategy)
        window = [12.0, 16.0, 13.0, 15.0, 14.0]
        for _ in range(3):
            window.append(0.6 * window[-1] - 0.3 * window[-2] + 10)
        forecast = autoregression_forecast(model, np.array([window[:5]]), 3)
        np.testing.assert_allclose(forecast[0], window[5:], atol=0.15)

    def test_forecast_baselines_cover_the_test_windows(self, windows):
        forecasts = forecast_baselines(windows, {"strategy": "direct"})
        assert set(forecasts) == {"naive", "mean", "ar"}
        for forecast in forecasts.values():
            assert forecast.shape == windows["test"].y.shape
        # A sine is linear-predictable: AR should be near exact, far better than naive.
        ar_mae = np.abs(forecasts["ar"] - windows["test"].y).mean()
        naive_mae = np.abs(forecasts["naive"] - windows["test"].y).mean()
        assert ar_mae < 0.01 * naive_mae
