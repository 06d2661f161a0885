"""Metrics, figures and the Markdown summary; all go through the catalog to MLflow."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score, roc_curve

from medlstm.core.evaluation import (
    classification_metrics,
    confusion_matrix_figure,
    confusion_matrix_markdown,
    history_to_mlflow,
    markdown_report,
    metrics_table_markdown,
    summary_to_mlflow,
    training_curves_figure,
)
from medlstm.models.ecg_autoencoder import (
    LSTMAutoencoderClassifier,
    LSTMAutoencoderEnsemble,
)
from medlstm.pipelines.ecg_autoencoder.modelling import check_aligned, predict_beats

OPTIMISTIC_NOTE = (
    "**Optimistic estimate:** the intra-patient split puts beats of the same patients "
    "in training and test, so these figures overstate performance on new patients."
)


def history_outputs(
    history: list[dict[str, float]], model_name: str
) -> tuple[dict[str, list[dict]], plt.Figure]:
    """Per-epoch MLflow metrics (step = epoch; the catalog adds the prefix) and curves."""
    return (
        history_to_mlflow(history),
        training_curves_figure(history, title=f"{model_name}: training curves"),
    )


def autoencoder_history_outputs(
    history: list[dict[str, float]],
) -> tuple[dict[str, list[dict]], plt.Figure]:
    """`history_outputs` of the autoencoder."""
    return history_outputs(history, "autoencoder")


def cnn_history_outputs(
    history: list[dict[str, float]],
) -> tuple[dict[str, list[dict]], plt.Figure]:
    """`history_outputs` of the CNN baseline."""
    return history_outputs(history, "cnn")


PRIMARY_DATABASE = "mitdb"


def evaluate(
    predictions: pd.DataFrame, label_mapping: dict[str, list[str]]
) -> dict[str, Any]:
    """Per-class Se / +P / specificity / F1 / support, accuracy, macro F1, confusion.

    Beats of several databases are never pooled: the headline figures are MIT-BIH's
    (DS2 in the inter-patient protocols, comparable with the literature), and
    ``by_database`` holds each database's beats alone (SVDB's external test part).
    """
    databases = (
        sorted(predictions["database"].unique())
        if "database" in predictions.columns
        else []
    )
    if len(databases) <= 1:
        metrics = _metrics(predictions, label_mapping)
        if databases:
            metrics["database"] = databases[0]
        return metrics
    primary = PRIMARY_DATABASE if PRIMARY_DATABASE in databases else databases[0]
    by_database = {
        name: _metrics(predictions[predictions["database"] == name], label_mapping)
        for name in databases
    }
    return {**by_database[primary], "database": primary, "by_database": by_database}


def _metrics(
    predictions: pd.DataFrame, label_mapping: dict[str, list[str]]
) -> dict[str, Any]:
    class_names = list(label_mapping)
    index = {c: i for i, c in enumerate(class_names)}
    scores = predictions[[f"p_{c}" for c in class_names]].to_numpy()
    return classification_metrics(
        predictions["label"].map(index).to_numpy(),
        predictions["predicted"].map(index).to_numpy(),
        class_names,
        y_score=scores,
    )


def validation_metrics(
    predictions: pd.DataFrame, label_mapping: dict[str, list[str]]
) -> tuple[dict[str, Any], dict[str, dict]]:
    """Validation metrics (JSON) and their MLflow form; tuning looks at these only."""
    metrics = evaluate(predictions, label_mapping)
    return metrics, summary_to_mlflow(metrics)


def metrics_outputs(
    metrics: dict[str, Any], model_name: str
) -> tuple[dict[str, dict], plt.Figure]:
    """Final test metrics for MLflow (the catalog adds the prefix) and the confusion matrix."""
    return (
        summary_to_mlflow(metrics),
        confusion_matrix_figure(metrics, title=f"{model_name}: test confusion matrix"),
    )


def autoencoder_metrics_outputs(
    metrics: dict[str, Any],
) -> tuple[dict[str, dict], plt.Figure]:
    """`metrics_outputs` of the autoencoder."""
    return metrics_outputs(metrics, "autoencoder")


def cnn_metrics_outputs(metrics: dict[str, Any]) -> tuple[dict[str, dict], plt.Figure]:
    """`metrics_outputs` of the CNN baseline."""
    return metrics_outputs(metrics, "cnn")


def linear_metrics_outputs(
    metrics: dict[str, Any],
) -> tuple[dict[str, dict], plt.Figure]:
    """`metrics_outputs` of the linear baseline."""
    return metrics_outputs(metrics, "linear")


def reconstruction_figure(
    model: LSTMAutoencoderClassifier | LSTMAutoencoderEnsemble,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    params: dict[str, Any],
) -> plt.Figure:
    """Original vs reconstructed test beats, a row per class present in the test set."""
    check_aligned(beats, windows)
    n = int(params.get("examples_per_class", 4))
    rng = np.random.default_rng(int(params.get("seed", 0)))
    test = np.flatnonzero(beats["split"].to_numpy() == "test")
    labels = beats["label"].to_numpy()[test]
    classes = [c for c in label_mapping if (labels == c).any()]
    fig, axes = plt.subplots(
        len(classes),
        n,
        figsize=(2.6 * n, 1.9 * len(classes)),
        squeeze=False,
        sharex=True,
    )
    for row, name in enumerate(classes):
        members = test[labels == name]
        picked = np.sort(rng.choice(members, size=min(n, len(members)), replace=False))
        x = windows["windows"][picked]
        out, recon, _ = predict_beats(
            model, beats.iloc[picked], x, features, list(label_mapping)
        )
        for col in range(n):
            ax = axes[row, col]
            if col >= len(picked):
                ax.axis("off")
                continue
            ax.plot(x[col], color="black", linewidth=1.0, label="original")
            ax.plot(recon[col], color="tab:red", linewidth=1.0, label="reconstruction")
            ax.set_title(
                f"{name} | {out['record'][col]}:{out['sample'][col]} -> "
                f"{out['predicted'][col]}",
                fontsize=7,
            )
            ax.tick_params(labelsize=6)
        axes[row, 0].set_ylabel(name)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle("Test beats: original (black) vs reconstruction (red)")
    fig.tight_layout()
    return fig


def anomaly_detection(
    predictions: pd.DataFrame, normal_class: str = "N"
) -> tuple[dict[str, Any], dict[str, dict], plt.Figure]:
    """Reconstruction error as an anomaly score: per-class distribution and ROC-AUC.

    Abnormal means any class other than ``normal_class``. The autoencoder is also
    trained on abnormal beats, so this measures how much morphology the latent code
    keeps per class, not a one-class detector.

    Returns:
        The report (per-class error statistics, ROC-AUC), the ROC-AUC as an MLflow
        metric, and the figure.
    """
    error = predictions["recon_error"].to_numpy()
    abnormal = (predictions["label"] != normal_class).to_numpy()
    groups = list(predictions.groupby("label", sort=True)["recon_error"])
    per_class = {
        str(label): {
            "mean": float(group.mean()),
            "median": float(group.median()),
            "n": len(group),
        }
        for label, group in groups
    }
    report: dict[str, Any] = {"normal_class": normal_class, "per_class": per_class}
    fig, (ax_box, ax_roc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_box.boxplot(
        [g.clip(lower=1e-8) for _, g in groups],
        tick_labels=[f"{label}\n(n={len(g)})" for label, g in groups],
        showfliers=False,
    )
    ax_box.set_yscale("log")
    ax_box.set_ylabel("reconstruction error (MSE per beat)")
    ax_box.set_title("reconstruction error per class (test)")
    if 0 < abnormal.sum() < len(abnormal):
        report["roc_auc_abnormal_vs_normal"] = float(roc_auc_score(abnormal, error))
        fpr, tpr, _ = roc_curve(abnormal, error)
        ax_roc.plot(fpr, tpr, label=f"AUC {report['roc_auc_abnormal_vs_normal']:.3f}")
        ax_roc.legend()
    else:
        report["roc_auc_abnormal_vs_normal"] = None
        ax_roc.text(0.5, 0.5, "undefined: one group only", ha="center")
    ax_roc.plot([0, 1], [0, 1], ":", color="grey")
    ax_roc.set_xlabel("false positive rate")
    ax_roc.set_ylabel("true positive rate")
    ax_roc.set_title(f"abnormal vs {normal_class} by reconstruction error")
    fig.tight_layout()
    auc = report["roc_auc_abnormal_vs_normal"]
    metrics = {} if auc is None else {"anomaly_roc_auc": {"value": auc, "step": 0}}
    return report, metrics, fig


def latent_projection_figure(
    latent: pd.DataFrame, params: dict[str, Any]
) -> plt.Figure:
    """PCA of the test beats' latent vectors onto 2-D, coloured by class."""
    z_cols = [c for c in latent.columns if c.startswith("z_")]
    max_points = int(params.get("projection_max_points", 20000))
    rng = np.random.default_rng(int(params.get("seed", 0)))
    shown = latent
    if len(latent) > max_points:
        shown = latent.iloc[np.sort(rng.choice(len(latent), max_points, replace=False))]
    xy = PCA(n_components=2, random_state=0).fit_transform(shown[z_cols].to_numpy())
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    # Common classes first, so rare ones are drawn on top and stay visible.
    for label in shown["label"].value_counts().index:
        mask = (shown["label"] == label).to_numpy()
        ax.scatter(
            xy[mask, 0], xy[mask, 1], s=4, alpha=0.6, label=f"{label} ({mask.sum()})"
        )
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("Latent vectors of the test beats (PCA)")
    ax.legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    return fig


