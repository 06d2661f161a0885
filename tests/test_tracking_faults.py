"""Tracking faults injected for real: an MLflow server SIGKILLed in the middle of a
`kedro run`, and a `kedro run` SIGKILLed in the middle of training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medlstm.tracking.offline import RETRY_DEFAULTS
from tests.support.servers import BIN, free_port
from tests.test_project import (
    SMALL_PIPELINE,
    _get_json,
    server_process,  # noqa: F401 - a fixture
    start_mlflow_server,
)

pytestmark = pytest.mark.slow
# A loaded machine takes minutes to create a server store's tables.
SERVER_START_S = 400

# Rich wraps log lines at the terminal width; a subprocess has none.
WIDE = {"COLUMNS": "400", "KEDRO_DISABLE_TELEMETRY": "1"}


def _wait_in_log(proc, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in proc.log_path.read_text():
        assert proc.poll() is None, proc.log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.1)


def _runs(url: str, pipeline: str) -> list[dict]:
    experiment = _get_json(
        f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=medlstm/{pipeline}"
    )["experiment"]
    return _get_json(
        f"{url}/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment_id"]]},
    )["runs"]


def test_a_server_killed_mid_run_costs_no_results_and_uploads_later(
    kedro_project,
    server_process,  # noqa: F811 - the fixture imported above
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = kedro_project.root / "server"
    server = start_mlflow_server(server_process, store, port, wait_s=SERVER_START_S)
    run = server_process(
        [
            str(BIN / "kedro"),
            "run",
            "--pipeline",
            SMALL_PIPELINE,
            "--params",
            "lstm_forecast.training.epochs=2,lstm_forecast.model.hidden_size=8",
        ],
        cwd=kedro_project.root,
        env={**WIDE, "MLFLOW_TRACKING_URI": url},
    )
    _wait_in_log(run, "Completed 1 out of", 300)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    # Minutes only on a machine loaded by other work; the bound that matters is below.
    assert run.wait(timeout=1500) == 0, run.log_path.read_text()[-5000:]
    log = run.log_path.read_text()

    root = kedro_project.root
    for output in (
        "data/06_models/lstm_forecaster.pt",
        "data/08_reporting/forecast_report.md",
        "data/08_reporting/forecast_metrics.csv",
    ):
        assert (root / output).stat().st_size > 0, output
    (outbox,) = (root / "data" / "09_tracking_outbox").iterdir()
    run_id = outbox.name
    assert "stopped answering" in log
    assert f"not logged to run {run_id}" in log
    assert "lstm_forecast/forecast_report.md" in log  # an artifact, named
    assert " metrics: lstm_forecast." in log
    assert "not logged" in log.split("Completed 10 out of 10 tasks")[-1]  # at the end
    listed = (outbox / "NOT_LOGGED.txt").read_text()
    assert "lstm_forecast.training.val_loss" in listed  # every metric, named
    assert "end status: FINISHED" in listed
    command = (
        f"python -m medlstm.tracking.offline upload data/09_tracking_outbox/{run_id}"
    )
    assert command in log and command in listed
    # Bounded: one request's capped retries (seconds; MLflow's defaults wait minutes
    # on every request), then no request waits on the dead server.
    retries = log.count("Retrying (Retry(")
    assert 0 < retries <= int(RETRY_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    assert "Retrying (Retry(" not in log.split("stopped answering")[1]

    # The same server comes back (same store, same port): upload into the same run.
    start_mlflow_server(server_process, store, port, wait_s=SERVER_START_S)
    (before,) = _runs(url, SMALL_PIPELINE)
    assert before["info"]["status"] == "RUNNING"  # the server died before the end
    upload = subprocess.run(
        [sys.executable, "-m", "medlstm.tracking.offline", "upload", str(outbox)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": url},
        timeout=300,
        check=False,
    )
    assert upload.returncode == 0, upload.stderr[-3000:]
    assert f"Logged to run {run_id}" in upload.stdout
    (after,) = _runs(url, SMALL_PIPELINE)
    assert after["info"]["status"] == "FINISHED"
    metrics = {m["key"] for m in after["data"]["metrics"]}
    assert "lstm_forecast.training.val_loss" in metrics, metrics
    history = _get_json(
        f"{url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}"
        "&metric_key=lstm_forecast.training.val_loss"
    )["metrics"]
    assert [m["step"] for m in history] == [1, 2]
    files = _get_json(
        f"{url}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=lstm_forecast"
    )["files"]
    assert "lstm_forecast/forecast_report.md" in {f["path"] for f in files}
    # A second upload would log every metric twice: refused.
    again = subprocess.run(
        [sys.executable, "-m", "medlstm.tracking.offline", "upload", str(outbox)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 1 and "already uploaded" in again.stderr
    assert json.loads((outbox / "uploaded.json").read_text())["run_id"] == run_id


def test_a_killed_run_is_marked_killed_by_the_next_one_which_names_it(
    kedro_project,
    server_process,  # noqa: F811 - the fixture imported above
):
    state = kedro_project.root / "data" / ".kedro_run.state.json"
    killed = server_process(
        [
            str(BIN / "kedro"),
            "run",
            "--pipeline",
            SMALL_PIPELINE,
            "--params",
            "lstm_forecast.training.epochs=500",
        ],
        cwd=kedro_project.root,
        env=WIDE,
    )
    _wait_in_log(killed, "Running node: train_forecaster", 300)
    orphan = json.loads(state.read_text())
    assert orphan["pid"] == killed.pid
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    (run,) = kedro_project.runs(SMALL_PIPELINE)
    assert run.info.run_id == orphan["run_id"]
    assert run.info.status == "RUNNING"  # nobody closed it

    kedro_project.run_pipeline(
        SMALL_PIPELINE, params={"lstm_forecast.training.epochs": 1}
    )
    new, old = kedro_project.runs(SMALL_PIPELINE)
    assert old.info.run_id == orphan["run_id"]
    assert old.info.status == "KILLED"
    assert new.info.status == "FINISHED"
    assert new.data.tags["medlstm.after_killed_run"] == orphan["run_id"]
    assert not state.exists()  # a run that ended leaves no state behind
    # The run after a clean one names no killed run.
    kedro_project.run_pipeline(
        SMALL_PIPELINE, params={"lstm_forecast.training.epochs": 1}
    )
    latest = kedro_project.runs(SMALL_PIPELINE)[0]
    assert "medlstm.after_killed_run" not in latest.data.tags


def test_a_run_stopped_by_the_preflight_checks_is_stored_failed(kedro_project):
    """kedro-mlflow opens the run before the checks run; it must not stay RUNNING or
    end FINISHED."""
    with pytest.raises(ValueError, match="did you mean"):
        kedro_project.run_pipeline(
            SMALL_PIPELINE, params={"lstm_forecast.trainng.lr": 1}
        )
    (run,) = kedro_project.runs(SMALL_PIPELINE)
    assert run.info.status == "FAILED"
