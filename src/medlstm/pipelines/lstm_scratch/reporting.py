"""lstm_scratch reporting: MLflow histories, learning curves and the side-by-side
Markdown report."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from medlstm.core import evaluation
from medlstm.core.reporting import markdown_table
from medlstm.pipelines.lstm_scratch.training import BACKENDS


def training_histories(**logs: dict[str, Any]) -> dict[str, list[dict]]:
    """Per-epoch histories of all runs for MLflow, e.g. ``regression.numpy.val_loss``.

    Args:
        **logs: ``<task>_<backend>`` -> training log.
    """
    out: dict[str, list[dict]] = {}
    for key, log in logs.items():
        task, backend = key.rsplit("_", 1)
        out |= evaluation.history_to_mlflow(log["history"], prefix=f"{task}.{backend}.")
    return out


def learning_curves_figure(**logs: dict[str, Any]) -> plt.Figure:
    """Loss per epoch of both implementations on both tasks (and validation accuracy).

    Args:
        **logs: ``<task>_<backend>`` -> training log.
    """
    panels = [
        ("regression", "loss", "MSE (scaled units)"),
        ("classification", "loss", "cross-entropy"),
        ("classification", "accuracy", "accuracy"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8))
    colours = {"numpy": "tab:blue", "torch": "tab:orange"}
    for ax, (task, metric, label) in zip(axes, panels, strict=True):
        for backend in BACKENDS:
            history = logs[f"{task}_{backend}"]["history"]
            epochs = [r["epoch"] for r in history]
            for split, style in (("train", "-"), ("val", "--")):
                ax.plot(
                    epochs,
                    [r[f"{split}_{metric}"] for r in history],
                    style,
                    color=colours[backend],
                    label=f"{backend} {split}",
                )
        if metric == "loss":
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{task}: {label}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("NumPy LSTM (medlstm.scratch) vs torch.nn.LSTM, same initial weights")
    fig.tight_layout()
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table of `_fmt` cells."""
    return markdown_table([[_fmt(v) for v in row] for row in rows], header)


def _verdict(name: str, value: float, ok: bool) -> str:
    return f"{name} {value:.4g} ({'meets' if ok else 'MISSES'} the target)"


_SUMMARY_ROWS = {
    "fit_seconds": "wall time of training (s)",
    "median_epoch_seconds": "median epoch (s)",
    "epochs_run": "epochs run",
    "best_epoch": "best epoch",
    "best_val_loss": "best validation loss",
    "n_parameters": "parameters",
    "dtype": "dtype",
    "threads": "CPU threads",
}


def _training_section(logs: dict[str, dict[str, Any]], task: str) -> str:
    summaries = {b: logs[f"{task}_{b}"]["summary"] for b in BACKENDS}
    rows = [
        [label, *(summaries[b][key] for b in BACKENDS)]
        for key, label in _SUMMARY_ROWS.items()
    ]
    ratio = (
        summaries["numpy"]["median_epoch_seconds"]
        / summaries["torch"]["median_epoch_seconds"]
    )
    table = _table(["", "NumPy", "torch"], rows)
    return f"{table}\n\nNumPy / torch time per epoch: **{ratio:.2f}x**."


def _regression_section(reg: dict[str, Any], mae_target: float) -> str:
    models = (*BACKENDS, "naive_extrapolation")
    splits = {
        "test": "held-out test (outside the training range)",
        "val": "validation (training range, noisy)",
    }
    errors = _table(
        ["", "NumPy", "torch", "naive extrapolation"],
        [
            [f"{label}: {metric.upper()}", *(reg[m][split][metric] for m in models)]
            for split, label in splits.items()
            for metric in ("mae", "rmse")
        ],
    )
    examples = _table(
        ["sequence", "next", "NumPy", "torch"],
        [
            [e["sequence"], f"{e['next']:g}", *(f"{e[b]:.3f}" for b in BACKENDS)]
            for e in reg["examples"]
        ],
    )
    verdicts = ", ".join(
        _verdict(b, reg[b]["test"]["mae"], reg[b]["test"]["mae"] < mae_target)
        for b in BACKENDS
    )
    return f"{errors}\n\n{examples}\n\nTarget: test MAE < {mae_target:g}: {verdicts}."


def _classification_section(cls: dict[str, Any], accuracy_target: float) -> str:
    verdicts = ", ".join(
        _verdict(b, cls[b]["accuracy"], cls[b]["accuracy"] >= accuracy_target)
        for b in BACKENDS
    )
    parts = [f"Target: test accuracy >= {accuracy_target:g}: {verdicts}."]
    for backend in BACKENDS:
        parts += [
            f"**{backend}**",
            evaluation.metrics_table_markdown(cls[backend]),
            evaluation.confusion_matrix_markdown(cls[backend]),
        ]
    return "\n\n".join(parts)


_SETUP = (
    "Both implementations see the same sequences, start from the same initial "
    "weights (the NumPy model's Glorot initialisation, forget-gate bias 1) and train "
    "with the same Adam settings, batch size, clipping, learning-rate plateau and "
    "early stopping on the validation loss, in the same dtype on the same number of "
    "CPU threads. Wall times are whole training loops (torch's includes its "
    "DataLoader). torch counts 4H more parameters per layer: its two biases, of "
    "which only the sum matters."
)


def write_report(
    regression: dict[str, Any],
    classification: dict[str, Any],
    targets: dict[str, float],
    **logs: dict[str, Any],
) -> tuple[str, dict[str, dict]]:
    """The side-by-side report (Markdown) and its headline numbers for MLflow.

    Args:
        regression: Metrics from :func:`evaluate_regression`.
        classification: Metrics from :func:`evaluate_classification`.
        targets: ``regression_mae`` and ``classification_accuracy`` to meet.
        **logs: ``<task>_<backend>`` -> training log.
    """
    headline = {
        "regression.naive_extrapolation.test_mae": (
            regression["naive_extrapolation"]["test"]["mae"]
        )
    }
    for b in BACKENDS:
        headline[f"regression.{b}.test_mae"] = regression[b]["test"]["mae"]
        headline[f"regression.{b}.val_mae"] = regression[b]["val"]["mae"]
        headline[f"classification.{b}.test_accuracy"] = classification[b]["accuracy"]
        headline[f"classification.{b}.test_macro_f1"] = classification[b]["macro_f1"]
        for task in ("regression", "classification"):
            for key in ("fit_seconds", "median_epoch_seconds"):
                headline[f"{task}.{b}.{key}"] = logs[f"{task}_{b}"]["summary"][key]
    sections = [
        ("Setup", _SETUP),
        (
            "Regression: next value of an arithmetic sequence",
            _regression_section(regression, targets["regression_mae"]),
        ),
        ("Regression training", _training_section(logs, "regression")),
        (
            "Classification: rising / falling / periodic / noise",
            _classification_section(classification, targets["classification_accuracy"]),
        ),
        ("Classification training", _training_section(logs, "classification")),
        ("Learning curves", "![learning curves](scratch_learning_curves.png)"),
    ]
    report = evaluation.markdown_report(
        "lstm_scratch: NumPy LSTM vs torch.nn.LSTM", sections
    )
    return report, evaluation.summary_to_mlflow(headline)
