"""Wiring of lstm_scratch: synthetic tasks -> NumPy and torch LSTMs -> one report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from medlstm.core.wiring import group
from medlstm.pipelines.lstm_scratch.evaluation import (
    evaluate_classification,
    evaluate_regression,
)
from medlstm.pipelines.lstm_scratch.ingestion import (
    classification_arrays,
    make_arithmetic_sequences,
    make_pattern_sequences,
    regression_arrays,
)
from medlstm.pipelines.lstm_scratch.reporting import (
    learning_curves_figure,
    training_histories,
    write_report,
)
from medlstm.pipelines.lstm_scratch.training import BACKENDS, train_numpy, train_torch

TASKS = ("regression", "classification")
TRAINERS = {"numpy": train_numpy, "torch": train_torch}


def _training_nodes(task: str) -> list:
    """One training node per implementation, fed the same arrays and settings."""
    return [
        node(
            TRAINERS[backend],
            [
                f"scratch_{task}_arrays",
                f"params:lstm_scratch.{task}.model",
                f"params:lstm_scratch.{task}.training",
                "params:lstm_scratch.compute",
            ],
            [f"scratch_{task}_{backend}_model", f"scratch_{task}_{backend}_log"],
            name=f"train_{backend}_{task}",
        )
        for backend in BACKENDS
    ]


def _ingestion_nodes() -> list:
    """Both tasks' sequences and model-ready arrays."""
    return [
        node(
            make_arithmetic_sequences,
            "params:lstm_scratch.regression.data",
            "scratch_regression_sequences",
            name="make_arithmetic_sequences",
        ),
        node(
            regression_arrays,
            "scratch_regression_sequences",
            "scratch_regression_arrays",
            name="regression_arrays",
        ),
        node(
            make_pattern_sequences,
            "params:lstm_scratch.classification.data",
            "scratch_classification_sequences",
            name="make_pattern_sequences",
        ),
        node(
            classification_arrays,
            [
                "scratch_classification_sequences",
                "params:lstm_scratch.classification.data",
            ],
            "scratch_classification_arrays",
            name="classification_arrays",
        ),
    ]


def _evaluation_nodes() -> list:
    """Both models on both tasks, their learning curves and the report."""
    logs = {
        f"{task}_{backend}": f"scratch_{task}_{backend}_log"
        for task in TASKS
        for backend in BACKENDS
    }
    return [
        node(
            evaluate_regression,
            [
                "scratch_regression_arrays",
                "scratch_regression_sequences",
                "scratch_regression_numpy_model",
                "scratch_regression_torch_model",
                "params:lstm_scratch.regression.examples",
            ],
            ["scratch_regression_predictions", "scratch_regression_metrics"],
            name="evaluate_regression",
        ),
        node(
            evaluate_classification,
            [
                "scratch_classification_arrays",
                "scratch_classification_numpy_model",
                "scratch_classification_torch_model",
            ],
            [
                "scratch_classification_predictions",
                "scratch_classification_metrics",
            ],
            name="evaluate_classification",
        ),
        node(
            training_histories,
            logs,
            "scratch_training_histories",
            name="training_histories",
        ),
        node(
            learning_curves_figure,
            logs,
            "scratch_learning_curves",
            name="learning_curves_figure",
        ),
        node(
            write_report,
            {
                "regression": "scratch_regression_metrics",
                "classification": "scratch_classification_metrics",
                "targets": "params:lstm_scratch.targets",
                **logs,
            },
            ["scratch_report", "scratch_summary_metrics"],
            name="write_report",
        ),
    ]


def create_pipeline(**kwargs) -> Pipeline:
    """Generate both tasks, train both implementations on each, and compare them."""
    training = [*_training_nodes("regression"), *_training_nodes("classification")]
    return Pipeline(
        [
            group("lstm_scratch", "ingestion", _ingestion_nodes()),
            group("lstm_scratch", "training", training),
            group("lstm_scratch", "evaluation", _evaluation_nodes()),
        ],
        tags="lstm_scratch",
    )
