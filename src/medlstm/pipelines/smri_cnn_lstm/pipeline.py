"""Wiring of smri_cnn_lstm: cohort -> cached tensors -> patient folds -> three CNN-LSTMs -> comparison.

One modular pipeline per architecture, namespaced ``smri_cnn_lstm.<model>``: its
``params:label``, ``params:model`` and ``params:training_overrides`` resolve to
``smri_cnn_lstm.<model>.*``, and its datasets are ``smri_cnn_lstm.<model>.smri_*``
(catalog factories). The shared nodes carry the top-level namespace, so node names
are ``smri_cnn_lstm.<node>`` throughout and kedro-viz groups them.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from medlstm.pipelines.smri_cnn_lstm.inference import (
    load_patient_for_prediction,
    predict_patient,
)
from medlstm.pipelines.smri_cnn_lstm.ingestion import build_model_input
from medlstm.pipelines.smri_cnn_lstm.reporting import (
    compare_models,
    plot_cv_curves,
    prediction_report,
)
from medlstm.pipelines.smri_cnn_lstm.training import (
    cross_validate,
    make_folds,
    train_final_model,
)

NAMESPACE = "smri_cnn_lstm"
MODELS = ("cnn_baseline", "cnn_gap", "cnn_se")
SHARED = {
    "smri_model_input",
    "smri_folds",
    "smri_ingestion_report",
    "smri_predict_input",
}


def _model_pipeline() -> Pipeline:
    """Cross-validate, plot, train on all patients and predict, for one architecture."""
    return Pipeline(
        [
            node(
                cross_validate,
                [
                    "smri_model_input",
                    "smri_folds",
                    "params:label",
                    "params:model",
                    "params:smri_cnn_lstm.training",
                    "params:training_overrides",
                ],
                ["smri_cv_results", "smri_cv_history", "smri_cv_metrics"],
                name="cross_validate",
            ),
            node(
                plot_cv_curves,
                ["smri_cv_results", "smri_ingestion_report"],
                "smri_training_curves",
                name="plot_cv_curves",
            ),
            node(
                train_final_model,
                [
                    "smri_model_input",
                    "smri_folds",
                    "params:model",
                    "params:smri_cnn_lstm.training",
                    "params:training_overrides",
                ],
                ["smri_model", "smri_final_history"],
                name="train_final_model",
            ),
            node(
                predict_patient,
                ["smri_model", "smri_predict_input", "params:label"],
                "smri_prediction",
                name="predict_patient",
            ),
        ]
    )


def _ingestion() -> Pipeline:
    """Cached tensors, patient folds and the one patient to predict."""
    return Pipeline(
        [
            node(
                build_model_input,
                ["smri_cohort", "params:smri_cnn_lstm.ingestion"],
                ["smri_model_input", "smri_ingestion_report"],
                name="build_model_input",
                namespace=NAMESPACE,
            ),
            node(
                make_folds,
                ["smri_model_input", "params:smri_cnn_lstm.split"],
                "smri_folds",
                name="make_folds",
                namespace=NAMESPACE,
            ),
            node(
                load_patient_for_prediction,
                ["params:smri_cnn_lstm.predict", "params:smri_cnn_lstm.ingestion"],
                "smri_predict_input",
                name="load_patient_for_prediction",
                namespace=NAMESPACE,
            ),
        ]
    )


def _comparison() -> Pipeline:
    """The architectures side by side: comparison figures, summary, predictions."""
    return Pipeline(
        [
            node(
                compare_models,
                [
                    "smri_ingestion_report",
                    "smri_folds",
                    *(f"smri_cnn_lstm.{name}.smri_cv_results" for name in MODELS),
                ],
                ["smri_loss_comparison", "smri_accuracy_comparison", "smri_summary"],
                name="compare_models",
                namespace=NAMESPACE,
            ),
            node(
                prediction_report,
                [
                    "smri_predict_input",
                    "smri_ingestion_report",
                    *(f"smri_cnn_lstm.{name}.smri_prediction" for name in MODELS),
                ],
                "smri_prediction_report",
                name="prediction_report",
                namespace=NAMESPACE,
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The full smri_cnn_lstm pipeline, three architectures compared."""
    models = [
        pipeline(
            _model_pipeline(),
            namespace=f"{NAMESPACE}.{name}",
            inputs=SHARED,
            parameters={"params:smri_cnn_lstm.training"},
        )
        for name in MODELS
    ]
    return Pipeline([_ingestion(), *models, _comparison()], tags="smri_cnn_lstm")
