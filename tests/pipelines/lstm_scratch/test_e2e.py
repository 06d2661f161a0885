"""lstm_scratch end to end: a small run through Kedro, the catalog and MLflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medlstm.scratch import LSTMModel

SMALL = {
    "lstm_scratch.regression.data.splits.train.n": 200,
    "lstm_scratch.regression.data.splits.val.n": 50,
    "lstm_scratch.regression.data.splits.test.n": 50,
    "lstm_scratch.regression.model.hidden_size": 8,
    "lstm_scratch.regression.training.epochs": 2,
    "lstm_scratch.classification.data.n.train": 120,
    "lstm_scratch.classification.data.n.val": 40,
    "lstm_scratch.classification.data.n.test": 40,
    "lstm_scratch.classification.data.length": 12,
    "lstm_scratch.classification.model.hidden_size": 8,
    "lstm_scratch.classification.training.epochs": 2,
}


@pytest.mark.timeout(300)
def test_pipeline_writes_models_report_and_logs_to_mlflow(kedro_project):
    kedro_project.run_pipeline("lstm_scratch", params=SMALL)
    data = kedro_project.root / "data"

    with np.load(data / "06_models/scratch_regression_numpy_lstm.npz") as archive:
        model = LSTMModel.from_state_dict(dict(archive))
    assert model.hidden_size == 8 and model.dtype == np.float32
    assert (data / "06_models/scratch_classification_torch_lstm.pt").exists()
    predictions = pd.read_parquet(
        data / "07_model_output/scratch_regression_test_predictions.parquet"
    )
    assert len(predictions) == 50
    assert {"numpy_prediction", "torch_prediction", "target"} <= set(
        predictions.columns
    )
    metrics = json.loads(
        (data / "08_reporting/scratch_classification_metrics.json").read_text()
    )
    assert set(metrics) == {"numpy", "torch"} and metrics["numpy"]["n"] == 40
    report = (data / "08_reporting/scratch_report.md").read_text()
    assert "NumPy / torch time per epoch" in report and "0, 1, ..., 9" in report

    (run,) = kedro_project.runs("lstm_scratch")
    logged = run.data.metrics
    for task in ("regression", "classification"):
        for backend in ("numpy", "torch"):
            assert f"lstm_scratch.{task}.{backend}.val_loss" in logged
            assert f"lstm_scratch.{task}.{backend}.fit_seconds" in logged
    assert "lstm_scratch.regression.numpy.test_mae" in logged
    assert run.data.params["lstm_scratch.regression.model.hidden_size"] == "8"
    artifacts = kedro_project.root / "mlruns"
    names = {p.name for p in artifacts.rglob("*") if p.is_file()}
    assert {
        "scratch_report.md",
        "scratch_learning_curves.png",
        "scratch_regression_numpy_lstm.npz",
    } <= names
