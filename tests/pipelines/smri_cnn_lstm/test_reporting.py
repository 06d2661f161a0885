"""Reporting nodes: titles say synthetic, curves are real, the table holds every model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from medlstm.pipelines.smri_cnn_lstm.reporting import (
    compare_models,
    data_label,
    plot_cv_curves,
    prediction_report,
)

SYNTHETIC = {
    "synthetic": True,
    "cohort": "synthetic BraTS-layout cohort (40 patients, seed 0)",
    "patients_used": 40,
    "patients_by_grade": {"LGG": 16, "HGG": 24},
    "skipped_count": 1,
    "zero_filled_count": 0,
    "settings": {"modalities": ["t1", "t1ce", "t2", "flair"]},
}
REAL = {**SYNTHETIC, "synthetic": False, "cohort": "NIfTI cohort BraTS2020"}


def history(epochs: int, start: float) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": start / e,
            "val_loss": start / e + 0.1,
            "train_accuracy": 1 - 0.5 / e,
            "val_accuracy": 1 - 0.6 / e,
        }
        for e in range(1, epochs + 1)
    ]


def cv(label: str, accuracies: list[float], epochs: list[int]) -> dict:
    metrics = [
        {"accuracy": a, "roc_auc": a, "sensitivity": a, "specificity": a}
        for a in accuracies
    ]
    return {
        "label": label,
        "strategy": "kfold",
        "n_parameters": 12345,
        "folds": [
            {"fold": i, "best_epoch": n, "history": history(n, 1.0 + i), "metrics": m}
            for i, (n, m) in enumerate(zip(epochs, metrics, strict=True))
        ],
        "summary": {
            name: {
                "mean": float(np.mean(accuracies)),
                "std": float(np.std(accuracies, ddof=1)),
                "n_folds": len(accuracies),
            }
            for name in ("accuracy", "roc_auc", "sensitivity", "specificity")
        },
        "pooled": {"accuracy": 0.8, "roc_auc": 0.9},
    }


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_data_label_names_synthetic_data():
    assert data_label(SYNTHETIC) == "synthetic data"
    assert data_label(REAL) == "NIfTI cohort BraTS2020"


def test_per_model_curves_plot_train_and_validation_of_every_fold():
    fig = plot_cv_curves(cv("CNN-2", [0.7, 0.9], [5, 3]), SYNTHETIC)
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 * 2 + 2  # train + val per fold, best-epoch markers
    np.testing.assert_allclose(
        loss_ax.lines[0].get_ydata(), [1 / e for e in range(1, 6)]
    )
    assert (
        "synthetic data" in fig._suptitle.get_text()
        and "CNN-2" in fig._suptitle.get_text()
    )


def test_comparison_plots_mean_over_folds_still_training_and_the_table_lists_every_model():
    models = [
        cv("CNN-1", [0.6, 0.8], [4, 2]),
        cv("CNN-2", [0.7, 0.9], [3, 3]),
        cv("CNN-3", [1.0, 1.0], [2, 2]),
    ]
    loss, accuracy, table = compare_models(SYNTHETIC, {"group_pattern": None}, *models)
    lines = loss.axes[0].lines
    assert [line.get_label() for line in lines] == ["CNN-1", "CNN-2", "CNN-3"]
    # CNN-1: epochs 1-2 average both folds (start 1 and 2), epochs 3-4 only fold 0.
    np.testing.assert_allclose(lines[0].get_ydata(), [1.6, 0.85, 1 / 3 + 0.1, 0.35])
    assert "synthetic data" in loss.axes[0].get_title()
    assert "accuracy" in accuracy.axes[0].get_ylabel()
    assert "synthetic data" in table.splitlines()[0] and "**Synthetic data.**" in table
    row = next(line for line in table.splitlines() if line.startswith("| CNN-1"))
    assert f"0.700 ± {np.std([0.6, 0.8], ddof=1):.3f}" in row and "12,345" in row
    assert "CNN-3" in table and "3-fold" not in table and "2-fold CV" in table


def test_real_data_tables_carry_no_synthetic_warning():
    _, _, table = compare_models(
        REAL, {"group_pattern": "^(.*)_\\d+$"}, cv("A", [0.5, 0.7], [2, 2])
    )
    assert "Synthetic" not in table and "BraTS2020" in table.splitlines()[0]
    assert "grouped by" in table


def test_prediction_report_warns_about_zero_filled_modalities():
    patient = {
        "patient_id": np.array("P1"),
        "folder": np.array("/data/P1"),
        "present": np.array([[False, True, False, True]]),
        "padded_volumes": np.array(0),
    }
    predictions = [{"model": "CNN-1", "p_hgg": 0.8, "grade": "HGG"}]
    report = prediction_report(patient, SYNTHETIC, *predictions)
    assert report["zero_filled_modalities"] == ["t1", "t2"] and "warning" in report
    assert "synthetic data" in report["title"] and report["predictions"] == predictions
    complete = {**patient, "present": np.ones((1, 4), bool)}
    assert "warning" not in prediction_report(complete, SYNTHETIC, *predictions)
