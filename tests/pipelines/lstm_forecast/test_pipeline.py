"""Wiring, catalog and end-to-end runs of lstm_forecast on small real data."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.runner import SequentialRunner

from medlstm.core.persistence import load_model
from medlstm.models.forecaster import LSTMForecaster
from medlstm.pipelines.lstm_forecast import create_pipeline

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# Intermediate objects that live in memory only: windows and raw forecast arrays.
IN_MEMORY = {
    "forecast_windows",
    "forecast_lstm_test_forecast",
    "forecast_baseline_test_forecasts",
}
FAST = {"lstm_forecast": {"training": {"epochs": 2}}}
METHODS = ("lstm", "naive", "mean", "ar")


def _catalog(env: str) -> dict:
    return yaml.safe_load(
        (PROJECT_ROOT / "conf" / env / "catalog_lstm_forecast.yml").read_text()
    )


def _merged_parameters(env: str) -> dict:
    """Parameters as a run in ``env`` sees them: conf/full soft-merged onto base."""
    from kedro.config import OmegaConfigLoader

    from medlstm.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        env="local" if env == "base" else env,
        **CONFIG_LOADER_ARGS,
    )
    return loader["parameters"]


class TestWiring:
    def test_sources_share_everything_downstream(self):
        mitdb, csv = create_pipeline(), create_pipeline(source="csv")
        assert {n.name for n in mitdb.nodes} - {n.name for n in csv.nodes} == {
            "lstm_forecast.ingestion.build_tachograms"
        }
        assert {n.name for n in csv.nodes} - {n.name for n in mitdb.nodes} == {
            "lstm_forecast.ingestion.csv_to_series"
        }
        assert mitdb.inputs() - csv.inputs() >= {"forecast_mitdb_records"}
        assert mitdb.outputs() == csv.outputs()

    def test_unknown_source(self):
        with pytest.raises(ValueError, match="mitdb"):
            create_pipeline(source="parquet")

    def test_every_persisted_dataset_is_in_the_catalog(self):
        catalog = _catalog("base")
        for source in ("mitdb", "csv"):
            pipeline = create_pipeline(source=source)
            datasets = {d for d in pipeline.datasets() if not d.startswith("params:")}
            assert datasets - IN_MEMORY == set(catalog) - {
                "forecast_mitdb_records" if source == "csv" else "forecast_csv_raw"
            }

    @pytest.mark.parametrize("env", ["base", "full"])
    def test_parameters_cover_every_node_input(self, env):
        params = _merged_parameters(env)
        missing = []
        for source in ("mitdb", "csv"):
            for name in create_pipeline(source=source).inputs():
                node = params
                for key in name.removeprefix("params:").split("."):
                    node = node.get(key) if isinstance(node, dict) else None
                if name.startswith("params:") and not isinstance(node, dict):
                    missing.append(name)
        assert missing == []

    def test_full_env_reads_the_full_records(self):
        full = _catalog("full")["forecast_mitdb_records"]
        assert full["path"] == "../shared/data/mitdb"


def _read(path: str) -> str:
    return Path(path).read_text()


@pytest.mark.skipif(
    not (PROJECT_ROOT / "data" / "01_raw" / "mitdb_excerpt").is_dir(),
    reason="needs the shipped MIT-BIH excerpt",
)
def test_mitdb_pipeline_end_to_end(forecast_ran_once):
    # The session's shared run: tests.conftest.FORECAST_FAST, two epochs.
    kedro_project = forecast_ran_once
    (run,) = kedro_project.runs("lstm_forecast")
    assert run.info.status == "FINISHED"
    assert run.data.params["lstm_forecast.training.epochs"] == "2"
    assert run.data.params["lstm_forecast.windowing.lookback"] == "32"
    metrics = run.data.metrics
    for method in METHODS:
        for step in range(1, 6):
            assert f"lstm_forecast.test.{method}.mae_h{step}" in metrics
    assert "lstm_forecast.training.val_loss" in metrics

    client = mlflow.MlflowClient(kedro_project.tracking_uri)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "lstm_forecast")}
    assert {
        "lstm_forecast/forecast_report.md",
        "lstm_forecast/forecast_test_stretches.png",
        "lstm_forecast/forecast_metrics.csv",
        "lstm_forecast/forecast_ingestion_report.json",
        "lstm_forecast/model",
    } <= logged

    table = pd.read_csv("data/08_reporting/forecast_metrics.csv")
    h1 = table[table["step"] == 1].set_index("method")["mae"]
    assert h1["lstm"] == pytest.approx(metrics["lstm_forecast.test.lstm.mae_h1"])
    report = _read("data/08_reporting/forecast_report.md")
    assert "## Verdict" in report
    assert f"| LSTM | {h1['lstm']:.2f} |" in report

    # No test record was trained on, and every test record was scored.
    params = yaml.safe_load(Path("conf/base/parameters_lstm_forecast.yml").read_text())
    split = params["lstm_forecast"]["mitdb"]["split"]
    predictions = pd.read_parquet(
        "data/07_model_output/forecast_test_predictions.parquet"
    )
    assert set(predictions["series_id"]) == set(split["test_series"])
    series = pd.read_parquet("data/05_model_input/forecast_split.parquet")
    trained_on = set(series.loc[series["segment"] == "train", "series_id"])
    assert not trained_on & (set(split["test_series"]) | set(split["val_series"]))

    model = load_model("data/06_models/lstm_forecaster.pt")
    assert isinstance(model, LSTMForecaster)
    assert model.horizon == 5


def test_csv_pipeline_end_to_end(kedro_project):
    """The "any CSV" source through the same downstream nodes, on the shipped example.

    Run with a runner rather than by name, so it needs no registry entry.
    """
    bootstrap_project(kedro_project.root)
    with KedroSession.create(
        project_path=kedro_project.root, runtime_params=FAST
    ) as session:
        catalog = session.load_context().catalog
    with mlflow.start_run():
        SequentialRunner().run(create_pipeline(source="csv"), catalog)

    report = _read("data/08_reporting/forecast_report.md")
    assert "source: csv, 1 series, unit bpm" in report
    assert "test data by_time (last 20%)" in report
    predictions = pd.read_parquet(
        "data/07_model_output/forecast_test_predictions.parquet"
    )
    example = pd.read_csv("data/01_raw/forecast_example/mitdb_100_heart_rate.csv")
    # Only the last 20 % in time is scored.
    assert predictions["target_time"].min() > example["time_s"].quantile(0.79)
    assert set(METHODS) <= set(predictions.columns)
