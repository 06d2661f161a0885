"""Metrics per method and horizon step, the MASE scale, the plot and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.lstm_forecast.reporting import (
    evaluate_forecasts,
    naive_scale,
    per_series_markdown,
    plot_forecasts,
    verdict,
    write_report,
)
from medlstm.pipelines.lstm_forecast.windowing import Windows

TRUTH = np.array([[10.0, 12.0], [11.0, 13.0], [12.0, 14.0], [13.0, 15.0]])


@pytest.fixture
def windows() -> dict[str, Windows]:
    test = Windows(
        x=np.arange(12, dtype=float).reshape(4, 3),
        y=TRUTH,
        series_id=np.array(["a", "a", "b", "b"], dtype=object),
        target_time=np.array([[3.0, 4.0], [4.0, 5.0], [3.0, 4.0], [4.0, 5.0]]),
    )
    return {"test": test}


@pytest.fixture
def split() -> pd.DataFrame:
    # Training steps of 2 and 4 (mean 3); val and test steps must not count.
    return pd.DataFrame(
        {
            "series_id": ["a"] * 4 + ["b"] * 3,
            "time": [0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0],
            "value": [0.0, 2.0, 4.0, 100.0, 0.0, 4.0, -50.0],
            "segment": ["train", "train", "train", "test", "train", "train", "val"],
        }
    )


def test_naive_scale_pools_training_steps_only(split):
    # a: |2|, |2|; b: |4| -> mean 8 / 3.
    assert naive_scale(split) == pytest.approx(8 / 3)


def test_naive_scale_refuses_flat_training_data(split):
    with pytest.raises(ValueError, match="MASE is undefined"):
        naive_scale(split.assign(value=1.0))


def test_metrics_per_method_and_step(windows, split):
    lstm = TRUTH + np.array([[1.0, -2.0]])  # errors 1 at h1, 2 at h2
    baselines = {"naive": TRUTH.copy(), "mean": TRUTH + 3.0}
    table, mlflow_metrics, predictions = evaluate_forecasts(
        windows, lstm, baselines, split
    )

    lstm_rows = table[table["method"] == "lstm"].set_index("step")
    assert lstm_rows.loc[1, "mae"] == pytest.approx(1.0)
    assert lstm_rows.loc[2, "rmse"] == pytest.approx(2.0)
    assert lstm_rows.loc[2, "mase"] == pytest.approx(2.0 / (8 / 3))
    assert table.loc[table["method"] == "naive", "mae"].tolist() == [0.0, 0.0]
    assert set(table["n"]) == {4}

    assert mlflow_metrics["test.lstm.mae_h1"] == {
        "value": pytest.approx(1.0),
        "step": 0,
    }
    assert mlflow_metrics["test.mean.mase_h2"]["value"] == pytest.approx(3.0 / (8 / 3))
    assert mlflow_metrics["test.mase_scale"]["value"] == pytest.approx(8 / 3)

    assert len(predictions) == TRUTH.size
    first = predictions[(predictions["window"] == 1) & (predictions["step"] == 2)].iloc[
        0
    ]
    assert (first["truth"], first["lstm"], first["target_time"]) == (13.0, 11.0, 5.0)


def test_forecast_of_wrong_shape_is_an_error(windows, split):
    with pytest.raises(ValueError, match="naive forecast has shape"):
        evaluate_forecasts(windows, TRUTH, {"naive": TRUTH[:, :1]}, split)


def _table(lstm_mae: float, naive_mae: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["lstm", "naive", "ar"],
            "step": [1, 1, 1],
            "n": [10, 10, 10],
            "mae": [lstm_mae, naive_mae, 9.0],
            "rmse": [1.0, 1.0, 1.0],
            "mase": [1.0, 1.0, 1.0],
        }
    )


def test_verdict_when_the_lstm_wins():
    text = verdict(_table(4.0, 5.0))
    assert text.startswith("The LSTM beats every baseline")
    assert "20.0% lower" in text


def test_verdict_says_by_how_much_it_loses():
    text = verdict(_table(6.0, 5.0))
    assert "does **not** beat" in text
    assert "naive (last value)" in text
    assert "1.000 (20.0%) worse" in text


def test_plot_has_one_row_per_stretch(windows, split):
    lstm = TRUTH + 1.0
    _, _, predictions = evaluate_forecasts(windows, lstm, {"naive": TRUTH}, split)
    figure = plot_forecasts(predictions, {"n_stretches": 4, "stretch_length": 10})
    # Two test series -> two rows, columns for 1 and 2 steps ahead.
    assert len(figure.axes) == 4
    assert figure.axes[1].get_title() == "series a: 2 steps ahead"


def test_per_series_table_marks_the_best_method(windows, split):
    lstm = TRUTH + np.array([[1.0, 0.0], [1.0, 0.0], [-4.0, 0.0], [4.0, 0.0]])
    _, _, predictions = evaluate_forecasts(windows, lstm, {"naive": TRUTH + 2.0}, split)
    table = per_series_markdown(predictions, step=1)
    assert "| a | 2 | **1.00** | 2.00 |" in table
    assert "| b | 2 | 4.00 | **2.00** |" in table


def test_report_has_verdict_table_and_counts(windows, split):
    _, _, predictions = evaluate_forecasts(windows, TRUTH, {"naive": TRUTH + 1}, split)
    report = write_report(
        _table(4.0, 5.0),
        predictions,
        {
            "source": "wfdb_tachogram",
            "unit": "ms",
            "totals": {"n_series": 3, "n_gap_rr_interpolated": 2},
        },
        {
            "test": "by_record",
            "validation": "by_record",
            "series": {"train": ["a"], "val": ["b"], "test": ["c"]},
            "n_values": {"train": 10, "val": 5, "test": 5},
        },
        {"best_epoch": 3, "best_val_loss": 0.5},
        {"mean": 800.0, "std": 100.0},
    )
    assert report.startswith("# LSTM forecast report")
    assert "| LSTM | 4.00 |" in report
    assert "n_gap_rr_interpolated = 2" in report
    assert "MAE in ms" in report
    assert "beats every baseline" in report
    assert "## MAE at horizon 1 per test series" in report
