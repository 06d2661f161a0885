"""Shared fixtures: an isolated copy of the project for end-to-end runs."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from medlstm.core.params import nest_dotted

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Tests never send telemetry and never write to the developer's own MLflow store.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


class KedroProject:
    """A copy of conf/, src/, pyproject.toml and data/01_raw in a temporary folder."""

    def __init__(self, root: Path):
        self.root = root
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"

    def run_pipeline(
        self, name: str, params: dict[str, Any] | None = None, env: str | None = None
    ) -> dict[str, Any]:
        """Run a registered pipeline in a fresh KedroSession; returns the run's outputs."""
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        _end_active_runs()
        bootstrap_project(self.root)
        with KedroSession.create(
            project_path=self.root, env=env, runtime_params=nest_dotted(params or {})
        ) as session:
            outputs = session.run(pipeline_names=[name])
        _end_active_runs()
        return outputs

    def runs(self, pipeline: str) -> list[mlflow.entities.Run]:
        """The MLflow runs of one pipeline's experiment, newest first."""
        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        experiment = client.get_experiment_by_name(f"medlstm/{pipeline}")
        if experiment is None:
            return []
        return client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"]
        )


def _end_active_runs() -> None:
    while mlflow.active_run():
        mlflow.end_run()


# The ECG excerpts shipped for `make run` hold several minutes per record; end-to-end
# tests cut their copy to this many, so that a run's cost does not grow with them.
TEST_EXCERPT_MINUTES = 1.0


def cut_excerpts(raw: Path, minutes: float) -> None:
    """Cut every record of the ECG excerpts under ``raw`` to its first ``minutes``."""
    import wfdb

    from medlstm.excerpts.mitdb import cut_record

    for folder in (raw / "mitdb_excerpt", raw / "svdb_excerpt"):
        if not folder.is_dir():
            continue
        cut = folder.with_name(folder.name + ".cut")
        cut.mkdir()
        for hea in sorted(folder.glob("*.hea")):
            fs = wfdb.rdheader(str(hea.with_suffix(""))).fs
            cut_record(folder, hea.stem, cut, round(minutes * 60 * fs))
        for path in cut.iterdir():
            path.replace(folder / path.name)
        cut.rmdir()


