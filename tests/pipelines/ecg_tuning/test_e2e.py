"""ecg_tuning end to end on a few records of the shipped excerpt: real kedro runs,
a real MLflow store and a real Optuna storage in tmp."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import yaml

from medlstm.core.preflight import _known, _paths, base_parameters
from tests.conftest import make_kedro_project

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

# Training records of DS1, two of its validation records, one test record of each
# database and one SVDB record per part: every split has beats, in seconds.
MITDB = ["100", "101", "106", "108", "109", "112"]
SVDB = ["800", "802", "804"]
SPLIT = {"validation": {"records": [101, 106]}}
TINY = {
    "ecg_autoencoder": {
        "split": SPLIT,
        "autoencoder": {"training": {"epochs": 1}, "model": {"hidden_size": 16}},
        "cnn": {"training": {"epochs": 1}},
        "tuning": {"n_trials": 2},
    },
}


def _few_records(root: Path) -> None:
    (root / "conf" / "local" / "catalog_few_records.yml").write_text(
        textwrap.dedent(
            f"""\
            ecg_raw_records:
              type: medlstm.datasets.wfdb_records.WfdbRecordsDataset
              path: data/01_raw/mitdb_excerpt
              records: {MITDB}
            ecg_svdb_records:
              type: medlstm.datasets.wfdb_records.WfdbRecordsDataset
              path: data/01_raw/svdb_excerpt
              records: {SVDB}
            """
        )
    )


def _study(root: Path, family: str) -> optuna.Study:
    return optuna.load_study(
        study_name=f"ecg_autoencoder.{family}",
        storage=f"sqlite:///{root / 'data' / '07_model_output' / 'optuna.db'}",
    )


def test_a_tiny_study_runs_end_to_end(kedro_project, monkeypatch):
    monkeypatch.delenv("MEDLSTM_OPTUNA_STORAGE", raising=False)
    root = kedro_project.root
    _few_records(root)
    kedro_project.run_pipeline("ecg_tuning", params=TINY)

    client = mlflow.MlflowClient(kedro_project.tracking_uri)
    runs = kedro_project.runs("ecg_tuning")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert len(trials) == 4  # two per study
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    for run in trials:
        assert run.info.status == "FINISHED"
        assert run.data.tags["optuna.state"] == "COMPLETE"
        # The final score, the mean of the databases' validation macro F1.
        scores = run.data.metrics
        assert scores["objective"] == pytest.approx(
            (scores["val_mitdb_macro_f1"] + scores["val_svdb_macro_f1"]) / 2
        )
        assert "ecg_autoencoder.cnn.training.lr" in run.data.params or (
            "alpha" in run.data.params
        )
    assert parent.data.metrics["tuning.autoencoder.trials_complete"] == 2
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "tuning")}
    assert "tuning/ecg_autoencoder_best_params.yml" in artifacts

    # Two trials per study in the SQLite storage inside the project, each the run of
    # one nested MLflow run; the best is the highest validation score.
    for family in ("autoencoder", "cnn"):
        study = _study(root, family)
        assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
        assert {t.user_attrs["mlflow_run_id"] for t in study.trials} <= {
            r.info.run_id for r in trials
        }
        table = pd.read_csv(
            root / "data/08_reporting/ecg_tuning" / f"{family}_trials.csv"
        )
        assert list(table["trial"]) == [0, 1]
        assert table["value"].max() == study.best_value
        assert (
            (root / "data/08_reporting/ecg_tuning" / f"{family}_history.png")
            .stat()
            .st_size
        )

    # The best settings are a conf file of known parameters, with the best trials' values.
    text = (root / "data/08_reporting/ecg_autoencoder_best_params.yml").read_text()
    best = yaml.safe_load(text)
    base = base_parameters(root)
    assert _paths(best) and all(_known(p, base) for p in _paths(best))
    assert best["ecg_autoencoder"]["cnn"]["training"]["lr"] == pytest.approx(
        _study(root, "cnn").best_params["ecg_autoencoder.cnn.training.lr"]
    )
    assert set(best) == {"alpha", "beta", "ecg_autoencoder"}

    # Adopted into an environment, the preflight check accepts it and a run reads it.
    (root / "conf" / "tuned").mkdir()
    (root / "conf" / "tuned" / "parameters_ecg_autoencoder.yml").write_text(text)
    from kedro.framework.session import KedroSession

    with KedroSession.create(project_path=root, env="tuned") as session:
        params = session.load_context().params
    assert params["alpha"] == pytest.approx(best["alpha"])
    assert (
        params["ecg_autoencoder"]["cnn"]["model"]["kernel_size"]
        == (best["ecg_autoencoder"]["cnn"]["model"]["kernel_size"])
    )
    untouched = base["ecg_autoencoder"]["cnn"]["training"]["epochs"]
    assert params["ecg_autoencoder"]["cnn"]["training"]["epochs"] == untouched


def test_a_trial_is_pruned_after_an_epoch(kedro_project, monkeypatch):
    # A threshold no macro F1 reaches: every trial is pruned after its first epoch.
    monkeypatch.delenv("MEDLSTM_OPTUNA_STORAGE", raising=False)
    root = kedro_project.root
    _few_records(root)
    params = {
        "ecg_autoencoder": {
            "split": SPLIT,
            "cnn": {"training": {"epochs": 3}},
            "tuning": {
                "n_trials": 2,
                "pruner": {"type": "threshold", "threshold": {"lower": 1.01}},
            },
        }
    }
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(root)
    with KedroSession.create(project_path=root, runtime_params=params) as session:
        session.run(
            pipeline_names=["ecg_tuning"],
            namespaces=["ecg_tuning.ingestion", "ecg_tuning.cnn"],
        )
    trials = _study(root, "cnn").trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert [t.last_step for t in trials] == [1, 1]  # stopped after epoch 1 of 3
    runs = [
        r for r in kedro_project.runs("ecg_tuning") if "optuna.state" in r.data.tags
    ]
    assert sorted(r.data.tags["optuna.state"] for r in runs) == ["PRUNED", "PRUNED"]
    assert all(len(client_history(kedro_project, r)) == 1 for r in runs)


def client_history(project, run) -> list:
    client = mlflow.MlflowClient(project.tracking_uri)
    return client.get_metric_history(run.info.run_id, "val_macro_f1")


WORKER = """\
import sys
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

