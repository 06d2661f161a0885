"""Score every method per horizon step on the test windows, plot them, write the report."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medlstm.core.evaluation import markdown_report, regression_metrics
from medlstm.core.reporting import markdown_table
from medlstm.pipelines.lstm_forecast.windowing import Windows

MASE_DEFINITION = (
    "MASE is MAE divided by the in-sample one-step naive MAE of the training data: the "
    "mean of |y[t] - y[t-1]| pooled over the training segments of all training series "
    "(Hyndman & Koehler 2006; a test record's own history is unavailable by design). The "
    "same scale serves every horizon step, so MASE < 1 means better than a one-step naive "
    "forecast on the training data."
)
LSTM = "lstm"
METHOD_LABELS = {
    LSTM: "LSTM",
    "naive": "naive (last value)",
    "mean": "lookback mean",
    "ar": "linear AR",
}


def naive_scale(split: pd.DataFrame) -> float:
    """In-sample one-step naive MAE over the training segments: see `MASE_DEFINITION`."""
    train = split[split["segment"] == "train"]
    diffs = [
        np.abs(np.diff(g["value"].to_numpy(np.float64)))
        for _, g in train.groupby("series_id")
    ]
    diffs = np.concatenate(diffs) if diffs else np.empty(0)
    scale = float(diffs.mean()) if diffs.size else 0.0
    if not scale > 0.0:
        raise ValueError(
            "The training data has no one-step variation; MASE is undefined."
        )
    return scale


def evaluate_forecasts(
    windows: dict[str, Windows],
    lstm_forecast: np.ndarray,
    baseline_forecasts: dict[str, np.ndarray],
    split: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, dict], pd.DataFrame]:
    """MAE, RMSE and MASE of each method at each horizon step, on the same test windows.

    Returns:
        The metrics table (method, step, n, mae, rmse, mase), the same numbers as MLflow
        metrics (``test.<method>.<metric>_h<step>``), and every forecast in a long
        table (series_id, target_time, step, truth, one column per method).
    """
    test = windows["test"]
    forecasts = {LSTM: lstm_forecast, **baseline_forecasts}
    for method, forecast in forecasts.items():
        if forecast.shape != test.y.shape:
            raise ValueError(
                f"The {method} forecast has shape {forecast.shape}, the test targets {test.y.shape}."
            )
    scale = naive_scale(split)
    rows = [
        {
            "method": method,
            "step": step + 1,
            "n": len(test),
            **regression_metrics(test.y[:, step], forecast[:, step], scale),
        }
        for method, forecast in forecasts.items()
        for step in range(test.y.shape[1])
    ]
    table = pd.DataFrame(rows)
    mlflow_metrics = {
        f"test.{r['method']}.{metric}_h{r['step']}": {
            "value": float(r[metric]),
            "step": 0,
        }
        for r in rows
        for metric in ("mae", "rmse", "mase")
    }
    mlflow_metrics["test.mase_scale"] = {"value": scale, "step": 0}
    n, steps = test.y.shape
    predictions = pd.DataFrame(
        {
            "series_id": np.repeat(test.series_id, steps).astype(str),
            "window": np.repeat(np.arange(n), steps),
            "step": np.tile(np.arange(1, steps + 1), n),
            "target_time": test.target_time.reshape(-1),
            "truth": test.y.reshape(-1),
            **{method: forecast.reshape(-1) for method, forecast in forecasts.items()},
        }
    )
    return table, mlflow_metrics, predictions


def plot_forecasts(predictions: pd.DataFrame, params: dict[str, Any]) -> Figure:
    """Truth against every method's forecasts on a few test stretches, one and H steps ahead.

    Stretches are ``stretch_length`` consecutive targets from the middle of
    ``n_stretches`` test series spread evenly over the sorted series ids.
    """
    n_stretches, length = int(params["n_stretches"]), int(params["stretch_length"])
    ids = sorted(predictions["series_id"].unique())
    spread = np.linspace(0, len(ids) - 1, min(n_stretches, len(ids))).round()
    chosen = [ids[i] for i in np.unique(spread.astype(int))]
    horizon = int(predictions["step"].max())
    steps = sorted({1, horizon})
    methods = [m for m in METHOD_LABELS if m in predictions.columns]
    fig, axes = plt.subplots(
        len(chosen),
        len(steps),
        figsize=(6.5 * len(steps), 2.8 * len(chosen)),
        squeeze=False,
    )
    for row, sid in zip(axes, chosen, strict=True):
        for ax, step in zip(row, steps, strict=True):
            rows = predictions[
                (predictions["series_id"] == sid) & (predictions["step"] == step)
            ]
            start = max(0, len(rows) // 2 - length // 2)
            rows = rows.iloc[start : start + length]
            ax.plot(
                rows["target_time"],
                rows["truth"],
                color="black",
                linewidth=2,
                label="truth",
            )
            for method in methods:
                ax.plot(
                    rows["target_time"],
                    rows[method],
                    linewidth=1,
                    label=METHOD_LABELS[method],
                )
            ax.set_title(
                f"series {sid}: {step} step{'s' if step > 1 else ''} ahead", fontsize=10
            )
            ax.set_xlabel("time of target")
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def mae_table_markdown(table: pd.DataFrame, unit: str) -> str:
    """MAE as a Markdown table: one row per method, one column per horizon step."""
    steps = sorted(table["step"].unique())
    rows = []
    for method, group in table.groupby("method", sort=False):
        values = group.set_index("step")
        rows.append(
            [METHOD_LABELS.get(method, method)]
            + [f"{values.loc[s, 'mae']:.2f}" for s in steps]
        )
    header = ["method", *(f"h={s}" for s in steps)]
    return f"{markdown_table(rows, header)}\n\nMAE in {unit}; lower is better."


def step_table_markdown(table: pd.DataFrame, step: int) -> str:
    """MAE, RMSE and MASE of every method at one horizon step, as a Markdown table."""
    rows = [
        [METHOD_LABELS.get(r["method"], r["method"])]
        + [f"{r[k]:.3f}" for k in ("mae", "rmse", "mase")]
        for _, r in table[table["step"] == step].iterrows()
    ]
    return markdown_table(rows, ["method", "MAE", "RMSE", "MASE"])


def per_series_markdown(predictions: pd.DataFrame, step: int = 1) -> str:
    """MAE of every method per test series at one step; the best of each row in bold."""
    methods = [m for m in METHOD_LABELS if m in predictions.columns]
    rows = predictions[predictions["step"] == step]
    table = []
    for sid, group in rows.groupby("series_id", sort=True):
        mae = {m: float((group[m] - group["truth"]).abs().mean()) for m in methods}
        best = min(mae, key=mae.get)
        cells = [f"**{v:.2f}**" if m == best else f"{v:.2f}" for m, v in mae.items()]
        table.append([sid, len(group), *cells])
    header = ["series", "windows", *(METHOD_LABELS[m] for m in methods)]
    return markdown_table(table, header)


def verdict(table: pd.DataFrame) -> str:
    """One sentence: does the LSTM beat every baseline on MAE at horizon 1, and by how much."""
    h1 = table[table["step"] == 1].set_index("method")["mae"]
    lstm = h1[LSTM]
    baselines = h1.drop(LSTM)
    best = baselines.idxmin()
    gap = lstm - baselines[best]
    if gap < 0:
        return (
            f"The LSTM beats every baseline on MAE at horizon 1: {lstm:.3f} against "
            f"{baselines[best]:.3f} for the best baseline ({METHOD_LABELS[best]}), "
            f"{-gap / baselines[best]:.1%} lower."
        )
    return (
        f"The LSTM does **not** beat every baseline on MAE at horizon 1: {lstm:.3f} against "
        f"{baselines[best]:.3f} for {METHOD_LABELS[best]}, {gap:.3f} ({gap / baselines[best]:.1%}) worse."
    )


def write_report(
    metrics_table: pd.DataFrame,
    predictions: pd.DataFrame,
    ingestion_report: dict[str, Any],
    split_summary: dict[str, Any],
    training_summary: dict[str, Any],
    scaler: dict[str, Any],
) -> str:
    """The run's Markdown report: the verdict, the tables, data, split and training."""
    unit = ingestion_report.get("unit") or "the series' units"
    totals = ingestion_report["totals"]
    fills = {k: v for k, v in totals.items() if "interpolated" in k}
    data = [
        f"- source: {ingestion_report['source']}, {totals['n_series']} series, unit {unit}",
        "- replaced values: "
        + (", ".join(f"{k} = {v}" for k, v in fills.items()) or "none"),
        f"- test data {split_summary['test']}: series {', '.join(split_summary['series']['test'])}",
        f"- validation data {split_summary['validation']}: series "
        f"{', '.join(split_summary['series']['val'])}",
        f"- values per segment: {split_summary['n_values']}",
        f"- scaler fitted on the training segment only: mean {scaler['mean']:.3f}, std {scaler['std']:.3f}",
    ]
    training = [
        f"- {k.replace('_', ' ')}: {v:.4g}"
        if isinstance(v, float)
        else f"- {k.replace('_', ' ')}: {v}"
        for k, v in training_summary.items()
    ]
    n_test = int(metrics_table["n"].iloc[0])
    return markdown_report(
        "LSTM forecast report",
        [
            ("Verdict", verdict(metrics_table)),
            (
                f"MAE per method and horizon step ({n_test} test windows)",
                mae_table_markdown(metrics_table, unit),
            ),
            ("All metrics at horizon 1", step_table_markdown(metrics_table, 1)),
            ("MAE at horizon 1 per test series", per_series_markdown(predictions, 1)),
            ("MASE", MASE_DEFINITION),
            ("Data", "\n".join(data)),
            ("Training", "\n".join(training)),
        ],
    )
