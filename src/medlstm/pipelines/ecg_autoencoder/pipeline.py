"""Wiring of ecg_autoencoder.

training (``kedro run --pipeline=ecg_autoencoder``):
    records -> beats + windows -> split -> LSTM autoencoder, 1D-CNN, linear
    baseline and rhythm BiLSTM -> test
    predictions -> metrics, figures, summary; the inference part is logged to MLflow
    as one pyfunc model (kedro-mlflow ``pipeline_ml_factory``).
inference (``kedro run --pipeline=ecg_autoencoder_inference``):
    the recording at ``ecg_autoencoder.inference.record_path`` (WFDB, EDF or CSV) ->
    detected (or annotated) beats -> CSV of classes, probabilities and
    reconstruction errors, a summary (beats per class, heart rate, ectopic burden)
    and an ECG strip. The pyfunc model runs the same chain on a table of samples.

Nodes sit in the namespaces ``ecg_autoencoder.<group>``: ingestion, autoencoder,
cnn, linear, rhythm, reporting for training (each model's group holds its training,
validation and test nodes), inference for a recording and served for the pyfunc
model; datasets and parameters keep their names.

Long on purpose (~440 lines): the three pipelines share node builders and dataset
names, so their wiring stays in one file.
"""

from __future__ import annotations

from pathlib import Path

from kedro.pipeline import Pipeline, node
from kedro_mlflow.pipeline import pipeline_ml_factory