def _counts_table(split_report: dict[str, Any], class_names: list[str]) -> str:
    lines = [
        "| part | records | " + " | ".join(class_names) + " | total |",
        "|---|---:|" + "---:|" * (len(class_names) + 1),
    ]
    for part in ("train", "train_unused", "val", "test", "excluded"):
        counts = split_report["beats"].get(part, {})
        if part == "train_unused" and not counts:
            continue
        cells = [str(counts.get(c, 0)) for c in class_names]
        n_records = len(split_report["records"].get(part, []))
        lines.append(
            f"| {part} | {n_records if part != 'train_unused' else '-'} | "
            + " | ".join(cells)
            + f" | {sum(counts.values())} |"
        )
    return "\n".join(lines)


def per_record_table(
    predictions: pd.DataFrame, label_mapping: dict[str, list[str]]
) -> pd.DataFrame:
    """Per test record and class: beats (``<c>_n``), beats found (``<c>_found``) and
    false alarms (``<c>_false``: other beats predicted as ``c``).

    Inter-patient figures are dominated by a few records (in DS2, record 232 holds
    three quarters of the S beats); this table shows which.
    """
    if "label" not in predictions:
        raise ValueError("per_record_table needs predictions with a 'label' column.")
    rows = []
    for record, group in predictions.groupby("record", sort=True):
        row: dict[str, Any] = {"record": str(record), "n_beats": len(group)}
        for c in label_mapping:
            is_c, said_c = group["label"] == c, group["predicted"] == c
            row[f"{c}_n"] = int(is_c.sum())
            row[f"{c}_found"] = int((is_c & said_c).sum())
            row[f"{c}_false"] = int((~is_c & said_c).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _per_record_markdown(table: pd.DataFrame, class_names: list[str]) -> str:
    """Cells "found / n (+false alarms)" per record; a line on each class's biggest record."""
    header = "| record | beats | " + " | ".join(class_names) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(class_names)]
    for row in table.to_dict("records"):
        cells = [
            f"{int(row[f'{c}_found'])} / {int(row[f'{c}_n'])} (+{int(row[f'{c}_false'])})"
            if row[f"{c}_n"] or row[f"{c}_false"]
            else "-"
            for c in class_names
        ]
        lines.append(
            f"| {row['record']} | {int(row['n_beats'])} | " + " | ".join(cells) + " |"
        )
    notes = []
    for c in class_names[1:]:
        total = int(table[f"{c}_n"].sum())
        if total:
            top = table.loc[table[f"{c}_n"].idxmax()]
            n_top, found_top = int(top[f"{c}_n"]), int(top[f"{c}_found"])
            notes.append(
                f"- {c}: record {top['record']} holds {n_top / total:.0%} of the "
                f"{total} beats; found there {found_top}, elsewhere "
                f"{int(table[f'{c}_found'].sum()) - found_top} of {total - n_top}."
            )
    return (
        "Cells: beats found / beats of the class (+ other beats predicted as it); "
        "- where there are neither.\n\n"
        + "\n".join(lines)
        + ("\n\n" + "\n".join(notes) if notes else "")
    )


