"""The run's Markdown summary: data, split, every model's test and validation scores
by test set, the published anchors and every DS2 score a committed default received."""

from __future__ import annotations

from typing import Any

import pandas as pd

from medlstm.core.evaluation import (
    confusion_matrix_markdown,
    markdown_report,
    metrics_table_markdown,
)
from medlstm.core.reporting import markdown_table
from medlstm.pipelines.ecg_autoencoder.reporting import TEST_SET_NAMES, by_test_set

OPTIMISTIC_NOTE = (
    "**Optimistic estimate:** the intra-patient split puts beats of the same patients "
    "in training and test, so these figures overstate performance on new patients."
)


def _counts_table(split_report: dict[str, Any], class_names: list[str]) -> str:
    rows = []
    for part in ("train", "train_unused", "val", "test", "excluded"):
        counts = split_report["beats"].get(part, {})
        if part == "train_unused" and not counts:
            continue
        n_records = len(split_report["records"].get(part, []))
        rows.append(
            [part, n_records if part != "train_unused" else "-"]
            + [counts.get(c, 0) for c in class_names]
            + [sum(counts.values())]
        )
    return markdown_table(rows, ["part", "records", *class_names, "total"])


def _per_record_markdown(table: pd.DataFrame, class_names: list[str]) -> str:
    """Cells "found / n (+false alarms)" per record; a line on each class's biggest record."""
    rows = [
        [row["record"], int(row["n_beats"])]
        + [
            f"{int(row[f'{c}_found'])} / {int(row[f'{c}_n'])} (+{int(row[f'{c}_false'])})"
            if row[f"{c}_n"] or row[f"{c}_false"]
            else "-"
            for c in class_names
        ]
        for row in table.to_dict("records")
    ]
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
        + markdown_table(rows, ["record", "beats", *class_names])
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


def scores_by_test_set_markdown(scheme: str, models: dict[str, dict[str, Any]]) -> str:
    """One row per model and test set: the protocol, accuracy, macro F1, S and V
    Se / +P. Test sets of different databases are reported apart, never pooled."""
    rows = []
    for model, metrics in models.items():
        for database, m in by_test_set(metrics).items():
            pc = m["per_class"]
            rows.append(
                [model, scheme, TEST_SET_NAMES.get(database, database), m["n"]]
                + [f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}"]
                + [
                    f"{pc[c]['recall']:.3f} / {pc[c]['precision']:.3f}"
                    if c in pc
                    else "-"
                    for c in ("S", "V")
                ]
            )
    header = ["model", "protocol", "test set", "beats", "accuracy", "macro F1"]
    return markdown_table(rows, [*header, "S Se / +P", "V Se / +P"], "lllrrrrr")


def published_scores_markdown(published: pd.DataFrame) -> str:
    """Published inter-patient DS1 -> DS2 results, as rows comparable with ours."""
    rows = [
        [row["study"], row["method"]]
        + [f"{row[f'{c}_Se']:.3f} / {row[f'{c}_P']:.3f}" for c in ("S", "V")]
        for row in published.to_dict("records")
    ]
    return (
        "Published results of the same protocol (train DS1, test DS2, AAMI classes), "
        "as reported by their authors:\n\n"
        + markdown_table(rows, ["study", "method", "S Se / +P", "V Se / +P"], "llrr")
    )


def ds2_history_markdown(history: pd.DataFrame) -> str:
    """Every DS2 score a committed default setting received (date, commit, machine,
    precision), so that nobody tunes on DS2 by repetition unnoticed."""
    columns = ["accuracy", "S_Se", "S_P", "V_Se", "V_P", "macro_f1"]
    rows = []
    for row in history.to_dict("records"):
        v = {c: row.get(c) for c in columns}
        cell = {c: "-" if pd.isna(v[c]) else f"{float(v[c]):.3f}" for c in columns}
        rows.append(
            [row[k] for k in ("date", "commit", "model", "setting", "protocol")]
            + [f"{row['machine']}, {row['precision']}", cell["accuracy"]]
            + [f"{cell['S_Se']} / {cell['S_P']}", f"{cell['V_Se']} / {cell['V_P']}"]
            + [cell["macro_f1"]]
        )
    header = ["date", "commit", "model", "setting", "protocol", "machine, precision"]
    table = markdown_table(
        rows,
        [*header, "accuracy", "S Se / +P", "V Se / +P", "macro F1"],
        "llllllrrrr",
    )
    return (
        "Every DS2 score that a committed default setting received before this run "
        "(docs/experiments/ecg_ds2_scores.csv; add this run's rows when its setting "
        "is committed as a default):\n\n" + table
    )


