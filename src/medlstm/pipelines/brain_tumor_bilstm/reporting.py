"""Figures and the Markdown report beside the original's published numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medlstm.core.evaluation import (
    confusion_matrix_figure,
    confusion_matrix_markdown,
    markdown_report,
    metrics_table_markdown,
    training_curves_figure,
)
from medlstm.core.reporting import markdown_table
from medlstm.pipelines.brain_tumor_bilstm.evaluation import TEST_SETS


def confusion_figures(metrics: Mapping[str, Any]) -> tuple[Figure, Figure]:
    """Confusion matrices of the published and the deduplicated test sets."""
    return tuple(
        confusion_matrix_figure(
            metrics[name], f"{TEST_SETS[name].capitalize()} (n = {metrics[name]['n']})"
        )
        for name in TEST_SETS
    )


def training_curves(
    history: list[dict[str, float]], variant: Mapping[str, Any]
) -> Figure:
    """Loss, accuracy and macro F1 per epoch, train vs validation."""
    return training_curves_figure(
        history, f"BiLSTM brain tumour MRI ({variant['name']})"
    )


def misclassified_grid(
    images: Mapping[str, np.ndarray],
    assigned: pd.DataFrame,
    predictions: pd.DataFrame,
    evaluation_params: Mapping[str, Any],
) -> Figure:
    """The most confidently wrong test images, each titled ``true -> predicted (p)``;
    a ``*`` marks images that are also in the deduplicated test set."""
    limit = int(evaluation_params.get("misclassified_grid_size", 32))
    wrong = predictions[~predictions["correct"]].copy()
    wrong["confidence"] = [
        row[f"p_{row['predicted_class']}"] for _, row in wrong.iterrows()
    ]
    wrong = wrong.sort_values("confidence", ascending=False).head(limit)
    position = pd.Series(
        np.arange(len(assigned)), index=assigned["image_id"].to_numpy()
    )
    columns = 8
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.0 * columns, 2.3 * rows), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    if wrong.empty:
        axes[0, 0].text(0, 0.5, "No misclassified test images.", fontsize=12)
    for ax, (_, row) in zip(axes.ravel(), wrong.iterrows(), strict=False):
        ax.imshow(
            images["images"][position[row["image_id"]]], cmap="gray", vmin=0, vmax=1
        )
        marker = "*" if row["deduplicated_test"] else ""
        ax.set_title(
            f"{marker}{row['class_name']} -> {row['predicted_class']}\n"
            f"p={row['confidence']:.2f} {row['image_id'].rsplit('/', 1)[-1]}",
            fontsize=7,
        )
    fig.suptitle(
        f"Misclassified test images, most confident first ({len(wrong)} of "
        f"{int((~predictions['correct']).sum())}; * = also in the deduplicated test set)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _reference_table(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    header = ["metric", "original, as published", "this run, published split"]
    header.append("this run, deduplicated split")
    rows = [
        [key.replace("_", " ")]
        + [f"{v:.4f}" for v in (reference[key], *(metrics[s][key] for s in TEST_SETS))]
        for key in ("accuracy", "macro_f1", "weighted_f1")
    ]
    for name, value in reference["f1_per_class"].items():
        ours = [
            metrics[s]["per_class"].get(name, {}).get("f1", float("nan"))
            for s in TEST_SETS
        ]
        support = metrics["deduplicated"]["per_class"].get(name, {}).get("support", 0)
        rows.append(
            [f"F1 {name}", f"{value:.3f}", f"{ours[0]:.3f}"]
            + [f"{ours[1]:.3f} (n = {support})"]
        )
    return markdown_table(rows, header)


def _key_values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in values.items())


def _audit_table(audit: Mapping[str, Any]) -> str:
    header = ["class", "Training", "in a duplicate group", "Testing"]
    header += ["with a Training duplicate (exact / mirrored)", "deduplicated Testing"]
    rows = [
        [
            name,
            c["training_images"],
            c["training_in_duplicate_group"],
            c["testing_images"],
            f"{c['testing_with_training_duplicate']} "
            f"({c['testing_exact_copy_of_training']} / "
            f"{c['testing_mirrored_copy_of_training']})",
            c["deduplicated_testing_images"],
        ]
        for name, c in audit["per_class"].items()
    ]
    return markdown_table(rows, header)


def _configuration(
    params: Mapping[str, Any], summary: Mapping[str, Any], size: int
) -> str:
    variant, reference = params["variant"], params["reference"]
    return (
        f"Variant **{variant['name']}**: {variant['description']}\n\n"
        f"- training: {_key_values(params['training'])}\n"
        f"- augmentation: {_key_values(params['augmentation'])}\n"
        f"- model: {summary['n_parameters']:,} parameters (original reported "
        f"{reference['n_parameters']}); images {size}x{size}\n"
        f"- subsets: {summary['n_train']} train / {summary['n_val']} validation images "
        "(validation drawn from Training by whole duplicate groups)"
    )


def _training(summary: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    stop = "stopped early" if summary["stopped_early"] else "no early stop"
    return (
        f"Best epoch {summary['best_epoch']} of {summary['epochs_run']} run ({stop}); "
        f"best validation loss {summary['best_val_loss']:.4f}, accuracy "
        f"{summary['best_val_accuracy']:.4f}. Wall time to the best epoch "
        f"**{summary['seconds_to_best_epoch'] / 60:.1f} min**, in all "
        f"{summary['seconds_total'] / 60:.1f} min on {summary['torch_threads']} CPU "
        f"thread(s) (original: {reference['training_time']})."
    )


def _data_audit(quality: Mapping[str, Any], audit: Mapping[str, Any]) -> str:
    leak = audit["testing_with_training_duplicate"]
    mirrored = "included" if audit["match_mirrored"] else "ignored"
    side = audit["embedding_size"]
    conflicts = audit["label_conflicts"]
    listed = "".join(
        f"\n- {p['image_a']} ({p['class_a']}) ~ {p['image_b']} ({p['class_b']}), "
        f"r = {p['similarity']:.4f}{', mirrored' if p['mirrored'] else ''}"
        for p in conflicts["pairs"]
    )
    return (
        f"Files seen {quality['files_seen']}; skipped {quality['n_skipped']} "
        f"({quality['skipped_by_reason']}). Near-duplicate threshold "
        f"{audit['threshold']} (Pearson correlation of {side}x{side} thumbnails, "
        f"mirrored copies {mirrored}); {leak['total']} of {leak['of']} Testing images "
        "share a duplicate group with a Training image.\n\n"
        f"{_audit_table(audit)}\n\n"
        f"Pairs with conflicting labels: {conflicts['count']}{listed}"
    )


def build_report(
    metrics: Mapping[str, Any],
    similarity: pd.DataFrame,
    training_summary: Mapping[str, Any],
    quality_report: Mapping[str, Any],
    audit_report: Mapping[str, Any],
    params: Mapping[str, Any],
) -> str:
    """The run's Markdown report: configuration, results beside the original,
    both test sets, accuracy by similarity to Training, training time, data audit."""
    test_sets = [
        (
            f"Test set: {description}",
            metrics_table_markdown(metrics[name], digits=3)
            + "\n\n"
            + confusion_matrix_markdown(metrics[name]),
        )
        for name, description in TEST_SETS.items()
    ]
    sections = [
        (
            "Configuration",
            _configuration(params, training_summary, quality_report["image_size"]),
        ),
        ("Results beside the original", _reference_table(metrics, params["reference"])),
        *test_sets,
        (
            "Accuracy by similarity to the nearest Training image",
            _frame_markdown(similarity),
        ),
        ("Training", _training(training_summary, params["reference"])),
        ("Data quality and duplicate audit", _data_audit(quality_report, audit_report)),
    ]
    title = f"Brain tumour MRI, stacked BiLSTM: {params['variant']['name']}"
    return markdown_report(title, sections)


def _frame_markdown(frame: pd.DataFrame) -> str:
    return markdown_table(frame, align="r" * len(frame.columns))
