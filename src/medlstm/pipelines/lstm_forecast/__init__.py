"""lstm_forecast: the textbook LSTM forecaster of a univariate series, against baselines."""

from medlstm.pipelines.lstm_forecast.pipeline import create_pipeline

__all__ = ["create_pipeline"]
