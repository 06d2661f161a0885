"""brain_tumor_bilstm: MRI slices -> duplicate audit -> leak-free split -> BiLSTM ->
evaluation on the published and the deduplicated test split -> reports, and the
inference pipeline that kedro-mlflow logs as a pyfunc model taking raw image bytes.

Nodes sit in the namespaces ``brain_tumor_bilstm.<group>`` (ingestion, audit,
training, evaluation, reporting, inference); dataset and parameter names carry no
namespace."""

from __future__ import annotations

from pathlib import Path

from kedro.pipeline import Pipeline, node
from kedro_mlflow.pipeline import pipeline_ml_factory
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import medlstm
from medlstm.core.persistence import pip_requirements
from medlstm.core.wiring import group
from medlstm.pipelines.brain_tumor_bilstm.audit import audit_duplicates
from medlstm.pipelines.brain_tumor_bilstm.evaluation import (
    accuracy_by_similarity,
    metrics_for_mlflow,
    predict_test_images,
    score_test_sets,
)
from medlstm.pipelines.brain_tumor_bilstm.inference import (
    predict_image_bytes,
    predict_path,
)
from medlstm.pipelines.brain_tumor_bilstm.ingestion import ingest_images
from medlstm.pipelines.brain_tumor_bilstm.reporting import (
    build_report,
    confusion_figures,
    misclassified_grid,
    training_curves,
)
from medlstm.pipelines.brain_tumor_bilstm.splitting import assign_subsets
from medlstm.pipelines.brain_tumor_bilstm.training import train_classifier

PACKAGE = "brain_tumor_bilstm"
P = f"params:{PACKAGE}"
GROUPS = ("ingestion", "audit", "training", "evaluation", "reporting", "inference")


def _ingestion() -> list:
    return [
        node(
            ingest_images,
            [
                "brain_mri_raw_training",
                "brain_mri_raw_testing",
                f"{P}.data",
                f"{P}.ingestion",
            ],
            ["brain_mri_images", "brain_mri_index", "brain_mri_quality_report"],
            name="ingest_images",
        )
    ]


def _audit() -> list:
    """Find duplicates, then split so that no duplicate group spans two subsets."""
    return [
        node(
            audit_duplicates,
            ["brain_mri_images", "brain_mri_index", f"{P}.audit"],
            [
                "brain_mri_index_audited",
                "brain_mri_duplicate_pairs",
                "brain_mri_duplicate_report",
            ],
            name="audit_duplicates",
        ),
        node(
            assign_subsets,
            ["brain_mri_index_audited", f"{P}.split"],
            "brain_mri_subsets",
            name="assign_subsets",
        ),
    ]


def _training() -> list:
    return [
        node(
            train_classifier,
            [
                "brain_mri_images",
                "brain_mri_subsets",
                *(
                    f"{P}.{key}"
                    for key in ("data", "model", "training", "augmentation", "runtime")
                ),
            ],
            [
                "brain_bilstm_model",
                "brain_bilstm_history_metrics",
                "brain_bilstm_history",
                "brain_bilstm_training_summary",
            ],
            name="train_classifier",
        )
    ]


def _evaluation() -> list:
    return [
        node(
            predict_test_images,
            [
                "brain_bilstm_model",
                "brain_mri_images",
                "brain_mri_subsets",
                f"{P}.data",
            ],
            "brain_bilstm_test_predictions",
            name="predict_test_images",
        ),
        node(
            score_test_sets,
            ["brain_bilstm_test_predictions", f"{P}.data"],
            "brain_bilstm_test_metrics",
            name="score_test_sets",
        ),
        node(
            metrics_for_mlflow,
            "brain_bilstm_test_metrics",
            "brain_bilstm_test_metrics_mlflow",
            name="metrics_for_mlflow",
        ),
        node(
            accuracy_by_similarity,
            ["brain_bilstm_test_predictions", f"{P}.evaluation"],
            "brain_bilstm_accuracy_by_similarity",
            name="accuracy_by_similarity",
        ),
    ]


def _reporting() -> list:
    return [
        node(
            training_curves,
            ["brain_bilstm_history", f"{P}.variant"],
            "brain_bilstm_training_curves",
            name="training_curves",
        ),
        node(
            confusion_figures,
            "brain_bilstm_test_metrics",
            [
                "brain_bilstm_confusion_published",
                "brain_bilstm_confusion_deduplicated",
            ],
            name="confusion_figures",
        ),
        node(
            misclassified_grid,
            [
                "brain_mri_images",
                "brain_mri_subsets",
                "brain_bilstm_test_predictions",
                f"{P}.evaluation",
            ],
            "brain_bilstm_misclassified_grid",
            name="misclassified_grid",
        ),
        node(
            build_report,
            [
                "brain_bilstm_test_metrics",
                "brain_bilstm_accuracy_by_similarity",
                "brain_bilstm_training_summary",
                "brain_mri_quality_report",
                "brain_mri_duplicate_report",
                P,
            ],
            "brain_bilstm_report",
            name="build_report",
        ),
    ]


def _inference() -> list:
    """Classify the files named by ``inference.input_path`` with the trained model."""
    return [
        node(
            predict_path,
            ["brain_bilstm_model", f"{P}.data", f"{P}.ingestion", f"{P}.inference"],
            "brain_bilstm_path_predictions",
            name="predict_path",
        )
    ]


def create_training_pipeline() -> Pipeline:
    """Ingest, audit, split, train, evaluate and report."""
    nodes = {
        "ingestion": _ingestion,
        "audit": _audit,
        "training": _training,
        "evaluation": _evaluation,
        "reporting": _reporting,
        "inference": _inference,
    }
    return Pipeline(
        [group(PACKAGE, name, nodes[name]()) for name in GROUPS], tags=PACKAGE
    )


def create_inference_pipeline() -> Pipeline:
    """Raw image bytes (``brain_pyfunc_input``) -> class and probabilities."""
    return group(
        PACKAGE,
        "inference",
        [
            node(
                predict_image_bytes,
                [
                    "brain_pyfunc_input",
                    "brain_bilstm_model",
                    f"{P}.data",
                    f"{P}.ingestion",
                ],
                "brain_pyfunc_predictions",
                name="predict_image_bytes",
            )
        ],
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The training pipeline; at its end kedro-mlflow logs the inference pipeline with
    the trained model as the pyfunc model ``brain_bilstm_pyfunc``."""
    return pipeline_ml_factory(
        training=create_training_pipeline(),
        inference=create_inference_pipeline(),
        input_name="brain_pyfunc_input",
        log_model_kwargs={
            "name": "brain_bilstm_pyfunc",
            # One image file's bytes per row (base64 in JSON requests to a server).
            "signature": ModelSignature(inputs=Schema([ColSpec("binary", "image")])),
            # The model loads medlstm (datasets, architecture) in the serving process.
            "code_paths": [str(Path(medlstm.__file__).parent)],
            "pip_requirements": pip_requirements("pillow"),
        },
    )
