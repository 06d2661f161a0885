"""The shared evaluation module: metrics against hand-counted cases, figures, tables."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from medlstm.core.evaluation import (
    classification_metrics,
    confusion_matrix_figure,
    confusion_matrix_markdown,
    flatten_metrics,
    history_to_mlflow,
    macro_f1,
    metrics_table_markdown,
    regression_metrics,
    summary_to_mlflow,
    training_curves_figure,
)

NAMES = ["N", "S", "V"]


def test_metrics_match_hand_counts_and_sklearn():
    true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 0])
    pred = np.array([0, 0, 1, 0, 1, 0, 2, 2, 0, 0])
    m = classification_metrics(true, pred, NAMES)
    assert m["confusion_matrix"] == [[4, 1, 0], [1, 1, 0], [1, 0, 2]]
    assert m["accuracy"] == pytest.approx(0.7)
    s = m["per_class"]["S"]
    assert s["recall"] == pytest.approx(0.5)  # Se
    assert s["precision"] == pytest.approx(0.5)  # +P
    assert s["specificity"] == pytest.approx(7 / 8)
    assert s["support"] == 2
    np.testing.assert_allclose(
        [m["per_class"][n]["f1"] for n in NAMES], f1_score(true, pred, average=None)
    )
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(true, pred, average="weighted"))
    assert m["per_class"]["V"]["precision"] == pytest.approx(
        precision_score(true, pred, average=None)[2]
    )
    assert m["per_class"]["V"]["recall"] == pytest.approx(
        recall_score(true, pred, average=None)[2]
    )
    json.dumps(m)  # goes to a JSON file unchanged


def test_binary_roc_auc_and_absent_class():
    true = np.array([0, 0, 1, 1])
    score = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    m = classification_metrics(true, score.argmax(1), ["LGG", "HGG"], y_score=score)
    assert m["roc_auc"] == pytest.approx(0.75)
    only_one = classification_metrics(
        np.zeros(3, int), np.zeros(3, int), ["a", "b"], np.ones((3, 2)) / 2
    )
    assert "roc_auc" not in only_one  # undefined, not invented
    assert only_one["macro_f1"] == pytest.approx(
        1.0
    )  # absent class does not count as 0


def test_bad_indices_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1], [0], ["a", "b"])


def test_regression_metrics():
    m = regression_metrics(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0]), scale=0.5
    )
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mase"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="scale"):
        regression_metrics(np.ones(2), np.ones(2), scale=0.0)


def test_mlflow_shapes():
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 2.0},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 1.5},
    ]
    logged = history_to_mlflow(history, prefix="ecg.")
    assert logged["ecg.val_loss"] == [
        {"value": 2.0, "step": 1},
        {"value": 1.5, "step": 2},
    ]
    m = classification_metrics([0, 1], [0, 1], ["N", "S (SVEB)"])
    summary = summary_to_mlflow(m, prefix="test.")
    assert summary["test.accuracy"] == {"value": 1.0, "step": 0}
    assert "test.per_class.S _SVEB_.recall" in summary
    assert "test.n" in flatten_metrics(m, "test.")


def test_ensemble_histories_keep_each_member_apart():
    history = [
        {"epoch": e, "member": m, "train_loss": m + 1 / e, "val_loss": m + 2 / e}
        for m in (0, 1)
        for e in (1, 2, 3)[: 2 + m]  # members may stop at different epochs
    ]
    logged = history_to_mlflow(history)
    assert set(logged) == {
        "member0/train_loss", "member0/val_loss", "member1/train_loss", "member1/val_loss",
    }  # fmt: skip
    assert [r["step"] for r in logged["member1/val_loss"]] == [1, 2, 3]
    assert logged["member0/val_loss"][-1] == {"value": 1.0, "step": 2}

    fig = training_curves_figure(history, "ensemble")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["val (member 1)"].get_xdata()) == [1, 2, 3]
    assert list(lines["train (member 0)"].get_ydata()) == [1.0, 0.5]
    plt.close(fig)


def test_figures_and_tables_render():
    m = classification_metrics([0, 1, 2, 2], [0, 1, 2, 1], NAMES)
    fig = confusion_matrix_figure(m, "cm")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "1\n50%" in texts
    plt.close(fig)
    fig = training_curves_figure(
        [
            {
                "epoch": e,
                "train_loss": 1 / e,
                "val_loss": 1.2 / e,
                "train_accuracy": 0.5,
                "val_accuracy": 0.6,
            }
            for e in (1, 2, 3)
        ],
        "curves",
    )
    assert len(fig.axes) == 2
    plt.close(fig)
    table = metrics_table_markdown(m)
    assert "| V | 0.500 | 1.000 |" in table
    assert "| **V** | 0 | 1 | 1 |" in confusion_matrix_markdown(m)


def test_training_monitors_and_reports_share_one_macro_f1():
    import torch

    from medlstm.core.training import StepOutput, _EpochStats

    # Class 2 is predicted once but never true: it must not add a 0 to the average.
    true = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 2, 1, 1, 0, 0])
    expected = f1_score(true, pred, labels=[0, 1], average="macro")
    assert macro_f1(true, pred) == pytest.approx(expected)
    assert classification_metrics(true, pred, ["a", "b", "c"])["macro_f1"] == (
        pytest.approx(expected)
    )
    stats = _EpochStats()
    logits = torch.nn.functional.one_hot(torch.tensor(pred), 3).float()
    stats.add(StepOutput(torch.tensor(0.5), logits, torch.tensor(true)), len(true))
    assert stats.summary("val")["val_macro_f1"] == pytest.approx(expected)
