"""The project as a user meets it: the registry, kedro viz, MLflow (embedded and a real
server), checks before training, and seeded reproducibility.

The small real pipeline used here is `lstm_forecast` on the shipped MIT-BIH excerpt,
shrunk to a couple of epochs by runtime parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from medlstm.pipeline_registry import PIPELINES, VARIANTS
from tests.conftest import FORECAST_FAST, copy_empty_mlflow_store
from tests.support.servers import (
    BIN,
    MLFLOW_SERVER_ENV,
    ProcessGroups,
    free_port,
    mlflow_server_command,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL_PIPELINE = "lstm_forecast"
SMALL_PARAMS = FORECAST_FAST  # {"lstm_forecast.training.epochs": 2}

pytestmark = pytest.mark.slow


def _get_json(url: str, payload: dict | None = None, timeout: float = 10.0) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def start_mlflow_server(
    start, store: Path, port: int, wait_s: float
) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:``port`` over an SQLite store in ``store``,
    started with the ``server_process`` fixture's ``start``; returns once /health
    answers."""
    store.mkdir(exist_ok=True)
    if not (store / "mlflow.db").exists():
        # A new store's tables, as the server would make them, without the wait.
        copy_empty_mlflow_store(store / "mlflow.db", "mlflow-artifacts:/0")
    proc = start(
        mlflow_server_command(
            f"sqlite:///{store / 'mlflow.db'}",
            port,
            "--artifacts-destination",
            str(store / "artifacts"),
        ),
        cwd=store,
        env=MLFLOW_SERVER_ENV,
    )
    wait_for(f"http://127.0.0.1:{port}/health", proc, wait_s)
    return proc


@pytest.fixture
def server_process(tmp_path) -> Iterator[callable]:
    """Start servers in their own process group and always stop the whole group."""
    with ProcessGroups(tmp_path) as servers:
        yield servers.start


