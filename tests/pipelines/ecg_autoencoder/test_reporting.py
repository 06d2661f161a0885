"""Evaluation, figures and the Markdown summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.ecg_autoencoder.figures import (
    latent_projection_figure,
    scores_by_test_set_figure,
)
from medlstm.pipelines.ecg_autoencoder.reporting import (
    anomaly_detection,
    autoencoder_history_outputs,
    autoencoder_metrics_outputs,
    evaluate,
    per_record_table,
    validation_metrics,
)
from medlstm.pipelines.ecg_autoencoder.summary import (
    OPTIMISTIC_NOTE,
    _per_record_markdown,
    summary_report,
)

MAPPING = {"N": ["N"], "S": ["A"], "V": ["V"]}
PUBLISHED = (
    Path(__file__).resolve().parents[3]
    / "data/01_raw/literature/ecg_inter_patient_published.csv"
)


def predictions(labels, predicted, errors=None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"record": "100", "sample": np.arange(len(labels)), "label": labels}
    )
    frame["predicted"] = predicted
    for c in MAPPING:
        frame[f"p_{c}"] = [0.8 if p == c else 0.1 for p in predicted]
    if errors is not None:
        frame["recon_error"] = errors
    return frame


def test_evaluate_counts_se_and_ppv_per_class():
    metrics = evaluate(
        predictions(["N", "N", "S", "V", "V"], ["N", "S", "S", "V", "N"]), MAPPING
    )
    assert metrics["class_names"] == ["N", "S", "V"]
    assert metrics["per_class"]["S"]["recall"] == 1.0
    assert metrics["per_class"]["S"]["precision"] == 0.5
    assert metrics["per_class"]["V"]["recall"] == 0.5
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_metrics_and_history_outputs_are_mlflow_shaped():
    metrics = evaluate(predictions(["N", "S", "V"], ["N", "S", "N"]), MAPPING)
    flat, fig = autoencoder_metrics_outputs(metrics)
    assert flat["accuracy"] == {"value": pytest.approx(2 / 3), "step": 0}
    assert flat["per_class.V.recall"]["value"] == 0.0
    assert isinstance(fig, plt.Figure)
    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 1.5},
        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.2},
    ]
    per_epoch, curves = autoencoder_history_outputs(history)
    assert per_epoch["val_loss"] == [
        {"value": 1.5, "step": 1},
        {"value": 1.2, "step": 2},
    ]
    assert isinstance(curves, plt.Figure)
    plt.close("all")


def test_validation_metrics_in_both_forms():
    metrics, flat = validation_metrics(predictions(["N", "V"], ["N", "N"]), MAPPING)
    assert metrics["per_class"]["V"]["recall"] == 0.0
    assert flat["accuracy"]["value"] == 0.5


def test_anomaly_auc_ranks_abnormal_beats_by_error():
    frame = predictions(
        ["N", "N", "N", "S", "V"], ["N"] * 5, errors=[0.1, 0.2, 0.3, 0.25, 0.9]
    )
    report, metrics, fig = anomaly_detection(frame, "N")
    # abnormal errors 0.25, 0.9 vs normal 0.1, 0.2, 0.3: 5 of 6 pairs ranked right
    assert report["roc_auc_abnormal_vs_normal"] == pytest.approx(5 / 6)
    assert metrics == {"anomaly_roc_auc": {"value": pytest.approx(5 / 6), "step": 0}}
    assert report["per_class"]["V"]["mean"] == pytest.approx(0.9)
    plt.close(fig)


def test_anomaly_auc_undefined_with_one_group():
    report, metrics, fig = anomaly_detection(
        predictions(["N", "N"], ["N", "N"], [0.1, 0.2])
    )
    assert report["roc_auc_abnormal_vs_normal"] is None and metrics == {}
    plt.close(fig)


def test_latent_projection_subsamples_deterministically():
    rng = np.random.default_rng(0)
    latent = pd.DataFrame(rng.normal(size=(50, 3)), columns=["z_0", "z_1", "z_2"])
    latent["label"] = ["N"] * 40 + ["V"] * 10
    fig = latent_projection_figure(latent, {"projection_max_points": 20, "seed": 0})
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 20
    plt.close(fig)


def _split_report(optimistic: bool) -> dict:
    return {
        "scheme": "intra_patient" if optimistic else "inter_patient",
        "patient_wise": not optimistic,
        "optimistic": optimistic,
        "records": {
            "train": ["101"],
            "val": ["106"],
            "test": ["100", "103"],
            "excluded": [],
        },
        "beats": {
            "train": {"N": 5, "V": 1},
            "val": {"N": 2},
            "test": {"N": 7, "S": 3},
            "excluded": {},
        },
    }


@pytest.mark.parametrize("optimistic", [False, True])
def test_summary_states_split_records_counts_and_tables(optimistic):
    metrics = evaluate(predictions(["N", "S", "V"], ["N", "S", "N"]), MAPPING)
    ingestion = {
        "n_beats": 18,
        "window_samples": 288,
        "target_fs": 360.0,
        "totals": {"dropped_edge": 2},
        "skipped_records": {"102": "no lead MLII"},
    }
    anomaly = {
        "normal_class": "N",
        "roc_auc_abnormal_vs_normal": 0.75,
        "per_class": {"N": {"mean": 0.1, "median": 0.1, "n": 7}},
    }
    val = evaluate(predictions(["N", "S", "V"], ["N", "N", "V"]), MAPPING)
    per_record = per_record_table(
        predictions(["N", "S", "V"], ["N", "S", "N"]), MAPPING
    )
    text = summary_report(
        ingestion,
        _split_report(optimistic),
        metrics,
        metrics,
        anomaly,
        MAPPING,
        val,
        val,
        per_record,
        metrics,
        val,
        metrics,
        val,
        pd.DataFrame(
            [
                {"date": "2026-11-21", "commit": "abc1234", "model": "cnn"}
                | {"setting": "default", "protocol": "inter_patient", "machine": "A"}
                | {"precision": "fp32", "accuracy": 0.923, "S_Se": 0.5, "S_P": 0.4}
                | {"V_Se": 0.9, "V_P": 0.8, "macro_f1": float("nan")}
            ]
        ),
        pd.read_csv(PUBLISHED),
        "Shipped excerpt: not the full-data results." if optimistic else None,
    )

    # The data note, when given, is the first section; without one there is none.
    assert (
        text.split("\n## ")[1].startswith("Data\n\nShipped excerpt: not the full-data")
    ) == optimistic
    assert ("## Data" in text) == optimistic
    assert "| N | 0.1 | 0.1 | 7 |" in text  # anomaly statistics per class
    assert ("OPTIMISTIC" in text) == optimistic
    assert (
        "| 2026-11-21 | abc1234 | cnn | default | inter_patient | A, fp32 | 0.923 |"
        in text
    )
    assert "0.500 / 0.400 | 0.900 / 0.800 | - |" in text
    assert "| linear baseline (RR + morphology) |" in text
    assert "| de Chazal et al. 2004 | linear discriminants" in text
    assert "0.759 / 0.385 | 0.777 / 0.819 |" in text  # the anchors' S and V
    assert "- linear: accuracy 0.667" in text
    assert "- rhythm: accuracy 0.667" in text
    assert "| rhythm BiLSTM (beats in their order) |" in text
    assert (OPTIMISTIC_NOTE in text) == optimistic
    assert "| test | 2 | 7 | 3 | 0 | 10 |" in text
    assert "| S | 1.000 | 1.000 |" in text  # AAMI row: Se, +P
    assert "2 too close to a record edge" in text
    assert "0.750" in text
    assert "- autoencoder: accuracy 0.667, macro F1" in text
    assert "S Se 0.000 / +P 0.000, V Se 1.000 / +P 1.000" in text
    assert "- autoencoder: accuracy 0.667, macro F1" in text
    assert "S Se 0.000 / +P 0.000, V Se 1.000 / +P 1.000" in text
    assert "| 100 | 3 | 1 / 1 (+1) | 1 / 1 (+0) | 0 / 1 (+0) |" in text
    if not optimistic:
        assert "- test (2): 100, 103" in text


def test_per_record_table_counts_found_and_false_alarms_per_record():
    frame = pd.concat(
        [
            predictions(["S", "S", "S", "N"], ["N", "N", "S", "N"]).assign(
                record="232"
            ),
            predictions(["S", "N", "V"], ["S", "S", "V"]).assign(record="100"),
        ]
    )
    table = per_record_table(frame, MAPPING).set_index("record")

    assert table.loc["232", ["n_beats", "S_n", "S_found", "S_false"]].tolist() == [
        4, 3, 1, 0,
    ]  # fmt: skip
    assert table.loc["100", ["S_n", "S_found", "S_false", "V_found"]].tolist() == [
        1, 1, 1, 1,
    ]  # fmt: skip
    text = _per_record_markdown(table.reset_index(), list(MAPPING))
    assert "| 232 | 4 | 1 / 1 (+2) | 1 / 3 (+0) | - |" in text
    assert (
        "- S: record 232 holds 75% of the 4 beats; found there 1, elsewhere 1 of 1."
        in text
    )
    with pytest.raises(ValueError, match="needs predictions with a 'label'"):
        per_record_table(frame.drop(columns="label"), MAPPING)


def test_test_sets_figure_has_a_panel_per_test_set():
    both = pd.concat(
        [
            predictions(["N", "S", "V"], ["N", "S", "V"]).assign(database="mitdb"),
            predictions(["N", "S", "V"], ["N", "N", "V"]).assign(database="svdb"),
        ]
    )
    metrics = evaluate(both, MAPPING)
    fig = scores_by_test_set_figure(
        metrics, metrics, metrics, metrics, {"scheme": "inter_patient_svdb"}
    )
    axes = fig.get_axes()
    assert [a.get_title() for a in axes] == [
        "MIT-BIH (DS2 in the inter-patient protocols)",
        "SVDB external test part",
    ]
    heights = [p.get_height() for p in axes[1].patches]
    assert heights[:4] == [0.0, 0.0, 1.0, 1.0]  # S missed, V found on SVDB
    assert "inter_patient_svdb" in fig._suptitle.get_text()
