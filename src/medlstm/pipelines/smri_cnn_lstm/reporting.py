"""Reporting nodes: training curves, model comparison, summary table, prediction report.

Every title names the data; on the synthetic cohort it says "synthetic data".
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from medlstm.core.reporting import markdown_table
from medlstm.pipelines.smri_cnn_lstm.training import SUMMARY_METRICS


def data_label(ingestion_report: dict[str, Any]) -> str:
    """``synthetic data`` or the real cohort's description, for titles."""
    if ingestion_report.get("synthetic"):
        return "synthetic data"
    return ingestion_report.get("cohort") or "real data"


def _design(cv: dict[str, Any]) -> str:
    folds = len(cv["folds"])
    return f"{folds}-fold CV" if cv["strategy"] == "kfold" else "hold-out test"


def _per_epoch(
    cv: dict[str, Any], key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs and the mean / std of ``key`` over the folds still training at each epoch."""
    longest = max(len(f["history"]) for f in cv["folds"])
    values = np.full((len(cv["folds"]), longest), np.nan)
    for i, fold in enumerate(cv["folds"]):
        values[i, : len(fold["history"])] = [r[key] for r in fold["history"]]
    counts = np.sum(~np.isnan(values), axis=0)
    mean = np.nanmean(values, axis=0)
    std = np.array(
        [
            np.nanstd(column, ddof=1) if n > 1 else 0.0
            for column, n in zip(values.T, counts, strict=True)
        ]
    )
    return np.arange(1, longest + 1), mean, std


def plot_cv_curves(cv: dict[str, Any], ingestion_report: dict[str, Any]) -> plt.Figure:
    """Train vs validation loss and accuracy of every fold of one model."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = plt.get_cmap("tab10")
    for fold in cv["folds"]:
        epochs = [r["epoch"] for r in fold["history"]]
        colour = colours(fold["fold"] % 10)
        for ax, key in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            for split, style, name in (
                ("train", "-", "train"),
                ("val", "--", "validation"),
            ):
                ax.plot(
                    epochs,
                    [r[f"{split}_{key}"] for r in fold["history"]],
                    style,
                    color=colour,
                    label=f"fold {fold['fold']} {name}",
                )
            ax.axvline(fold["best_epoch"], color=colour, linestyle=":", alpha=0.5)
    for ax, name in ((loss_ax, "cross-entropy loss"), (acc_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"{cv['label']}: train (solid) vs validation (dashed), {_design(cv)}, "
        f"{data_label(ingestion_report)}; dotted: best epoch"
    )
    fig.tight_layout()
    return fig


def _comparison_figure(
    cvs: list[dict[str, Any]],
    key: str,
    ylabel: str,
    title: str,
    limits: tuple[float, float],
) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.get_cmap("tab10")
    for i, cv in enumerate(cvs):
        epochs, mean, std = _per_epoch(cv, key)
        ax.plot(epochs, mean, "-o", markersize=3, color=colours(i), label=cv["label"])
        ax.fill_between(
            epochs,
            *np.clip([mean - std, mean + std], *limits),
            color=colours(i),
            alpha=0.15,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _cell(summary: dict[str, Any], name: str) -> str:
    entry = summary[name]
    if not entry["n_folds"]:
        return "n/a"
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def summary_markdown(
    cvs: list[dict[str, Any]], ingestion_report: dict[str, Any], folds: dict[str, Any]
) -> str:
    """The comparison table (mean ± sample std over folds), pooled figures, the data."""
    label = data_label(ingestion_report)
    grades = ingestion_report["patients_by_grade"]
    lines = [
        f"# smri_cnn_lstm: glioma grade (HGG vs LGG) from 3D CNN + LSTM, {label}",
        "",
    ]
    if ingestion_report.get("synthetic"):
        lines += [
            "> **Synthetic data.** These figures come from generated volumes "
            "(medlstm.synthetic.brats), not patients; they show that the pipeline "
            "learns, not how the models do on real MRI.",
            "",
        ]
    lines += [
        f"Cohort: {ingestion_report['cohort']}; {ingestion_report['patients_used']} patients "
        f"({grades.get('HGG', 0)} HGG, {grades.get('LGG', 0)} LGG), "
        f"{ingestion_report['skipped_count']} skipped, "
        f"{ingestion_report['zero_filled_count']} modalities zero-filled. "
        f"Evaluation: {_design(cvs[0])}, patient-level and stratified"
        f"{'' if not folds.get('group_pattern') else ' (grouped by ' + folds['group_pattern'] + ')'}. "
        "Mean ± sample standard deviation over folds; HGG is the positive class "
        "(sensitivity = HGG recall, specificity = LGG recall).",
        "",
    ]
    header = ["model", "parameters", "accuracy", "ROC-AUC", "sensitivity"]
    header += ["specificity", "pooled accuracy", "pooled ROC-AUC"]
    rows = []
    for cv in cvs:
        pooled = cv["pooled"]
        auc = f"{pooled['roc_auc']:.3f}" if "roc_auc" in pooled else "n/a"
        rows.append(
            [cv["label"], f"{cv['n_parameters']:,}"]
            + [_cell(cv["summary"], name) for name in SUMMARY_METRICS]
            + [f"{pooled['accuracy']:.3f}", auc]
        )
    lines += [
        markdown_table(rows, header),
        "",
        "Pooled: all out-of-fold test predictions together. Best epochs per fold: "
        + "; ".join(
            f"{cv['label']} {[f['best_epoch'] for f in cv['folds']]}" for cv in cvs
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def compare_models(
    ingestion_report: dict[str, Any],
    folds: dict[str, Any],
    *cvs: dict[str, Any],
) -> tuple[plt.Figure, plt.Figure, str]:
    """Compare the architectures' cross-validation results.

    Returns:
        Validation loss per epoch of every model and validation accuracy per
        epoch of every model (mean over the folds still training, band ± 1
        sample std), and the Markdown summary table.
    """
    cvs = list(cvs)
    label = data_label(ingestion_report)
    loss = _comparison_figure(
        cvs,
        "val_loss",
        "validation cross-entropy loss",
        f"Validation loss per epoch, {_design(cvs[0])} mean ± std, {label}",
        (0.0, np.inf),
    )
    accuracy = _comparison_figure(
        cvs,
        "val_accuracy",
        "validation accuracy",
        f"Validation accuracy per epoch, {_design(cvs[0])} mean ± std, {label}",
        (0.0, 1.0),
    )
    return loss, accuracy, summary_markdown(cvs, ingestion_report, folds)


def prediction_report(
    patient: dict[str, Any],
    ingestion_report: dict[str, Any],
    *predictions: dict[str, Any],
) -> dict[str, Any]:
    """Every model's grade for the patient of ``predict.patient_folder``."""
    modalities = ingestion_report["settings"]["modalities"]
    missing = [
        m for m, ok in zip(modalities, patient["present"][0], strict=True) if not ok
    ]
    report = {
        "title": f"Predicted glioma grade, models trained on {data_label(ingestion_report)}",
        "patient": str(patient["patient_id"]),
        "folder": str(patient["folder"]),
        "zero_filled_modalities": missing,
        "padded_volumes": int(patient["padded_volumes"]),
        "predictions": list(predictions),
    }
    if missing:
        report["warning"] = (
            f"modalities {missing} were missing and filled with zeros; the models "
            "never saw such input in training, so treat the grades with caution"
        )
    return report