def test_registry_lists_every_pipeline():
    out = subprocess.run(
        [str(BIN / "kedro"), "registry", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    ).stdout
    for name in (*PIPELINES, *VARIANTS, "__default__"):
        assert f"- {name}" in out


def test_kedro_viz_serves_every_pipeline(server_process):
    port = free_port()
    proc = server_process(
        [
            str(BIN / "kedro"),
            "viz",
            "run",
            "--no-browser",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
    )
    wait_for(f"http://127.0.0.1:{port}/api/main", proc, 120)
    graph = _get_json(f"http://127.0.0.1:{port}/api/main")
    served = {p["id"] for p in graph["pipelines"]}
    assert set(PIPELINES) <= served
    names = {n["name"] for n in graph["nodes"]}
    assert any(
        name.startswith("params:") or "Parameters" in name for name in names
    ) or any(n.get("type") == "parameters" for n in graph["nodes"])


def test_run_is_tracked_on_a_real_mlflow_server(
    kedro_project, server_process, monkeypatch
):
    port = free_port()
    store = kedro_project.root / "server"
    start_mlflow_server(server_process, store, port, wait_s=120)
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    kedro_project.run_pipeline(SMALL_PIPELINE, params=SMALL_PARAMS)

    experiment = _get_json(
        f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=medlstm/{SMALL_PIPELINE}"
    )["experiment"]
    runs = _get_json(
        f"{url}/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment_id"]]},
    )["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["lstm_forecast.training.epochs"] == "2"
    history = _get_json(
        f"{url}/api/2.0/mlflow/metrics/get-history?run_id={run['info']['run_id']}"
        f"&metric_key={_metric_with(run, 'val_loss')}"
    )["metrics"]
    assert [m["step"] for m in history] == [1, 2]
    artifacts = _get_json(
        f"{url}/api/2.0/mlflow/artifacts/list?run_id={run['info']['run_id']}"
    )
    assert artifacts.get("files"), "the run logged no artifacts"


def _metric_with(run: dict, fragment: str) -> str:
    keys = [m["key"] for m in run["data"]["metrics"]]
    matches = [k for k in keys if k.endswith(fragment)]
    assert matches, f"no metric ending in {fragment!r} among {keys}"
    return matches[0]


def test_embedded_run_has_params_histories_reports_and_the_model(forecast_ran_once):
    # The session's shared run of SMALL_PIPELINE with FORECAST_FAST (= SMALL_PARAMS).
    kedro_project = forecast_ran_once
    (run,) = kedro_project.runs(SMALL_PIPELINE)
    client = mlflow.MlflowClient(kedro_project.tracking_uri)
    assert run.data.params["lstm_forecast.training.epochs"] == "2"
    val_loss = [k for k in run.data.metrics if k.endswith("val_loss")]
    assert (
        val_loss and len(client.get_metric_history(run.info.run_id, val_loss[0])) == 2
    )
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    files = _walk(client, run.info.run_id, artifacts)
    assert any(p.endswith(".png") for p in files)
    assert any(p.endswith(".md") for p in files)
    assert any(p.endswith(".pt") for p in files), "the model file was not logged"


def _walk(client: mlflow.MlflowClient, run_id: str, paths: list[str]) -> list[str]:
    files = []
    for path in paths:
        children = client.list_artifacts(run_id, path)
        files += (
            _walk(client, run_id, [c.path for c in children]) if children else [path]
        )
    return files


def test_same_seed_same_metrics(forecast_ran_twice):
    # The session's two shared runs of SMALL_PIPELINE with FORECAST_FAST (= SMALL_PARAMS).
    kedro_project = forecast_ran_twice
    first, second = kedro_project.runs(SMALL_PIPELINE)
    metrics = {k: v for k, v in first.data.metrics.items() if "seconds" not in k}
    assert metrics, "no metrics logged"
    assert metrics == {
        k: v for k, v in second.data.metrics.items() if "seconds" not in k
    }


def test_missing_input_file_fails_before_training_and_names_it(kedro_project):
    shutil.rmtree(kedro_project.root / "data" / "01_raw" / "mitdb_excerpt")
    with pytest.raises(Exception, match="mitdb_excerpt") as info:
        kedro_project.run_pipeline(SMALL_PIPELINE, params=SMALL_PARAMS)
    assert "does not exist" in str(info.value) or "No such" in str(info.value)
    assert not list((kedro_project.root / "data" / "06_models").glob("*.pt"))


def test_malformed_training_parameter_fails_before_training_and_names_it(kedro_project):
    with pytest.raises(
        ValueError, match=r"lstm_forecast\.training\.epochs must be a number, got 'ten'"
    ):
        kedro_project.run_pipeline(
            SMALL_PIPELINE, params={"lstm_forecast.training.epochs": "ten"}
        )


def _data_written(root) -> list:
    layers = [p for p in (root / "data").iterdir() if p.name != "01_raw"]
    return [f for layer in layers for f in layer.rglob("*") if f.is_file()]


def test_bf16_on_a_cpu_without_it_fails_before_any_node_naming_the_parameter(
    kedro_project, fake_bf16_probe
):
    fake_bf16_probe(works=False)
    with pytest.raises(ValueError) as error:
        kedro_project.run_pipeline(
            "ecg_autoencoder",
            params={"ecg_autoencoder.autoencoder.training.precision": "bf16"},
        )
    assert "'ecg_autoencoder.autoencoder.training.precision' asks for bf16" in str(
        error.value
    )
    assert _data_written(kedro_project.root) == []


def test_nested_training_parameters_are_checked_before_any_node(kedro_project):
    with pytest.raises(
        ValueError, match=r"ecg_autoencoder\.autoencoder\.training\.lr' must be > 0"
    ):
        kedro_project.run_pipeline(
            "ecg_autoencoder", params={"ecg_autoencoder.autoencoder.training.lr": -1.0}
        )
    assert _data_written(kedro_project.root) == []


def test_a_mistyped_parameter_fails_before_any_node_with_the_nearest_name(
    kedro_project,
):
    with pytest.raises(ValueError) as error:
        kedro_project.run_pipeline(
            "lstm_forecast", params={"lstm_forecast.trainng.lr": -1.0}
        )
    message = str(error.value)
    assert "lstm_forecast.trainng.lr (from --params)" in message
    assert "did you mean lstm_forecast.training.lr?" in message
    assert _data_written(kedro_project.root) == []
    # A run stopped by the checks is never stored as FINISHED (nor left RUNNING).
    assert {r.info.status for r in kedro_project.runs("lstm_forecast")} <= {"FAILED"}


def test_an_unknown_key_in_an_environment_names_the_environment(kedro_project):
    env = kedro_project.root / "conf" / "typo"
    env.mkdir()
    (env / "parameters_lstm_forecast.yml").write_text(
        "lstm_forecast:\n  training:\n    epoch: 3\n"
    )
    with pytest.raises(ValueError) as error:
        kedro_project.run_pipeline("lstm_forecast", env="typo")
    message = str(error.value)
    assert "lstm_forecast.training.epoch (from conf/typo)" in message
    assert "did you mean lstm_forecast.training.epochs?" in message
    assert _data_written(kedro_project.root) == []


def test_an_unreachable_tracking_server_fails_fast_naming_it(
    kedro_project, monkeypatch
):
    # Port 9 (discard) on the loopback: nothing listens, the connection is refused.
    uri = "http://127.0.0.1:9"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        kedro_project.run_pipeline(SMALL_PIPELINE, params=SMALL_PARAMS)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert f"The MLflow tracking server {uri} is unreachable" in message
    assert "unset MLFLOW_TRACKING_URI" in message
    assert _data_written(kedro_project.root) == []


def _run_holding_the_lock(kedro_project, server_process) -> subprocess.Popen:
    """A real `kedro run` in a subprocess, returned once it holds the folder's lock."""
    first = server_process(
        [str(BIN / "kedro"), "run", "--pipeline", SMALL_PIPELINE],
        cwd=kedro_project.root,
        env={"KEDRO_DISABLE_TELEMETRY": "1"},
    )
    lock = kedro_project.root / "data" / ".kedro_run.lock"
    deadline = time.monotonic() + 90
    while not (lock.exists() and f"pid {first.pid}" in lock.read_text()):
        assert first.poll() is None, first.log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)
    return first


