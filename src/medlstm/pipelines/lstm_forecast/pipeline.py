"""Wiring of lstm_forecast: source -> tidy series -> split -> windows -> LSTM and baselines -> report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from medlstm.core.wiring import group
from medlstm.pipelines.lstm_forecast.baselines import forecast_baselines
from medlstm.pipelines.lstm_forecast.ingestion import build_tachograms, csv_to_series
from medlstm.pipelines.lstm_forecast.reporting import (
    evaluate_forecasts,
    plot_forecasts,
    write_report,
)
from medlstm.pipelines.lstm_forecast.training import forecast_lstm, train_forecaster
from medlstm.pipelines.lstm_forecast.windowing import (
    fit_scaler,
    make_windows,
    split_series,
)

SOURCES = ("mitdb", "csv")


def _ingestion(source: str) -> list:
    """Either source's tidy ``forecast_series``, then the split, scaler and windows."""
    if source == "mitdb":
        ingest = node(
            build_tachograms,
            ["forecast_mitdb_records", "params:lstm_forecast.mitdb.tachogram"],
            ["forecast_series", "forecast_ingestion_report"],
            name="build_tachograms",
        )
    else:
        ingest = node(
            csv_to_series,
            ["forecast_csv_raw", "params:lstm_forecast.csv.columns"],
            ["forecast_series", "forecast_ingestion_report"],
            name="csv_to_series",
        )
    return [
        ingest,
        node(
            split_series,
            ["forecast_series", f"params:lstm_forecast.{source}.split"],
            ["forecast_split", "forecast_split_summary"],
            name="split_series",
        ),
        node(fit_scaler, "forecast_split", "forecast_scaler", name="fit_scaler"),
        node(
            make_windows,
            ["forecast_split", "params:lstm_forecast.windowing"],
            "forecast_windows",
            name="make_windows",
        ),
    ]


def _training() -> list:
    return [
        node(
            train_forecaster,
            [
                "forecast_windows",
                "forecast_scaler",
                "params:lstm_forecast.model",
                "params:lstm_forecast.forecast",
                "params:lstm_forecast.training",
            ],
            [
                "forecast_model",
                "forecast_training_history",
                "forecast_training_curves",
                "forecast_training_summary",
            ],
            name="train_forecaster",
        ),
    ]


def _evaluation() -> list:
    """The LSTM and the baselines on the test windows, scored, plotted and reported."""
    return [
        node(
            forecast_lstm,
            ["forecast_model", "forecast_windows", "forecast_scaler"],
            "forecast_lstm_test_forecast",
            name="forecast_lstm",
        ),
        node(
            forecast_baselines,
            ["forecast_windows", "params:lstm_forecast.forecast"],
            "forecast_baseline_test_forecasts",
            name="forecast_baselines",
        ),
        node(
            evaluate_forecasts,
            [
                "forecast_windows",
                "forecast_lstm_test_forecast",
                "forecast_baseline_test_forecasts",
                "forecast_split",
            ],
            [
                "forecast_metrics_table",
                "forecast_test_metrics",
                "forecast_test_predictions",
            ],
            name="evaluate_forecasts",
        ),
        node(
            plot_forecasts,
            ["forecast_test_predictions", "params:lstm_forecast.report"],
            "forecast_plot",
            name="plot_forecasts",
        ),
        node(
            write_report,
            [
                "forecast_metrics_table",
                "forecast_test_predictions",
                "forecast_ingestion_report",
                "forecast_split_summary",
                "forecast_training_summary",
                "forecast_scaler",
            ],
            "forecast_report",
            name="write_report",
        ),
    ]


def create_pipeline(source: str = "mitdb") -> Pipeline:
    """The forecasting pipeline fed by MIT-BIH tachograms (``mitdb``) or a user CSV (``csv``).

    Both sources produce the same tidy ``forecast_series``; everything downstream is shared.
    The CSV variant reads ``forecast_csv_raw`` and its own ``lstm_forecast.csv.*`` parameters.
    """
    if source not in SOURCES:
        raise ValueError(
            f"lstm_forecast source must be one of {SOURCES}, got {source!r}."
        )
    return Pipeline(
        [
            group("lstm_forecast", "ingestion", _ingestion(source)),
            group("lstm_forecast", "training", _training()),
            group("lstm_forecast", "evaluation", _evaluation()),
        ],
        tags="lstm_forecast",
    )