@functools.cache
def _cut_raw(minutes: float) -> Path:
    """A copy of data/01_raw with the ECG excerpts cut, made once per test process."""
    folder = Path(tempfile.mkdtemp(prefix="medlstm_raw_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    raw = folder / "01_raw"
    shutil.copytree(
        PROJECT_ROOT / "data" / "01_raw",
        raw,
        ignore=shutil.ignore_patterns("smri_synthetic"),
    )
    cut_excerpts(raw, minutes)
    return raw


@functools.cache
def _empty_mlflow_store() -> Path:
    """An empty MLflow SQLite store with all its tables, made once per test process.

    MLflow creates and migrates a new store's tables on first use, which takes seconds
    (tens of seconds on a loaded machine); every project copy starts from a copy of
    this one instead (:func:`copy_empty_mlflow_store`)."""
    folder = Path(tempfile.mkdtemp(prefix="medlstm_mlflow_")).resolve()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with pytest.MonkeyPatch.context() as mp:  # contextlib.chdir needs Python 3.11
        mp.chdir(folder)
        mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder


def copy_empty_mlflow_store(db: Path, default_artifacts: str) -> None:
    """``db``: a copy of the empty store whose Default experiment keeps its artifacts at
    ``default_artifacts``, with the times of now, as MLflow makes a new store there
    (``<working folder>/mlruns/0`` embedded, ``mlflow-artifacts:/0`` for a server)."""
    template = _empty_mlflow_store()
    shutil.copy2(template / "mlflow.db", db)
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        (location,) = connection.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id = 0"
        ).fetchone()
        assert location == str(template / "mlruns" / "0"), location
        connection.execute(
            "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
            "last_update_time = ? WHERE experiment_id = 0",
            (default_artifacts, now, now),
        )


def cut_raw(minutes: float = TEST_EXCERPT_MINUTES) -> Path:
    """data/01_raw with the ECG excerpts cut to their first ``minutes`` per record: a
    copy made once per test process, shared; read it, never change it."""
    return _cut_raw(minutes)


def make_kedro_project(
    tmp_path: Path, excerpt_minutes: float | None = TEST_EXCERPT_MINUTES
) -> KedroProject:
    """Copy the project into ``tmp_path/project``; its MLflow store is an SQLite file
    there. The caller points MLFLOW_TRACKING_URI and the working folder at it. The
    ECG excerpts are cut to ``excerpt_minutes`` per record (``None``: as shipped)."""
    root = tmp_path / "project"
    root.mkdir()
    copy_empty_mlflow_store(root / "mlflow.db", str(root.resolve() / "mlruns" / "0"))
    # docs/experiments holds the DS2 score history the ECG summary reads.
    for item in ("conf", "src", "pyproject.toml", ".telemetry", "docs/experiments"):
        source = PROJECT_ROOT / item
        if source.is_dir():
            shutil.copytree(
                source,
                root / item,
                ignore=shutil.ignore_patterns("__pycache__", "local"),
            )
        elif source.exists():
            shutil.copy2(source, root / item)
    (root / "conf" / "local").mkdir(exist_ok=True)
    raw = PROJECT_ROOT / "data" / "01_raw"
    if excerpt_minutes is not None:
        raw = _cut_raw(excerpt_minutes)
    shutil.copytree(
        raw, root / "data" / "01_raw", ignore=shutil.ignore_patterns("smri_synthetic")
    )
    for layer in (
        "02_intermediate",
        "03_primary",
        "04_feature",
        "05_model_input",
        "06_models",
        "07_model_output",
        "08_reporting",
    ):
        (root / "data" / layer).mkdir(parents=True, exist_ok=True)
    # Relative paths in the catalog (data/...) and ../shared/data resolve from here.
    shared = PROJECT_ROOT.parent / "shared"
    if shared.exists() and not (tmp_path / "shared").exists():
        (tmp_path / "shared").symlink_to(shared)
    return KedroProject(root)


def _enter(project: KedroProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in ``project``: its folder, and its MLflow store for the env and mlflow."""
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.tracking_uri)
    mlflow.set_tracking_uri(project.tracking_uri)


@pytest.fixture
def kedro_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KedroProject]:
    """An isolated project copy whose MLflow store is an SQLite file in tmp_path."""
    project = make_kedro_project(tmp_path)
    _enter(project, monkeypatch)
    yield project
    _end_active_runs()


def shared_project(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    pipeline: str,
    params: dict[str, Any],
    runs: int = 1,
) -> KedroProject:
    """A project copy in which ``pipeline`` has run ``runs`` times with ``params``: for
    a session-scoped fixture whose tests read what the runs left, so that the runs
    serve them all."""
    project = make_kedro_project(tmp_path_factory.mktemp(name))
    with pytest.MonkeyPatch.context() as mp:
        _enter(project, mp)
        for _ in range(runs):
            project.run_pipeline(pipeline, params=params)
    return project


def _inside(project: KedroProject, monkeypatch: pytest.MonkeyPatch):
    _enter(project, monkeypatch)
    yield project
    _end_active_runs()


# The small real pipeline, lstm_forecast on the shipped MIT-BIH excerpt, shrunk to two
# epochs; its shared runs (`forecast_ran_once`, `forecast_ran_twice`) serve the tests
# that only read what a run left.
FORECAST_FAST = {"lstm_forecast.training.epochs": 2}


@pytest.fixture(scope="session")
def _forecast_once(tmp_path_factory: pytest.TempPathFactory) -> KedroProject:
    return shared_project(
        tmp_path_factory, "forecast_once", "lstm_forecast", FORECAST_FAST
    )


@pytest.fixture
def forecast_ran_once(
    _forecast_once: KedroProject, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KedroProject]:
    """A project copy, shared by the session, in which ``lstm_forecast`` has run once
    with ``FORECAST_FAST`` (its one MLflow run). Tests only read it."""
    yield from _inside(_forecast_once, monkeypatch)


@pytest.fixture(scope="session")
def _forecast_twice(tmp_path_factory: pytest.TempPathFactory) -> KedroProject:
    return shared_project(
        tmp_path_factory, "forecast_twice", "lstm_forecast", FORECAST_FAST, runs=2
    )


@pytest.fixture
def forecast_ran_twice(
    _forecast_twice: KedroProject, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KedroProject]:
    """A project copy, shared by the session, in which ``lstm_forecast`` has run
    twice with ``FORECAST_FAST`` (two MLflow runs, two model versions; the files on
    disk are the second run's). Tests only read it."""
    yield from _inside(_forecast_twice, monkeypatch)


# One small ecg_autoencoder training run, shared (`ecg_trained_project`): one epoch per
# model, a two-seed autoencoder ensemble as conf/full trains (the base run trains one
# model), precision auto (bf16 where this CPU runs bf16 LSTMs and it pays, else fp32;
# both are logged) and `--params alpha=2.0`, as the README shows it.
ECG_TRAINING_FAST = {
    "alpha": 2.0,
    "ecg_autoencoder": {
        "autoencoder": {
            "training": {"epochs": 1, "precision": "auto"},
            "ensemble_seeds": [42, 7],
        },
        "cnn": {"training": {"epochs": 1}},
        "rhythm": {"training": {"epochs": 1}},
    },
}


@pytest.fixture(scope="session")
def _ecg_trained(tmp_path_factory: pytest.TempPathFactory) -> KedroProject:
    return shared_project(
        tmp_path_factory, "ecg_trained", "ecg_autoencoder", ECG_TRAINING_FAST
    )


@pytest.fixture
def ecg_trained_project(
    _ecg_trained: KedroProject, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KedroProject]:
    """A project copy, shared by the session, in which ``ecg_autoencoder`` has run
    once with ``ECG_TRAINING_FAST`` (its one run in the ``ecg_autoencoder``
    experiment, its model logged). Tests may add recordings under data/01_raw and run
    ``ecg_autoencoder_inference`` there; they leave the training's outputs, its run
    and its model as they are."""
    yield from _inside(_ecg_trained, monkeypatch)


def _bf16_skip_reason() -> str:
    from medlstm.core.precision import bf16_support

    supported, reason = bf16_support("cpu")
    return "" if supported else f"bf16 autocast cannot run here: {reason}"


# Tests of real bf16 arithmetic run where the CPU has bf16 LSTMs (AVX-512-bf16, AMX)
# and are skipped, saying why, elsewhere; the fallback and the refusal are tested
# everywhere with `fake_bf16_probe`.
requires_bf16 = pytest.mark.skipif(
    bool(_bf16_skip_reason()), reason=_bf16_skip_reason() or "bf16 runs here"
)


@pytest.fixture
def fake_bf16_probe(monkeypatch: pytest.MonkeyPatch):
    """``fake(works, speedup=2.0)`` makes the bf16 probe succeed or fail, and bf16
    time ``speedup`` times as fast as fp32, as on another CPU; the probes' caches and
    the once-per-process log are reset before and after."""
    from medlstm.core import precision

    real_support, real_speedup = precision.bf16_support, precision.bf16_speedup

    def reset() -> None:
        real_support.cache_clear()
        real_speedup.cache_clear()
        precision._logged.clear()

    def fake(works: bool, speedup: float = 2.0) -> list[str]:
        calls: list[str] = []

        def probe(device_type: str) -> None:
            calls.append(device_type)
            if not works:
                raise RuntimeError(
                    "could not create a primitive descriptor for the LSTM forward "
                    "propagation primitive"
                )

        reset()
        monkeypatch.setattr(precision, "_probe_lstm_bf16", probe)
        monkeypatch.setattr(precision, "bf16_speedup", lambda device_type: speedup)
        return calls

    yield fake
    reset()  # monkeypatch restores the real probe after this, with an empty cache
