"""Wiring of ecg_tuning (``kedro run --pipeline=ecg_tuning``): the ECG ingestion
nodes, then one Optuna study per model, then the best settings as a conf file and a
report. ``--namespaces=ecg_tuning.cnn`` (with the ingestion outputs on disk) runs
one study; ``--from-nodes`` skips the ingestion."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from medlstm.core.wiring import group
from medlstm.pipelines.ecg_autoencoder import create_pipeline as ecg_pipeline
from medlstm.pipelines.ecg_tuning.reporting import (
    best_params_file,
    history_figure,
    tuning_mlflow_metrics,
    tuning_report,
)
from medlstm.pipelines.ecg_tuning.study import tune_autoencoder, tune_cnn

P = "params:ecg_autoencoder"
PACKAGE = "ecg_tuning"
INGESTION = ("segment_records", "assign_splits")
INPUTS = ["ecg_beats_split", "ecg_windows"]
MODEL = [f"{P}.features", f"{P}.ingestion.label_mapping"]


def _ingestion() -> list:
    """The training pipeline's own ingestion nodes: the same beats and split, out of
    that pipeline's namespace so that they sit in this one's."""
    nodes = {n.name.rsplit(".", 1)[-1]: n for n in ecg_pipeline().nodes}
    return [nodes[name]._copy(namespace=None) for name in INGESTION]


def _study(family: str, tune, extra: list[str]) -> list:
    return [
        node(
            tune,
            [*INPUTS, f"{P}.{family}", *MODEL, *extra, f"{P}.tuning"],
            [f"ecg_tuning_{family}_trials", f"ecg_tuning_{family}_best"],
            name=f"tune_{family}",
        ),
        node(
            history_figure,
            [f"ecg_tuning_{family}_trials", f"ecg_tuning_{family}_best"],
            f"ecg_tuning_{family}_history",
            name=f"{family}_history_figure",
        ),
    ]


def create_pipeline() -> Pipeline:
    """Ingestion, the autoencoder and CNN studies, and their report."""
    bests = ["ecg_tuning_autoencoder_best", "ecg_tuning_cnn_best"]
    report = [
        node(
            best_params_file, bests, "ecg_autoencoder_best_params", name="best_params"
        ),
        node(
            tuning_report,
            [
                "ecg_tuning_autoencoder_trials",
                "ecg_tuning_autoencoder_best",
                "ecg_tuning_cnn_trials",
                "ecg_tuning_cnn_best",
            ],
            "ecg_tuning_report",
            name="tuning_report",
        ),
        node(tuning_mlflow_metrics, bests, "ecg_tuning_mlflow_metrics", name="metrics"),
    ]
    return (
        group(PACKAGE, "ingestion", _ingestion())
        + group(
            PACKAGE,
            "autoencoder",
            _study("autoencoder", tune_autoencoder, ["params:alpha", "params:beta"]),
        )
        + group(PACKAGE, "cnn", _study("cnn", tune_cnn, []))
        + group(PACKAGE, "report", report)
    )