from medlstm.core.persistence import pip_requirements
from medlstm.core.wiring import group
from medlstm.pipelines.ecg_autoencoder.figures import (
    latent_projection_figure,
    reconstruction_figure,
    scores_by_test_set_figure,
)
from medlstm.pipelines.ecg_autoencoder.inference import (
    classifier_input,
    classify_beats,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import segment_databases
from medlstm.pipelines.ecg_autoencoder.linear import (
    predict_test_linear,
    predict_val_linear,
    train_linear,
)
from medlstm.pipelines.ecg_autoencoder.noisy_copies import (
    noisy_training_copies,
    train_rhythm_with_copies,
)
from medlstm.pipelines.ecg_autoencoder.recording import (
    example_signal,
    load_recording,
    segment_detected,
    segment_recording,
    signal_record,
)
from medlstm.pipelines.ecg_autoencoder.recording_report import (
    beat_table,
    recording_summary,
    strip_figure,
)
from medlstm.pipelines.ecg_autoencoder.reporting import (
    anomaly_detection,
    autoencoder_history_outputs,
    autoencoder_metrics_outputs,
    cnn_history_outputs,
    cnn_metrics_outputs,
    evaluate,
    linear_metrics_outputs,
    per_record_table,
    rhythm_history_outputs,
    rhythm_metrics_outputs,
    validation_metrics,
)
from medlstm.pipelines.ecg_autoencoder.rhythm import (
    predict_test_rhythm,
    predict_val_rhythm,
)
from medlstm.pipelines.ecg_autoencoder.splitting import assign_splits
from medlstm.pipelines.ecg_autoencoder.summary import (
    summary_report,
)
from medlstm.pipelines.ecg_autoencoder.training import (
    predict_test,
    predict_test_autoencoder,
    predict_val,
    train_autoencoder,
    train_cnn,
)

PACKAGE = "ecg_autoencoder"
P = f"params:{PACKAGE}"
FEATURES = f"{P}.features"
LABELS = f"{P}.ingestion.label_mapping"
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # src/medlstm, shipped with the model
PYFUNC_REQUIREMENTS = pip_requirements(
    "pyarrow", "scikit-learn", "scipy", "wfdb", "matplotlib"
)
VARIANTS = ("training", "inference")


def _classify_node(table: str, output: str, name: str):
    return node(
        classify_beats,
        [
            "ecg_autoencoder_model",
            "ecg_rhythm_model",
            table,
            FEATURES,
            LABELS,
            f"{P}.inference.classifier",
        ],
        output,
        name=name,
    )


INPUTS = ["ecg_beats_split", "ecg_windows"]  # every model trains on these


def _ingestion() -> list:
    """Records of both databases -> beats and windows -> the split; the rhythm model's
    training set (the split, and noisy copies of its training records when on)."""
    return [
        node(
            segment_databases,
            {
                "mitdb": "ecg_raw_records",
                "svdb": "ecg_svdb_records",
                "ingestion": f"{P}.ingestion",
                "databases": f"{P}.databases",
                "detection": f"{P}.detection",
            },
            ["ecg_beats", "ecg_windows", "ecg_ingestion_report"],
            name="segment_records",
        ),
        node(
            assign_splits,
            ["ecg_beats", f"{P}.split"],
            ["ecg_beats_split", "ecg_split_report"],
            name="assign_splits",
        ),
        node(
            noisy_training_copies,
            {
                "beats": "ecg_beats_split",
                "records": "ecg_raw_records",
                "noise_records": "ecg_noise_records",
                "ingestion": f"{P}.ingestion",
                "databases": f"{P}.databases",
                "detection": f"{P}.detection",
                "params": f"{P}.rhythm.noisy_copies",
            },
            ["ecg_noisy_copy_beats", "ecg_noisy_copy_windows"],
            name="noisy_training_copies",
        ),
    ]


def _validation(model: str) -> list:
    """Predictions and metrics of ``model`` on the validation beats."""
    return [
        node(
            predict_val,
            [f"ecg_{model}_model", *INPUTS, FEATURES, LABELS],
            f"ecg_{model}_val_predictions",
            name=f"predict_val_{model}",
        ),
        node(
            validation_metrics,
            [f"ecg_{model}_val_predictions", LABELS],
            [f"ecg_{model}_val_metrics", f"ecg_{model}_val_mlflow_metrics"],
            name=f"evaluate_val_{model}",
        ),
    ]


def _autoencoder() -> list:
    """Train the LSTM autoencoder; its test and validation scores and figures."""
    autoencoder = [
        node(
            train_autoencoder,
            [
                *INPUTS,
                f"{P}.autoencoder",
                FEATURES,
                LABELS,
                "params:alpha",
                "params:beta",
            ],
            ["ecg_autoencoder_model", "ecg_autoencoder_history"],
            name="train_autoencoder",
        ),
        node(
            autoencoder_history_outputs,
            "ecg_autoencoder_history",
            ["ecg_autoencoder_history_metrics", "ecg_autoencoder_training_curves"],
            name="autoencoder_history_outputs",
        ),
        node(
            predict_test_autoencoder,
            ["ecg_autoencoder_model", *INPUTS, FEATURES, LABELS],
            ["ecg_autoencoder_test_predictions", "ecg_autoencoder_test_latent"],
            name="predict_test_autoencoder",
        ),
        node(
            evaluate,
            ["ecg_autoencoder_test_predictions", LABELS],
            "ecg_autoencoder_test_metrics",
            name="evaluate_autoencoder",
        ),
        node(
            autoencoder_metrics_outputs,
            "ecg_autoencoder_test_metrics",
            ["ecg_autoencoder_test_mlflow_metrics", "ecg_autoencoder_confusion_matrix"],
            name="autoencoder_metrics_outputs",
        ),
        node(
            per_record_table,
            ["ecg_autoencoder_test_predictions", LABELS],
            "ecg_autoencoder_per_record",
            name="autoencoder_per_record_table",
        ),
        node(
            reconstruction_figure,
            ["ecg_autoencoder_model", *INPUTS, FEATURES, LABELS, f"{P}.reporting"],
            "ecg_autoencoder_reconstructions",
            name="reconstruction_figure",
        ),
        node(
            anomaly_detection,
            ["ecg_autoencoder_test_predictions", f"{P}.reporting.normal_class"],
            [
                "ecg_anomaly_report",
                "ecg_anomaly_mlflow_metrics",
                "ecg_reconstruction_error_figure",
            ],
            name="anomaly_detection",
        ),
        node(
            latent_projection_figure,
            ["ecg_autoencoder_test_latent", f"{P}.reporting"],
            "ecg_latent_projection",
            name="latent_projection_figure",
        ),
    ]
    return autoencoder + _validation("autoencoder")


def _cnn() -> list:
    """Train the 1D-CNN; its test and validation scores."""
    cnn = [
        node(
            train_cnn,
            [*INPUTS, f"{P}.cnn", FEATURES, LABELS],
            ["ecg_cnn_model", "ecg_cnn_history"],
            name="train_cnn",
        ),
        node(
            cnn_history_outputs,
            "ecg_cnn_history",
            ["ecg_cnn_history_metrics", "ecg_cnn_training_curves"],
            name="cnn_history_outputs",
        ),
        node(
            predict_test,
            ["ecg_cnn_model", *INPUTS, FEATURES, LABELS],
            "ecg_cnn_test_predictions",
            name="predict_test_cnn",
        ),
        node(
            evaluate,
            ["ecg_cnn_test_predictions", LABELS],
            "ecg_cnn_test_metrics",
            name="evaluate_cnn",
        ),
        node(
            cnn_metrics_outputs,
            "ecg_cnn_test_metrics",
            ["ecg_cnn_test_mlflow_metrics", "ecg_cnn_confusion_matrix"],
            name="cnn_metrics_outputs",
        ),
    ]
    return cnn + _validation("cnn")


def _linear() -> list:
    """Fit the linear anchor; its test and validation scores."""
    return [
        node(
            train_linear,
            [*INPUTS, f"{P}.linear", f"{P}.ingestion", LABELS],
            "ecg_linear_model",
            name="train_linear",
        ),
        node(
            predict_test_linear,
            ["ecg_linear_model", *INPUTS],
            "ecg_linear_test_predictions",
            name="predict_test_linear",
        ),
        node(
            evaluate,
            ["ecg_linear_test_predictions", LABELS],
            "ecg_linear_test_metrics",
            name="evaluate_linear",
        ),
        node(
            linear_metrics_outputs,
            "ecg_linear_test_metrics",
            ["ecg_linear_test_mlflow_metrics", "ecg_linear_confusion_matrix"],
            name="linear_metrics_outputs",
        ),
        node(
            predict_val_linear,
            ["ecg_linear_model", *INPUTS],
            "ecg_linear_val_predictions",
            name="predict_val_linear",
        ),
        node(
            validation_metrics,
            ["ecg_linear_val_predictions", LABELS],
            ["ecg_linear_val_metrics", "ecg_linear_val_mlflow_metrics"],
            name="evaluate_val_linear",
        ),
    ]


def _rhythm() -> list:
    """Train the rhythm model on runs of consecutive beats (of the split, and the
    noisy copies of the training records when they are on); its test and validation
    scores."""
    return [
        node(
            train_rhythm_with_copies,
            [
                *INPUTS,
                "ecg_noisy_copy_beats",
                "ecg_noisy_copy_windows",
                f"{P}.rhythm",
                FEATURES,
                LABELS,
            ],
            ["ecg_rhythm_model", "ecg_rhythm_history"],
            name="train_rhythm",
        ),
        node(
            rhythm_history_outputs,
            "ecg_rhythm_history",
            ["ecg_rhythm_history_metrics", "ecg_rhythm_training_curves"],
            name="rhythm_history_outputs",
        ),
        node(
            predict_test_rhythm,
            ["ecg_rhythm_model", *INPUTS, LABELS],
            "ecg_rhythm_test_predictions",
            name="predict_test_rhythm",
        ),
        node(
            evaluate,
            ["ecg_rhythm_test_predictions", LABELS],
            "ecg_rhythm_test_metrics",
            name="evaluate_rhythm",
        ),
        node(
            rhythm_metrics_outputs,
            "ecg_rhythm_test_metrics",
            ["ecg_rhythm_test_mlflow_metrics", "ecg_rhythm_confusion_matrix"],
            name="rhythm_metrics_outputs",
        ),
        node(
            per_record_table,
            ["ecg_rhythm_test_predictions", LABELS],
            "ecg_rhythm_per_record",
            name="rhythm_per_record_table",
        ),
        node(
            predict_val_rhythm,
            ["ecg_rhythm_model", *INPUTS, LABELS],
            "ecg_rhythm_val_predictions",
            name="predict_val_rhythm",
        ),
        node(
            validation_metrics,
            ["ecg_rhythm_val_predictions", LABELS],
            ["ecg_rhythm_val_metrics", "ecg_rhythm_val_mlflow_metrics"],
            name="evaluate_val_rhythm",
        ),
    ]


def _reporting() -> list:
    """The summary, the scores-by-test-set figure and the served model's example."""
    return [
        node(
            summary_report,
            [
                "ecg_ingestion_report",
                "ecg_split_report",
                "ecg_autoencoder_test_metrics",
                "ecg_cnn_test_metrics",
                "ecg_anomaly_report",
                LABELS,
                "ecg_autoencoder_val_metrics",
                "ecg_cnn_val_metrics",
                "ecg_autoencoder_per_record",
                "ecg_linear_test_metrics",
                "ecg_linear_val_metrics",
                "ecg_rhythm_test_metrics",
                "ecg_rhythm_val_metrics",
                "ecg_ds2_score_history",
                "ecg_published_scores",
                f"{P}.reporting.data_note",
            ],
            "ecg_summary",
            name="summary_report",
        ),
        node(
            scores_by_test_set_figure,
            [
                "ecg_autoencoder_test_metrics",
                "ecg_cnn_test_metrics",
                "ecg_linear_test_metrics",
                "ecg_rhythm_test_metrics",
                f"{P}.split",
            ],
            "ecg_test_sets_figure",
            name="test_sets_figure",
        ),
        node(
            example_signal,
            ["ecg_raw_records", f"{P}.ingestion", f"{P}.detection", f"{P}.inference"],
            "ecg_signal_to_classify",
            name="example_signal",
        ),
    ]


def _training() -> Pipeline:
    """Ingestion, the four models and the reports, each in its namespace."""
    groups = {
        "ingestion": _ingestion(),
        "autoencoder": _autoencoder(),
        "cnn": _cnn(),
        "linear": _linear(),
        "rhythm": _rhythm(),
        "reporting": _reporting(),
    }
    return Pipeline([group(PACKAGE, name, nodes) for name, nodes in groups.items()])


def _classified_beats(prefix: str, output: str) -> list:
    """Segmented beats (``<prefix>_beats``, ``_windows``, ``_ingestion_report``) ->
    the per-beat table ``output``; shared by the record and the pyfunc inference."""
    return [
        node(
            classifier_input,
            [f"{prefix}_beats", f"{prefix}_windows", FEATURES],
            f"{prefix}_table",
            name=f"{prefix}_classifier_input",
        ),
        _classify_node(f"{prefix}_table", f"{prefix}_classified", f"{prefix}_classify"),
        node(
            beat_table,
            [f"{prefix}_classified", f"{prefix}_beats", f"{prefix}_ingestion_report"],
            output,
            name=f"{prefix}_beat_table",
        ),
    ]


def _record_inference() -> Pipeline:
    """The recording at ``inference.record_path`` -> beat table, summary, strip."""
    segmented = [
        "ecg_inference_beats",
        "ecg_inference_windows",
        "ecg_inference_ingestion_report",
    ]
    return group(
        PACKAGE,
        "inference",
        [
            node(
                load_recording,
                [f"{P}.inference.record_path", f"{P}.inference"],
                "ecg_inference_record",
                name="load_inference_record",
            ),
            node(
                segment_recording,
                [
                    "ecg_inference_record",
                    f"{P}.ingestion",
                    f"{P}.detection",
                    f"{P}.inference",
                ],
                segmented,
                name="segment_inference_record",
            ),
            *_classified_beats("ecg_inference", "ecg_inference_predictions"),
            node(
                recording_summary,
                ["ecg_inference_predictions", "ecg_inference_ingestion_report", LABELS],
                ["ecg_inference_summary", "ecg_inference_summary_md"],
                name="inference_summary",
            ),
            node(
                strip_figure,
                [
                    "ecg_inference_record",
                    "ecg_inference_predictions",
                    "ecg_inference_ingestion_report",
                ],
                "ecg_inference_strip",
                name="inference_strip",
            ),
        ],
    )


def _pyfunc_inference() -> Pipeline:
    """The served model: a table of samples (``signal``, ``fs``) -> per-beat table."""
    return group(
        PACKAGE,
        "served",
        [
            node(
                signal_record,
                ["ecg_signal_to_classify", f"{P}.ingestion"],
                "ecg_pyfunc_record",
                name="pyfunc_signal_record",
            ),
            node(
                segment_detected,
                [
                    "ecg_pyfunc_record",
                    f"{P}.ingestion",
                    f"{P}.detection",
                ],
                [
                    "ecg_pyfunc_beats",
                    "ecg_pyfunc_windows",
                    "ecg_pyfunc_ingestion_report",
                ],
                name="pyfunc_segment",
            ),
            *_classified_beats("ecg_pyfunc", "ecg_pyfunc_predictions"),
        ],
    )


def create_pipeline(variant: str = "training") -> Pipeline:
    """The training pipeline (with its pyfunc model) or the record inference pipeline.

    Args:
        variant: ``"training"`` for ``ecg_autoencoder`` or ``"inference"`` for
            ``ecg_autoencoder_inference``.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"ecg_autoencoder variant must be one of {VARIANTS}, got {variant!r}."
        )
    if variant == "inference":
        return _record_inference()
    return pipeline_ml_factory(
        training=_training(),
        inference=_pyfunc_inference(),
        input_name="ecg_signal_to_classify",
        log_model_kwargs={
            "name": "ecg_autoencoder_pyfunc",
            "signature": "auto",
            "code_paths": [str(PACKAGE_DIR)],
            "pip_requirements": PYFUNC_REQUIREMENTS,
        },
    )
