"""Test-set predictions, metrics on both test sets, figures and the report."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from medlstm.pipelines.brain_tumor_bilstm.evaluation import (
    accuracy_by_similarity,
    metrics_for_mlflow,
    predict_test_images,
    score_test_sets,
)
from medlstm.pipelines.brain_tumor_bilstm.reporting import (
    build_report,
    confusion_figures,
    misclassified_grid,
)
from tests.pipelines.brain_tumor_bilstm.factories import CLASSES


class PixelOracle(nn.Module):
    """Predicts the class written into pixel (0, 0) as ``class / 10``."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(1, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return -100 * (images[:, :1, 0] - torch.arange(4) / 10).abs()


def _fixture():
    # 4 train images, 8 test images; the model errs on test images 6 and 7, and
    # images 4-5 are the test images that leak from training.
    n = 12
    truth = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3])
    shown = truth.copy()
    shown[[10, 11]] = [0, 0]
    images = np.random.default_rng(0).random((n, 8, 8)).astype(np.float32)
    images[:, 0, 0] = shown / 10
    subsets = pd.DataFrame(
        {
            "image_id": [f"Testing/x/img{i}.png" for i in range(n)],
            "class_name": [CLASSES[k] for k in truth],
            "label": truth,
            "subset": ["train"] * 4 + ["test"] * 8,
            "deduplicated_test": [False] * 4 + [False, False] + [True] * 6,
            "nearest_training_similarity": [1.0] * 4
            + [0.999, 0.999, 0.5, 0.5, 0.5, 0.5, 0.92, 0.96],
            "nearest_training_image": [""] * n,
        }
    )
    return {"images": images}, subsets


@pytest.fixture
def predictions(params):
    images, subsets = _fixture()
    return predict_test_images(PixelOracle(), images, subsets, params["data"])


def test_predictions_cover_the_test_images_with_probabilities(predictions):
    assert len(predictions) == 8
    assert predictions["predicted_class"].tolist()[-2:] == ["glioma", "glioma"]
    probabilities = predictions[[f"p_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert predictions["correct"].tolist() == [True] * 6 + [False] * 2


def test_metrics_on_published_and_deduplicated_test_sets(predictions, params):
    metrics = score_test_sets(predictions, params["data"])
    assert metrics["published"]["n"] == 8 and metrics["published"]["accuracy"] == 0.75
    assert metrics["deduplicated"]["n"] == 6
    assert metrics["deduplicated"]["accuracy"] == pytest.approx(4 / 6)
    logged = metrics_for_mlflow(metrics)
    assert logged["test_deduplicated.accuracy"] == {
        "value": pytest.approx(4 / 6),
        "step": 0,
    }
    assert "test_published.per_class.glioma.f1" in logged


def test_accuracy_by_similarity_buckets(predictions, params):
    table = accuracy_by_similarity(predictions, params["evaluation"])
    counts = zip(table["test_images"], table["accuracy"], strict=True)
    rows = dict(zip(table["nearest_training_similarity"], counts, strict=True))
    assert rows["< 0.9"] == (4, 1.0)
    assert rows["0.9 to < 0.95"] == (1, 0.0)
    assert rows["0.95 to < 0.98"] == (1, 0.0)
    assert rows[">= 0.995"] == (2, 1.0)


def test_figures_are_drawn(predictions, params):
    images, subsets = _fixture()
    metrics = score_test_sets(predictions, params["data"])
    published, dedup = confusion_figures(metrics)
    assert (
        "n = 8" in published.axes[0].get_title()
        and "n = 6" in dedup.axes[0].get_title()
    )
    grid = misclassified_grid(images, subsets, predictions, params["evaluation"])
    titles = [ax.get_title() for ax in grid.axes if ax.get_title()]
    assert len(titles) == 2
    assert all(t.startswith("*") and "-> glioma" in t for t in titles)
    matplotlib.pyplot.close("all")


def test_report_sets_our_numbers_beside_the_original(predictions, params):
    metrics = score_test_sets(predictions, params["data"])
    summary = {
        "n_parameters": 286052,
        "n_train": 4,
        "n_val": 2,
        "best_epoch": 3,
        "epochs_run": 8,
        "stopped_early": True,
        "best_val_loss": 0.5,
        "best_val_accuracy": 0.8,
        "seconds_to_best_epoch": 120.0,
        "seconds_total": 300.0,
        "torch_threads": 1,
    }
    quality = {
        "image_size": 64,
        "files_seen": {"Training": 4},
        "n_skipped": 0,
        "skipped_by_reason": {},
    }
    audit = {
        "threshold": 0.98,
        "embedding_size": 32,
        "match_mirrored": True,
        "testing_with_training_duplicate": {"total": 2, "of": 8},
        "per_class": {
            c: dict.fromkeys(
                [
                    "training_images",
                    "training_in_duplicate_group",
                    "testing_images",
                    "testing_with_training_duplicate",
                    "testing_exact_copy_of_training",
                    "testing_mirrored_copy_of_training",
                    "deduplicated_testing_images",
                ],
                1,
            )
            for c in CLASSES
        },
        "label_conflicts": {"count": 0, "pairs": []},
    }
    similarity = accuracy_by_similarity(predictions, params["evaluation"])
    report = build_report(metrics, similarity, summary, quality, audit, params)
    assert "| accuracy | 0.8759 | 0.7500 | 0.6667 |" in report
    assert "| F1 notumor | 0.793 |" in report
    assert "Variant **original**" in report
    assert "**2.0 min**" in report
    assert "Testing without images that have a duplicate in Training" in report


class SoftModel(nn.Module):
    """Moderate logits: probabilities far from 0 and 1, as a real model gives."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :4, 0] * 3.0 + torch.arange(4) * 0.1


def test_soft_in_memory_predictions_score_with_roc_auc(params):
    """Scored straight from the node (no CSV round trip), soft probabilities must
    still sum to 1, or scikit-learn's ROC-AUC refuses them."""
    images, subsets = _fixture()
    predictions = predict_test_images(SoftModel(), images, subsets, params["data"])
    probabilities = predictions[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert np.abs(probabilities.sum(axis=1) - 1.0).max() < 1e-6
    metrics = score_test_sets(predictions, params["data"])
    assert 0.0 <= metrics["published"]["roc_auc"] <= 1.0