root, seed = sys.argv[1], int(sys.argv[2])
bootstrap_project(root)
params = {"ecg_autoencoder": {"cnn": {"training": {"epochs": 1}},
          "split": {"validation": {"records": [101, 106]}},
          "tuning": {"n_trials": 4, "seed": seed}}}
with KedroSession.create(project_path=root, runtime_params=params) as session:
    session.run(pipeline_names=["ecg_tuning"],
                namespaces=["ecg_tuning.ingestion", "ecg_tuning.cnn"])
"""


def test_two_workers_share_one_study(tmp_path):
    # Two kedro runs, each in its own copy of the project (as on two machines),
    # started together against one Optuna storage.
    storage = f"sqlite:///{tmp_path / 'shared' / 'optuna.db'}"
    procs = []
    for i in (1, 2):
        (tmp_path / f"worker{i}").mkdir()
        project = make_kedro_project(tmp_path / f"worker{i}")
        _few_records(project.root)
        env = {
            **os.environ,
            "MEDLSTM_OPTUNA_STORAGE": storage,
            "MLFLOW_TRACKING_URI": project.tracking_uri,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(project.root), str(i)],
                cwd=project.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="ecg_autoencoder.cnn", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    # n_trials counts the study's trials, all workers together (one more may
    # finish while the other worker's last trial runs).
    assert 4 <= len(finished) <= 5
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2, workers