def _split_section(split_report: dict[str, Any], class_names: list[str]) -> str:
    """The scheme, the records of each part and the beat counts per class."""
    lines = [
        f"Scheme **{split_report['scheme']}** "
        + (
            "(patient-wise: no record in two parts, checked)."
            if split_report["patient_wise"]
            else ""
        ),
    ]
    if split_report["optimistic"]:
        lines.insert(0, OPTIMISTIC_NOTE + "\n")
    else:
        for part in ("train", "val", "test", "excluded"):
            records = split_report["records"].get(part, [])
            lines.append(f"- {part} ({len(records)}): {', '.join(records) or '-'}")
    return "\n".join([*lines, "", _counts_table(split_report, class_names)])


def _ingestion_section(report: dict[str, Any]) -> str:
    """Beats kept, dropped (and why) and records skipped."""
    totals = report["totals"]
    return (
        f"{report['n_beats']} beats kept ({report['window_samples']}-sample "
        f"windows at {report['target_fs']:g} Hz). Dropped: "
        f"{totals.get('dropped_edge', 0)} too close to a record edge, "
        f"{totals.get('dropped_no_rr', 0)} without a neighbouring beat, "
        f"{totals.get('dropped_nan', 0)} with invalid samples; "
        f"{totals.get('skipped_unknown_symbol', 0)} unknown symbols skipped. "
        f"Skipped records: {report['skipped_records'] or 'none'}."
    )


def _anomaly_section(anomaly: dict[str, Any]) -> str:
    """ROC-AUC of the reconstruction error and its statistics per class."""
    auc = anomaly.get("roc_auc_abnormal_vs_normal")
    rows = [
        [c, f"{v['mean']:.4g}", f"{v['median']:.4g}", v["n"]]
        for c, v in anomaly["per_class"].items()
    ]
    return (
        f"ROC-AUC of the reconstruction error, abnormal vs {anomaly['normal_class']}: "
        + (f"**{auc:.3f}**" if auc is not None else "undefined")
        + "\n\n"
        + markdown_table(rows, ["class", "mean error", "median error", "n"])
    )


def _model_section(metrics: dict[str, Any]) -> str:
    return metrics_table_markdown(metrics) + "\n\n" + confusion_matrix_markdown(metrics)


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
    rhythm_metrics: dict[str, Any],
    rhythm_val: dict[str, Any],
    ds2_history: pd.DataFrame,
    published: pd.DataFrame,
    data_note: str | None = None,
) -> str:
    """Markdown summary: what data the figures come from (``data_note``, e.g. that an
    excerpt's figures are not the full-data results), split, records and beat counts,
    the scores of every model by test set beside the published ones, AAMI tables, the
    autoencoder's results per test record, and the validation figures the models
    were selected on."""
    title = "ECG beat classification (AAMI EC57 classes)"
    if split_report["optimistic"]:
        title += " - OPTIMISTIC intra-patient split"
    models = {
        "rhythm BiLSTM (beats in their order)": rhythm_metrics,
        "LSTM autoencoder-classifier": autoencoder_metrics,
        "1D-CNN baseline": cnn_metrics,
        "linear baseline (RR + morphology)": linear_metrics,
    }
    test_sets = scores_by_test_set_markdown(split_report["scheme"], models)
    sections = [
        ("Data", data_note or ""),
        ("Split", _split_section(split_report, list(label_mapping))),
        ("Ingestion", _ingestion_section(ingestion_report)),
        ("Test sets", test_sets + "\n\n" + published_scores_markdown(published)),
        ("Rhythm BiLSTM (test: MIT-BIH)", _model_section(rhythm_metrics)),
        (
            "LSTM autoencoder-classifier (test: MIT-BIH)",
            _model_section(autoencoder_metrics),
        ),
        ("1D-CNN baseline (test: MIT-BIH)", _model_section(cnn_metrics)),
        (
            "LSTM autoencoder-classifier per test record",
            _per_record_markdown(autoencoder_per_record, list(label_mapping)),
        ),
        ("Anomaly detection by reconstruction error (test)", _anomaly_section(anomaly)),
        ("DS2 scores of committed defaults", ds2_history_markdown(ds2_history)),
        (
            "Validation (model selection; the test set was not used for choices)",
            f"- rhythm: {_headline(rhythm_val)}\n"
            f"- autoencoder: {_headline(autoencoder_val)}\n- CNN: {_headline(cnn_val)}"
            f"\n- linear: {_headline(linear_val)}",
        ),
    ]
    return markdown_report(title, [(name, text) for name, text in sections if text])
