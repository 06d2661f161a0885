"""End to end on the shipped excerpt: a small training run logs the pyfunc model, then
new recordings (WFDB without annotations, EDF, CSV) are classified by
``kedro run --pipeline=ecg_autoencoder_inference`` and the served model answers a raw
60-second strip as the model does in process."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import signal as sps
from wfdb.io.convert.edf import wfdb_to_edf

from medlstm.datasets.wfdb_records import read_wfdb_record
from tests.support.servers import BIN, ProcessGroups, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

RECORD = "208"  # many V beats in its first minute
# Under heavy CPU contention the server took 240 s to import its stack and load.
SERVER_START_S = 480


@pytest.fixture
def trained(ecg_trained_project):
    """The session's project copy with a model trained (one epoch) and logged to its
    MLflow store (tests.conftest.ECG_TRAINING_FAST)."""
    return ecg_trained_project


def _new_recording(root: Path, kind: str) -> tuple[str, float | None, float]:
    """Record 208's first minute as a new recording of ``kind``: its path (relative
    to the project), the sampling rate to pass, and the file's own rate."""
    folder = root / "data" / "01_raw" / "new"
    folder.mkdir(exist_ok=True)
    source = root / "data" / "01_raw" / "mitdb_excerpt" / RECORD
    if kind == "wfdb":
        for ext in ("hea", "dat"):  # no .atr: nothing to tell where the beats are
            shutil.copy2(f"{source}.{ext}", folder / f"{RECORD}.{ext}")
        return f"data/01_raw/new/{RECORD}", None, 360.0
    if kind == "edf":
        wfdb_to_edf(str(source), output_filename=str(folder / f"{RECORD}.edf"))
        return f"data/01_raw/new/{RECORD}.edf", None, 360.0
    x = read_wfdb_record(source, None).signals["MLII"]
    pd.DataFrame({"MLII": sps.resample_poly(x, 25, 36)}).to_csv(
        folder / f"{RECORD}.csv", index=False
    )
    return f"data/01_raw/new/{RECORD}.csv", 250.0, 250.0


@pytest.mark.parametrize("kind", ["wfdb", "edf", "csv"])
def test_a_new_recording_is_classified_with_summary_and_strip(trained, kind):
    path, rate, fs = _new_recording(trained.root, kind)
    trained.run_pipeline(
        "ecg_autoencoder_inference",
        params={
            "ecg_autoencoder.inference.record_path": path,
            "ecg_autoencoder.inference.sampling_rate": rate,
        },
    )
    root = trained.root
    beats = pd.read_csv(root / "data/07_model_output/ecg_inference_predictions.csv")
    assert list(beats.columns[:5]) == ["record", "time_s", "sample", "class", "noise"]
    assert {"p_N", "p_S", "p_V", "p_F", "p_Q", "recon_error"} <= set(beats.columns)
    assert "label" not in beats  # no reference was read
    # Record 208's first minute holds 101 annotated beats; edges and a wfdb EDF
    # writer's flat padding add none.
    assert 95 <= len(beats) <= 105
    assert beats["time_s"].between(0, 60).all()
    np.testing.assert_allclose(beats["sample"] / fs, beats["time_s"])

    summary = json.loads(
        (root / "data/08_reporting/ecg_inference_summary.json").read_text()
    )
    (rec,) = summary["records"].values()
    assert rec["sampling_rate_hz"] == fs and rec["lead"] == "MLII"
    assert rec["beats_per_class"] == {
        c: int((beats["class"] == c).sum()) for c in ["N", "S", "V", "F", "Q", "noise"]
    }
    classified = beats[~beats["noise"]]
    assert rec["ectopic_burden_pct"]["V"] == round(
        100 * (classified["class"] == "V").mean(), 2
    )
    assert 85 <= rec["mean_heart_rate_bpm"] <= 125
    assert (
        "ectopic burden"
        in (root / "data/08_reporting/ecg_inference_summary.md").read_text()
    )
    with Image.open(root / "data/08_reporting/ecg_inference_strip.png") as png:
        assert png.size[0] == 1600 and png.size[1] in (640, 1280)

    assert trained.runs("ecg_autoencoder_inference")[0].info.status == "FINISHED"


def test_reference_beats_keep_the_annotated_labels(trained):
    trained.run_pipeline(
        "ecg_autoencoder_inference",
        params={
            "ecg_autoencoder.inference.record_path": "data/01_raw/mitdb_excerpt/232",
            "ecg_autoencoder.inference.beats": "reference",
        },
    )
    beats = pd.read_csv(
        trained.root / "data/07_model_output/ecg_inference_predictions.csv"
    )
    assert set(beats["label"]) <= {"N", "S", "V", "F", "Q"} and len(beats) > 40
    assert not beats["noise"].any()


def test_a_bad_recording_fails_the_run_naming_the_file(trained):
    bad = trained.root / "data" / "01_raw" / "flat.csv"
    pd.DataFrame({"MLII": np.zeros(360 * 20)}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="flat.csv: lead MLII is a flat line"):
        trained.run_pipeline(
            "ecg_autoencoder_inference",
            params={
                "ecg_autoencoder.inference.record_path": "data/01_raw/flat.csv",
                "ecg_autoencoder.inference.sampling_rate": 360,
            },
        )


@pytest.mark.timeout(1500)
def test_served_model_classifies_a_raw_strip_as_in_process(trained, tmp_path):
    (run,) = trained.runs("ecg_autoencoder")
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    x = read_wfdb_record(
        trained.root / "data/01_raw/mitdb_excerpt" / RECORD, None
    ).signals["MLII"]
    strip = pd.DataFrame({"signal": x[: 60 * 360], "fs": 360.0})
    expected = mlflow.pyfunc.load_model(model.model_uri).predict(strip)
    assert (
        len(expected) > 90
        and expected["class"].isin(["N", "S", "V", "F", "Q", "noise"]).all()
    )

    port = free_port()
    # Its own process group: the server's workers are stopped with it.
    with ProcessGroups(tmp_path, cwd=trained.root) as servers:
        server = servers.start(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                model.model_uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env={
                "MLFLOW_TRACKING_URI": trained.tracking_uri,
                # The server runs the venv's uvicorn, as in an activated venv.
                "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            },
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/ping", server, SERVER_START_S)
        body = json.dumps(
            {"dataframe_split": strip.to_dict(orient="split", index=False)}
        ).encode()
        request = urllib.request.Request(
            f"{url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as answer:
            served = pd.DataFrame(json.loads(answer.read())["predictions"])
        # A strip too short to classify is refused with the reason.
        short = json.dumps(
            {"dataframe_split": strip.iloc[:720].to_dict(orient="split", index=False)}
        ).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{url}/invocations",
                    data=short,
                    headers={"Content-Type": "application/json"},
                ),
                timeout=300,
            )
        assert refused.value.code >= 400
        assert "model input: the recording lasts 2.0 s" in refused.value.read().decode()

    assert list(served.columns) == list(expected.columns)
    assert served["class"].tolist() == expected["class"].tolist()
    assert served["sample"].tolist() == expected["sample"].tolist()
    assert served["noise"].tolist() == expected["noise"].tolist()
    numbers = [c for c in expected.columns if c.startswith("p_")] + [
        "time_s",
        "recon_error",
    ]
    np.testing.assert_allclose(
        served[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=1e-6
    )
