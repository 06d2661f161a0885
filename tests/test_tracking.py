"""What the MLflow UI and kedro viz show about a run: its name, description, dataset
inputs, registered model versions, the experiment's kind, and dataset previews."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path

import mlflow
import pytest
import yaml

from medlstm.tracking.run_info import pipeline_label
from medlstm.tracking.run_page import (
    DESCRIPTION_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    _survive,
    files_digest,
    layer_of,
    metrics_with_prefixes,
    run_name,
    run_page_url,
    summary_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = sorted((ROOT / "conf" / "base").glob("catalog_*.yml"))
TABLES = {"pandas.CSVDataset", "pandas.ParquetDataset"}
PREVIEWED = TABLES | {"json.JSONDataset", "matplotlib.MatplotlibDataset"}
RUN_NAME = re.compile(r"^(?P<pipeline>\S+) · (?P<env>\S+) · \d{4}-\d\d-\d\d \d\d:\d\d$")


# ------------------------------------------------------------------------ helpers


def test_run_name_names_pipeline_environment_and_time():
    started = datetime(2026, 11, 30, 17, 40, 59)
    assert run_name("ecg_autoencoder", "full", started) == (
        "ecg_autoencoder · full · 2026-11-30 17:40"
    )
    assert run_name("lstm_forecast", None, started).split(" · ")[1] == "base"


def test_run_page_url_opens_the_model_training_view():
    assert run_page_url("http://mlflow.example.org:5000/", "3", "abc") == (
        "http://mlflow.example.org:5000/#/experiments/3/runs/abc"
        "?workflowType=machine_learning"
    )


def test_pipeline_label_spells_out_the_default_pipeline():
    assert pipeline_label({"pipeline_names": ["__default__"]}) == "ecg_autoencoder"
    assert pipeline_label({"pipeline_names": ["a", "b"]}) == "a+b"
    assert pipeline_label({"pipeline_name": "lstm_scratch"}) == "lstm_scratch"


@pytest.mark.parametrize(
    ("path", "layer"),
    [
        ("data/01_raw/mitdb_excerpt", "raw"),
        ("data/05_model_input/forecast_split.parquet", "model_input"),
        ("docs/experiments/ecg_ds2_scores.csv", "input"),
    ],
)
def test_layer_of(path, layer):
    assert layer_of(Path(path).resolve()) == layer


def test_files_digest_follows_contents_names_and_refuses_an_empty_folder(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="records"):
        files_digest(folder)
    (folder / "100.dat").write_bytes(b"\x00\x01")
    first = files_digest(folder)
    assert first == files_digest(folder)
    (folder / "100.dat").write_bytes(b"\x00\x02")  # same size, other content
    assert files_digest(folder) != first
    second = files_digest(folder)
    (folder / "100.dat").rename(folder / "101.dat")
    assert files_digest(folder) != second
    # Past the size limit only names, sizes and times count: a rewrite is seen.
    by_stat = files_digest(folder, full_hash_bytes=0)
    assert by_stat != files_digest(folder)
    assert files_digest(folder / "101.dat") == files_digest(folder / "101.dat")


def test_summary_markdown_joins_reports_and_cuts_long_ones(tmp_path):
    short, long = tmp_path / "a.md", tmp_path / "b.md"
    short.write_text("# A\n")
    assert summary_markdown([short, tmp_path / "missing.md"]) == "# A"
    long.write_text("x" * 500)
    text = summary_markdown([short, long], limit=200)
    assert len(text) == 200
    assert text.startswith("# A\n\nxxx") and "b.md" in text


def test_metrics_with_prefixes_keeps_only_the_models_metrics():
    metrics = {"cnn.test.accuracy": 0.91234567, "cnn.val.accuracy": 0.9, "x": 1.0}
    assert metrics_with_prefixes(metrics, ["cnn.test."]) == {
        "cnn.test.accuracy": "0.912346"
    }
    assert metrics_with_prefixes(metrics, []) == {}


def test_a_tracking_failure_is_a_warning(caplog):
    @_survive("do something")
    def fails():
        raise ConnectionError("server gone")

    with caplog.at_level(logging.WARNING, logger="medlstm.tracking.run_page"):
        assert fails() is None
    assert "could not do something" in caplog.text and "server gone" in caplog.text


# ------------------------------------------------------------------------ catalogs


def _entries():
    for catalog in CATALOGS:
        for name, entry in (yaml.safe_load(catalog.read_text()) or {}).items():
            inner = (
                entry.get("dataset") if isinstance(entry.get("dataset"), dict) else {}
            )
            types = {entry.get("type"), inner.get("type")}
            yield catalog.name, name, entry, types


def test_every_table_json_and_png_dataset_has_a_kedro_viz_preview():
    checked = 0
    for catalog, name, entry, types in _entries():
        if not types & PREVIEWED:
            continue
        checked += 1
        viz = (entry.get("metadata") or {}).get("kedro-viz")
        assert isinstance(viz, dict), f"{catalog}: {name} has no metadata.kedro-viz"
        assert viz.get("preview") is not False, f"{catalog}: {name} preview is off"
        if types & TABLES:
            nrows = (viz.get("preview_args") or {}).get("nrows")
            assert isinstance(nrows, int) and nrows > 0, (
                f"{catalog}: {name} needs metadata.kedro-viz.preview_args.nrows"
            )
    assert checked >= 50


def test_registered_models_are_mlflow_artifacts_with_test_metric_prefixes():
    names: dict[str, set[str]] = {}
    for catalog, name, entry, _types in _entries():
        declared = (entry.get("metadata") or {}).get("model_registry")
        if declared is None:
            continue
        assert entry["type"].endswith("MlflowArtifactDataset"), (
            f"{catalog}: {name} is registered but not logged to the run"
        )
        assert "/06_models/" in entry["dataset"]["filepath"], name
        prefixes = declared["test_metrics"]
        prefixes = [prefixes] if isinstance(prefixes, str) else prefixes
        assert prefixes and all(p.endswith((".", "_")) for p in prefixes), name
        model = declared["name"]
        assert model not in names.setdefault(catalog, set()), (
            f"{catalog}: {model} twice"
        )
        names[catalog].add(model)
    # A tuning study keeps no model: its result is settings to adopt through conf.
    training = {c.name for c in CATALOGS} - {"catalog_ecg_tuning.yml"}
    assert training <= set(names), "every training pipeline registers a model"


# ------------------------------------------------------------------------ real runs


def _client(project) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(project.tracking_uri)


def _inputs(run) -> dict[str, tuple[dict, dict, str]]:
    return {
        d.dataset.name: (
            json.loads(d.dataset.source),
            {t.key: t.value for t in d.tags},
            d.dataset.digest,
        )
        for d in run.inputs.dataset_inputs
    }


@pytest.mark.slow
def test_forecast_runs_are_named_described_with_inputs_and_model_versions(
    forecast_ran_twice,
):
    # The session's two shared runs of lstm_forecast (two epochs each).
    kedro_project = forecast_ran_twice
    client = _client(kedro_project)
    second, first = kedro_project.runs("lstm_forecast")
    root = kedro_project.root

    experiment = client.get_experiment(first.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    for run in (first, second):
        match = RUN_NAME.match(run.info.run_name)
        assert match, run.info.run_name
        assert match["pipeline"] == "lstm_forecast" and match["env"] == "base"
    # The description is the report the run wrote (the second run's file is on disk).
    report = (root / "data/08_reporting/forecast_report.md").read_text().strip()
    assert second.data.tags[DESCRIPTION_TAG] == report
    assert first.data.tags[DESCRIPTION_TAG].startswith("# LSTM forecast report")

    inputs = _inputs(second)
    source, tags, digest = inputs["forecast_mitdb_records"]
    raw = root / "data/01_raw/mitdb_excerpt"
    assert Path(source["uri"]) == raw.resolve()
    assert tags["mlflow.data.context"] == "raw"
    assert digest == files_digest(raw.resolve())
    source, tags, _ = inputs["forecast_split"]
    assert Path(source["uri"]).name == "forecast_split.parquet"
    assert tags["mlflow.data.context"] == "model_input"
    assert not any("08_reporting" in s["uri"] for s, _, _ in inputs.values())

    versions = sorted(
        client.search_model_versions("name='lstm_forecast.lstm'"),
        key=lambda v: int(v.version),
    )
    assert [(str(v.version), v.run_id) for v in versions] == [
        ("1", first.info.run_id),
        ("2", second.info.run_id),
    ]
    expected = {
        k: f"{v:.6g}"
        for k, v in second.data.metrics.items()
        if k.startswith("lstm_forecast.test.lstm.")
    }
    assert expected and versions[1].tags == expected
    assert versions[1].source.endswith("/lstm_forecaster.pt")


def _exists(catalog, name: str) -> bool:
    """Whether a dataset has data; MLflow-only datasets (metrics history) need an
    active run to answer, and kedro viz previews none of them."""
    from kedro.io.core import DatasetError

    try:
        return catalog.exists(name)
    except DatasetError:
        return False


@pytest.mark.slow
def test_kedro_viz_previews_what_the_run_wrote(forecast_ran_once):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro_viz.models.flowchart.node_metadata import DataNodeMetadata
    from kedro_viz.models.flowchart.nodes import GraphNode

    from medlstm.pipeline_registry import register_pipelines

    kedro_project = forecast_ran_once  # the session's shared run of lstm_forecast
    bootstrap_project(kedro_project.root)
    with KedroSession.create(project_path=kedro_project.root) as session:
        catalog = session.load_context().catalog
    kinds = {}
    for name in sorted(register_pipelines()["lstm_forecast"].datasets()):
        if name.startswith("params:") or not _exists(catalog, name):
            continue
        dataset = catalog.get(name)
        if not (getattr(dataset, "metadata", None) or {}).get("kedro-viz"):
            continue
        node = GraphNode.create_data_node(
            dataset_id=name,
            dataset_name=name,
            layer=None,
            tags=set(),
            dataset=dataset,
            modular_pipelines=None,
        )
        metadata = DataNodeMetadata(data_node=node)
        assert metadata.preview, f"kedro viz shows no preview of {name}"
        kinds[name] = metadata.preview_type
        if metadata.preview_type == "TablePreview":
            nrows = dataset.metadata["kedro-viz"]["preview_args"]["nrows"]
            assert len(metadata.preview["data"]) == nrows, name
    assert kinds["forecast_split"] == "TablePreview"
    assert kinds["forecast_training_summary"] == "JSONPreview"
    assert kinds["forecast_plot"] == "ImagePreview"


@pytest.mark.slow
def test_ecg_run_logs_its_tables_and_registers_every_model_and_the_pyfunc(
    ecg_trained_project,
):
    # The session's shared ecg_autoencoder run (one epoch per model).
    kedro_project = ecg_trained_project
    client = _client(kedro_project)
    (run,) = kedro_project.runs("ecg_autoencoder")
    root = kedro_project.root

    assert RUN_NAME.match(run.info.run_name)["pipeline"] == "ecg_autoencoder"
    summary = (root / "data/08_reporting/ecg_summary.md").read_text().strip()
    assert run.data.tags[DESCRIPTION_TAG][:1000] == summary[:1000]
    inputs = _inputs(run)
    for name, context in (
        ("ecg_raw_records", "raw"),
        ("ecg_svdb_records", "raw"),
        ("ecg_beats", "intermediate"),
        ("ecg_beats_split", "primary"),
    ):
        assert inputs[name][1]["mlflow.data.context"] == context, name
    beats = run.inputs.dataset_inputs
    beats = next(d.dataset for d in beats if d.dataset.name == "ecg_beats_split")
    columns = {c["name"] for c in json.loads(beats.schema)["mlflow_colspec"]}
    assert {"record", "label", "split"} <= columns

    versions = {
        v.name: v for v in client.search_model_versions(f"run_id='{run.info.run_id}'")
    }
    assert set(versions) == {
        f"ecg_autoencoder.{m}"
        for m in ("autoencoder", "cnn", "linear", "rhythm", "pyfunc")
    }
    for model in ("autoencoder", "cnn", "linear", "rhythm"):
        tags = versions[f"ecg_autoencoder.{model}"].tags
        assert tags[f"{model}.test.accuracy"] == (
            f"{run.data.metrics[f'{model}.test.accuracy']:.6g}"
        )
        assert all(k.startswith(f"{model}.test.") for k in tags), model
    pyfunc = versions["ecg_autoencoder.pyfunc"]
    (logged,) = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    assert pyfunc.source == f"models:/{logged.model_id}"
    assert pyfunc.tags, "the pyfunc version carries the test metrics of its models"


def test_the_pyfunc_model_of_a_run_becomes_a_version_per_run(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from medlstm.tracking.run_page import RunPageHook

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    monkeypatch.chdir(tmp_path)  # the artifacts go to tmp_path/mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient()
        mlflow.set_experiment("medlstm/demo")
        for version in ("1", "2"):
            with mlflow.start_run() as run:
                mlflow.pyfunc.log_model(
                    name="demo_pyfunc", python_model=Echo(), pip_requirements=[]
                )
            hook = RunPageHook()
            hook._run_id, hook._pipeline_label = run.info.run_id, "demo"
            pipeline = SimpleNamespace(log_model_kwargs={"name": "demo_pyfunc"})
            hook._register_pyfunc(client, pipeline, {"m.test.accuracy": "0.75"})
            (logged,) = client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run.info.run_id}'",
            )
            (registered,) = client.search_model_versions(
                f"name='demo.pyfunc' and run_id='{run.info.run_id}'"
            )
            assert str(registered.version) == version
            assert registered.source == f"models:/{logged.model_id}"
            assert registered.tags == {"m.test.accuracy": "0.75"}
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
