"""End to end on the shipped excerpt: kedro run -> files, MLflow run, pyfunc model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import mlflow
import pandas as pd
import pytest

from medlstm.core.precision import resolve_precision
from medlstm.pipelines.ecg_autoencoder import create_pipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_pipeline_variants():
    record = {n.name for n in create_pipeline("inference").nodes}
    assert {
        f"ecg_autoencoder.inference.{name}"
        for name in (
            "load_inference_record",
            "ecg_inference_classify",
            "inference_strip",
        )
    } <= record
    training = create_pipeline()
    # The served model starts from the raw signal: detection to classes in one model.
    assert training.input_name == "ecg_signal_to_classify"
    assert [n.name for n in training.inference.nodes] == [
        f"ecg_autoencoder.served.{name}"
        for name in (
            "pyfunc_signal_record",
            "pyfunc_segment",
            "ecg_pyfunc_classifier_input",
            "ecg_pyfunc_classify",
            "ecg_pyfunc_beat_table",
        )
    ]
    assert training.inference.outputs() == {"ecg_pyfunc_predictions"}
    with pytest.raises(ValueError, match="variant"):
        create_pipeline("serve")


def test_training_and_inference_end_to_end(ecg_trained_project, base_params):
    # The session's shared run: `ecg_autoencoder` with tests.conftest.ECG_TRAINING_FAST
    # (alpha=2.0, one epoch, a two-seed autoencoder ensemble, precision auto).
    kedro_project = ecg_trained_project
    root = kedro_project.root

    (run,) = kedro_project.runs("ecg_autoencoder")
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "2.0"
    scheme = base_params["ecg_autoencoder"]["split"]["scheme"]
    assert run.data.params["ecg_autoencoder.split.scheme"] == scheme
    block = "ecg_autoencoder.autoencoder.training"
    assert run.data.params[f"{block}.precision"] == "auto"
    # What auto resolves to on this machine (bf16 only where it runs and pays).
    expected = resolve_precision("auto")
    assert expected in ("fp32", "bf16")
    assert run.data.params[f"{block}.precision_used"] == expected
    assert run.data.params["ecg_autoencoder.cnn.training.precision_used"] == "fp32"
    metrics = run.data.metrics
    for name in (
        "autoencoder.test.accuracy",
        "cnn.test.accuracy",
        "linear.test.accuracy",
        "rhythm.test.accuracy",
        "rhythm.test.by_database.svdb.accuracy",
        "rhythm.val.by_database.svdb.accuracy",
        "linear.test.by_database.svdb.accuracy",  # the external test part, apart
        "linear.val.by_database.svdb.accuracy",
        "autoencoder.member0/val_loss",  # a two-seed ensemble
        "autoencoder.member1/val_loss",
    ):
        assert 0.0 <= metrics[name] <= max(1.0, metrics[name])
    assert "autoencoder.test.per_class.S.recall" in metrics
    assert "autoencoder.test.anomaly_roc_auc" in metrics

    client = mlflow.MlflowClient(tracking_uri=kedro_project.tracking_uri)
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {
        "figures/ecg_autoencoder_confusion_matrix.png",
        "figures/ecg_cnn_confusion_matrix.png",
        "figures/ecg_linear_confusion_matrix.png",
        "figures/ecg_rhythm_confusion_matrix.png",
        "figures/ecg_rhythm_training_curves.png",
        "figures/ecg_test_sets.png",
        "figures/ecg_autoencoder_training_curves.png",
        "figures/ecg_autoencoder_reconstructions.png",
        "figures/ecg_reconstruction_error.png",
        "figures/ecg_latent_projection.png",
    } <= figures

    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert "reports/ecg_autoencoder_per_record.csv" in reports
    per_record = pd.read_csv(root / "data/08_reporting/ecg_autoencoder_per_record.csv")
    assert per_record["n_beats"].sum() == len(
        pd.read_parquet(
            root / "data/07_model_output/ecg_autoencoder_test_predictions.parquet"
        )
    )

    summary = (root / "data/08_reporting/ecg_summary.md").read_text()
    assert "inter_patient" in summary and "- test (41): 100, 103" in summary
    assert "svdb_802" in summary  # SVDB's external test part, reported apart
    assert "## DS2 scores of committed defaults" in summary and "a8752e2" in summary
    assert f"| LSTM autoencoder-classifier | {scheme} | SVDB external test part |" in (
        summary
    )
    split = json.loads((root / "data/08_reporting/ecg_split_report.json").read_text())
    assert not set(split["records"]["train"]) & set(split["records"]["test"])
    mitdb_val = {r for r in split["records"]["val"] if not r.startswith("svdb_")}
    assert mitdb_val <= {"101", "106", "118", "122", "220"}
    assert {r for r in split["records"]["val"] if r.startswith("svdb_")} == set(
        base_params["ecg_autoencoder"]["split"]["svdb"]["val"]
    )
    latent = pd.read_parquet(
        root / "data/07_model_output/ecg_autoencoder_test_latent.parquet"
    )
    assert set(latent["record"]) <= set(split["records"]["test"])

    # The pyfunc model loads and predicts in a fresh process.
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    example = root / "data/05_model_input/ecg_signal_to_classify.parquet"
    script = textwrap.dedent(
        f"""
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({kedro_project.tracking_uri!r})
        model = mlflow.pyfunc.load_model({model.model_uri!r})
        out = model.predict(pd.read_parquet({str(example)!r}))
        print(len(out), ",".join(out.columns))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    n_rows, columns = done.stdout.strip().splitlines()[-1].split(" ")
    assert len(pd.read_parquet(example)) == 10 * 360  # 10 s of record 100
    assert 8 <= int(n_rows) <= 14  # its beats, less the first and last
    assert columns.split(",")[:4] == ["record", "time_s", "sample", "class"]

    kedro_project.run_pipeline(
        "ecg_autoencoder_inference",
        params={
            "ecg_autoencoder": {
                "inference": {"record_path": "data/01_raw/mitdb_excerpt/232"}
            }
        },
    )
    predictions = pd.read_csv(
        root / "data/07_model_output/ecg_inference_predictions.csv"
    )
    assert len(predictions) > 40 and set(predictions["record"]) == {232}
    assert {"sample", "class", "p_N", "p_S", "recon_error", "noise"} <= set(
        predictions.columns
    )
