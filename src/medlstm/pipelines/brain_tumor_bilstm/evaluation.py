"""Test-set predictions, metrics on the published and deduplicated splits, and
accuracy by similarity to the nearest Training image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medlstm.core.evaluation import classification_metrics, summary_to_mlflow
from medlstm.core.training import class_probabilities

TEST_SETS = {
    "published": "published Testing split",
    "deduplicated": "Testing without images that have a duplicate in Training",
}


def predict_test_images(
    model: nn.Module,
    images: Mapping[str, np.ndarray],
    assigned: pd.DataFrame,
    data_params: Mapping[str, Any],
) -> pd.DataFrame:
    """One row per test image: truth, prediction, class probabilities, and whether it
    belongs to the deduplicated test set."""
    mask = (assigned["subset"] == "test").to_numpy()
    classes = list(data_params["classes"])
    probabilities = class_probabilities(model, images["images"][mask], batch_size=512)
    rows = assigned.loc[
        mask,
        [
            "image_id",
            "class_name",
            "label",
            "deduplicated_test",
            "nearest_training_similarity",
            "nearest_training_image",
        ],
    ].reset_index(drop=True)
    predicted = probabilities.argmax(axis=1)
    rows["predicted_label"] = predicted
    rows["predicted_class"] = [classes[i] for i in predicted]
    rows["correct"] = rows["predicted_label"] == rows["label"]
    # Unrounded: rounded probabilities no longer sum to 1, and ROC-AUC refuses them.
    for i, name in enumerate(classes):
        rows[f"p_{name}"] = probabilities[:, i]
    return rows


def _test_set(predictions: pd.DataFrame, name: str) -> pd.DataFrame:
    return (
        predictions
        if name == "published"
        else predictions[predictions["deduplicated_test"]]
    )


def score_test_sets(
    predictions: pd.DataFrame, data_params: Mapping[str, Any]
) -> dict[str, Any]:
    """`classification_metrics` on each test set: ``{"published": ..., "deduplicated": ...}``."""
    classes = list(data_params["classes"])
    result = {}
    for name in TEST_SETS:
        rows = _test_set(predictions, name)
        scores = rows[[f"p_{c}" for c in classes]].to_numpy() if len(rows) else None
        result[name] = classification_metrics(
            rows["label"].to_numpy(),
            rows["predicted_label"].to_numpy(),
            classes,
            scores,
        )
    return result


def metrics_for_mlflow(metrics: Mapping[str, Any]) -> dict[str, dict]:
    """Final test metrics as MLflow metrics: ``test_published.accuracy`` and so on."""
    logged: dict[str, dict] = {}
    for name, values in metrics.items():
        logged |= summary_to_mlflow(values, prefix=f"test_{name}.")
    return logged


def accuracy_by_similarity(
    predictions: pd.DataFrame, evaluation_params: Mapping[str, Any]
) -> pd.DataFrame:
    """Accuracy of test images grouped by how closely their nearest Training image
    correlates with them: leakage shows as accuracy rising with similarity."""
    edges = sorted(float(e) for e in evaluation_params["similarity_bins"])
    labels = [f"< {edges[0]:g}"] + [
        f"{low:g} to < {high:g}" for low, high in zip(edges, edges[1:], strict=False)
    ]
    labels.append(f">= {edges[-1]:g}")
    bucket = np.digitize(predictions["nearest_training_similarity"].to_numpy(), edges)
    table = predictions.groupby(bucket)["correct"].agg(["size", "mean"])
    return pd.DataFrame(
        {
            "nearest_training_similarity": [labels[i] for i in table.index],
            "test_images": table["size"].to_numpy(),
            "accuracy": table["mean"].round(4).to_numpy(),
        }
    )