def test_a_second_run_in_the_same_folder_is_refused_naming_the_first(
    kedro_project, server_process
):
    """Two real runs: a `kedro run` in a subprocess holds the folder; a second run
    started meanwhile is refused before any node, naming the first one's pid."""
    first = _run_holding_the_lock(kedro_project, server_process)
    with pytest.raises(
        RuntimeError, match=rf"pid {first.pid}, pipeline {SMALL_PIPELINE}"
    ):
        kedro_project.run_pipeline(SMALL_PIPELINE, params=SMALL_PARAMS)
    assert first.wait(timeout=300) == 0, first.log_path.read_text()[-3000:]
    # The lock went with the first run: the folder is free again.
    kedro_project.run_pipeline(SMALL_PIPELINE, params=SMALL_PARAMS)


def test_a_killed_run_leaves_no_lock_behind(kedro_project, server_process):
    first = _run_holding_the_lock(kedro_project, server_process)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    kedro_project.run_pipeline(SMALL_PIPELINE, params=SMALL_PARAMS)
    (run, *_) = kedro_project.runs(SMALL_PIPELINE)
    assert run.info.status == "FINISHED"


def test_a_value_of_the_wrong_kind_is_named_before_any_node(kedro_project):
    with pytest.raises(ValueError) as error:
        kedro_project.run_pipeline("ecg_autoencoder", params={"alpha": "abc"})
    assert "alpha must be a number, got 'abc' (from --params)" in str(error.value)
    assert _data_written(kedro_project.root) == []