def _headline(metrics: dict[str, Any]) -> str:
    pc = metrics["per_class"]
    parts = [
        f"accuracy {metrics['accuracy']:.3f}",
        f"macro F1 {metrics['macro_f1']:.3f}",
    ]
    parts += [
        f"{c} Se {pc[c]['recall']:.3f} / +P {pc[c]['precision']:.3f}"
        for c in ("S", "V")
        if c in pc
    ]
    return ", ".join(parts)


TEST_SET_NAMES = {
    "mitdb": "MIT-BIH (DS2 in the inter-patient protocols)",
    "svdb": "SVDB external test part",
}


def by_test_set(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Database -> the metrics of its test beats (one entry without ``by_database``)."""
    return metrics.get("by_database") or {metrics.get("database", "mitdb"): metrics}


def scores_by_test_set_markdown(scheme: str, models: dict[str, dict[str, Any]]) -> str:
    """One row per model and test set: the protocol, accuracy, macro F1, S and V
    Se / +P. Test sets of different databases are reported apart, never pooled."""
    lines = [
        "| model | protocol | test set | beats | accuracy | macro F1 | S Se / +P | V Se / +P |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, metrics in models.items():
        for database, m in by_test_set(metrics).items():
            pc = m["per_class"]
            cells = [
                f"{pc[c]['recall']:.3f} / {pc[c]['precision']:.3f}" if c in pc else "-"
                for c in ("S", "V")
            ]
            lines.append(
                f"| {model} | {scheme} | {TEST_SET_NAMES.get(database, database)} | "
                f"{m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def scores_by_test_set_figure(
    autoencoder_metrics: dict[str, Any],
    cnn_metrics: dict[str, Any],
    linear_metrics: dict[str, Any],
    split_params: dict[str, Any],
) -> plt.Figure:
    """S and V sensitivity and +P of every model on every test set of this run's
    protocol: one panel per test set, bars per model, the DS2 floor as lines."""
    models = {
        "autoencoder": autoencoder_metrics,
        "CNN": cnn_metrics,
        "linear": linear_metrics,
    }
    databases = list(by_test_set(autoencoder_metrics))
    scores = ("S Se", "S +P", "V Se", "V +P")
    fig, axes = plt.subplots(
        1, len(databases), figsize=(5.5 * len(databases), 3.8), squeeze=False
    )
    width = 0.8 / len(models)
    for ax, database in zip(axes[0], databases, strict=True):
        for i, (name, metrics) in enumerate(models.items()):
            m = by_test_set(metrics).get(database)
            if m is None:
                continue
            pc = m["per_class"]
            values = [
                pc.get(c, {}).get(k, 0.0)
                for c in ("S", "V")
                for k in ("recall", "precision")
            ]
            offset = (i - (len(models) - 1) / 2) * width  # bars centred on each tick
            ax.bar(np.arange(4) + offset, values, width, label=name)
        if database == "mitdb":
            for x, floor in zip(range(4), (0.60, 0.40, 0.90, 0.85), strict=True):
                ax.hlines(floor, x - 0.45, x + 0.45, colors="k", linestyles=":")
        ax.set_xticks(range(4), scores)
        ax.set_ylim(0, 1.05)
        ax.set_title(TEST_SET_NAMES.get(database, database), fontsize=9)
    axes[0][0].set_ylabel("score")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"Protocol {split_params.get('scheme', 'inter_patient')}: S and V on each test "
        "set (dotted: the DS2 floor)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def published_scores_markdown(published: pd.DataFrame) -> str:
    """Published inter-patient DS1 -> DS2 results, as rows comparable with ours."""
    lines = [
        "| study | method | S Se / +P | V Se / +P |",
        "|---|---|---:|---:|",
    ]
    for row in published.to_dict("records"):
        lines.append(
            f"| {row['study']} | {row['method']} | {row['S_Se']:.3f} / {row['S_P']:.3f} "
            f"| {row['V_Se']:.3f} / {row['V_P']:.3f} |"
        )
    return (
        "Published results of the same protocol (train DS1, test DS2, AAMI classes), "
        "as reported by their authors:\n\n" + "\n".join(lines)
    )


def ds2_history_markdown(history: pd.DataFrame) -> str:
    """Every DS2 score a committed default setting received (date, commit, machine,
    precision), so that nobody tunes on DS2 by repetition unnoticed."""
    columns = ["accuracy", "S_Se", "S_P", "V_Se", "V_P", "macro_f1"]
    lines = [
        "| date | commit | model | setting | protocol | machine, precision | accuracy "
        "| S Se / +P | V Se / +P | macro F1 |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for row in history.to_dict("records"):
        v = {c: row.get(c) for c in columns}
        cell = {c: "-" if pd.isna(v[c]) else f"{float(v[c]):.3f}" for c in columns}
        lines.append(
            f"| {row['date']} | {row['commit']} | {row['model']} | {row['setting']} | "
            f"{row['protocol']} | {row['machine']}, {row['precision']} | "
            f"{cell['accuracy']} | {cell['S_Se']} / {cell['S_P']} | "
            f"{cell['V_Se']} / {cell['V_P']} | {cell['macro_f1']} |"
        )
    return (
        "Every DS2 score that a committed default setting received before this run "
        "(docs/experiments/ecg_ds2_scores.csv; add this run's rows when its setting "
        "is committed as a default):\n\n" + "\n".join(lines)
    )


def summary_report(
    ingestion_report: dict[str, Any],
    split_report: dict[str, Any],
    autoencoder_metrics: dict[str, Any],
    cnn_metrics: dict[str, Any],
    anomaly: dict[str, Any],
    label_mapping: dict[str, list[str]],
    autoencoder_val: dict[str, Any],
    cnn_val: dict[str, Any],
    autoencoder_per_record: pd.DataFrame,
    linear_metrics: dict[str, Any],
    linear_val: dict[str, Any],
    ds2_history: pd.DataFrame,
    published: pd.DataFrame,
) -> str:
    """Markdown summary: split, records and beat counts, AAMI tables of both models,
    the autoencoder's results per test record, and the validation figures the models
    were selected on."""
    class_names = list(label_mapping)
    scheme = split_report["scheme"]
    split_lines = [
        f"Scheme **{scheme}** "
        + (
            "(patient-wise: no record in two parts, checked)."
            if split_report["patient_wise"]
            else ""
        ),
    ]
    if split_report["optimistic"]:
        split_lines.insert(0, OPTIMISTIC_NOTE + "\n")
    else:
        for part in ("train", "val", "test", "excluded"):
            records = split_report["records"].get(part, [])
            split_lines.append(
                f"- {part} ({len(records)}): {', '.join(records) or '-'}"
            )
    split_lines += ["", _counts_table(split_report, class_names)]

    totals = ingestion_report["totals"]
    ingestion = (
        f"{ingestion_report['n_beats']} beats kept ({ingestion_report['window_samples']}-sample "
        f"windows at {ingestion_report['target_fs']:g} Hz). Dropped: "
        f"{totals.get('dropped_edge', 0)} too close to a record edge, "
        f"{totals.get('dropped_no_rr', 0)} without a neighbouring beat, "
        f"{totals.get('dropped_nan', 0)} with invalid samples; "
        f"{totals.get('skipped_unknown_symbol', 0)} unknown symbols skipped. "
        f"Skipped records: {ingestion_report['skipped_records'] or 'none'}."
    )
    auc = anomaly.get("roc_auc_abnormal_vs_normal")
    anomaly_text = (
        f"ROC-AUC of the reconstruction error, abnormal vs {anomaly['normal_class']}: "
        + (f"**{auc:.3f}**" if auc is not None else "undefined")
        + "\n\n| class | mean error | median error | n |\n|---|---:|---:|---:|\n"
        + "\n".join(
            f"| {c} | {v['mean']:.4g} | {v['median']:.4g} | {v['n']} |"
            for c, v in anomaly["per_class"].items()
        )
    )
    title = "ECG beat classification (AAMI EC57 classes)"
    if split_report["optimistic"]:
        title += " - OPTIMISTIC intra-patient split"
    sections = [
        ("Split", "\n".join(split_lines)),
        ("Ingestion", ingestion),
        (
            "Test sets",
            scores_by_test_set_markdown(
                scheme,
                {
                    "LSTM autoencoder-classifier": autoencoder_metrics,
                    "1D-CNN baseline": cnn_metrics,
                    "linear baseline (RR + morphology)": linear_metrics,
                },
            )
            + "\n\n"
            + published_scores_markdown(published),
        ),
        (
            "LSTM autoencoder-classifier (test: MIT-BIH)",
            metrics_table_markdown(autoencoder_metrics)
            + "\n\n"
            + confusion_matrix_markdown(autoencoder_metrics),
        ),
        (
            "1D-CNN baseline (test: MIT-BIH)",
            metrics_table_markdown(cnn_metrics)
            + "\n\n"
            + confusion_matrix_markdown(cnn_metrics),
        ),
        (
            "LSTM autoencoder-classifier per test record",
            _per_record_markdown(autoencoder_per_record, class_names),
        ),
        ("Anomaly detection by reconstruction error (test)", anomaly_text),
        ("DS2 scores of committed defaults", ds2_history_markdown(ds2_history)),
        (
            "Validation (model selection; the test set was not used for choices)",
            f"- autoencoder: {_headline(autoencoder_val)}\n- CNN: {_headline(cnn_val)}"
            f"\n- linear: {_headline(linear_val)}",
        ),
    ]
    return markdown_report(title, sections)
