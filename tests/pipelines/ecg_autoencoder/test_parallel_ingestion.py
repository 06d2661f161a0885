"""Ingestion fanned out to Dask workers, lazily read records, spilled windows."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from medlstm.core.parallel import (
    IN_PROCESS,
    SCHEDULER_ENV,
    ParallelParams,
    map_tasks,
)
from medlstm.datasets.wfdb_records import LazyWfdbRecords, WfdbRecordsDataset
from medlstm.datasets.window_shards import ShardedWindows
from medlstm.pipelines.ecg_autoencoder.detection import (
    detected_segmenter,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    _record_task,
    _run_record,
    segment_databases,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
)
from tests.conftest import cut_raw

RAW = Path(__file__).parents[3] / "data" / "01_raw"


@pytest.fixture(scope="module")
def excerpt():
    """Every record of the shipped MIT-BIH and SVDB excerpts, cut to their first
    minute as for the end-to-end runs (still thousands of beats), read lazily as the
    catalog does."""
    raw = cut_raw()
    return (
        WfdbRecordsDataset(path=str(raw / "mitdb_excerpt"), lazy=True).load(),
        WfdbRecordsDataset(path=str(raw / "svdb_excerpt"), lazy=True).load(),
    )


@pytest.fixture(scope="module")
def sequential(excerpt, base_params):
    cfg = base_params["ecg_autoencoder"]
    return segment_databases(*excerpt, cfg["ingestion"], cfg["databases"])


def _assert_same(result, expected):
    beats, windows, report = result
    pd.testing.assert_frame_equal(beats, expected[0])
    for key in ("windows", "record", "sample"):
        np.testing.assert_array_equal(np.asarray(windows[key]), expected[1][key])
    assert report == expected[2]


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_sequential_beats_and_windows(
    excerpt, sequential, base_params
):
    cfg = base_params["ecg_autoencoder"]
    ingestion = {
        **cfg["ingestion"],
        "parallel": {**cfg["ingestion"]["parallel"], "backend": "dask", "n_workers": 2},
    }
    result = segment_databases(*excerpt, ingestion, cfg["databases"])
    _assert_same(result, sequential)
    assert len(sequential[0]) > 5000  # every record of both excerpts took part
    assert set(sequential[0]["database"]) == {"mitdb", "svdb"}


def test_spilled_windows_are_the_in_memory_windows_and_their_folder_goes(
    excerpt, sequential, base_params
):
    cfg = base_params["ecg_autoencoder"]
    ingestion = {**cfg["ingestion"], "spill_windows": True}
    result = segment_databases(*excerpt, ingestion, cfg["databases"])
    windows = result[1]["windows"]
    assert isinstance(windows, ShardedWindows)
    # One shard per record, in a temporary folder.
    folder = windows.paths[0].parent
    assert len(windows.paths) == len(excerpt[0]) + len(excerpt[1])
    _assert_same(result, sequential)
    del result, windows
    gc.collect()
    assert not folder.exists()


def test_lazy_records_are_read_on_lookup_only():
    records = WfdbRecordsDataset(
        path=str(RAW / "mitdb_excerpt"), records=["100", "101"], lazy=True
    ).load()
    assert isinstance(records, LazyWfdbRecords)
    assert list(records) == ["100", "101"] and "100" in records and "999" not in records
    loader = pickle.loads(pickle.dumps(records.loader("101")))
    assert loader().record_id == "101" and records["101"].fs == 360.0
    with pytest.raises(KeyError):
        records.loader("999")
    with pytest.raises(DatasetError, match=r"999\.hea: WFDB header not found"):
        WfdbRecordsDataset(
            path=str(RAW / "mitdb_excerpt"), records=["999"], lazy=True
        ).load()


def test_a_detected_beat_task_survives_the_trip_to_a_worker(excerpt, base_params):
    """Workers receive tasks pickled (cloudpickle): the detector's closure, the
    record's loader and the parameters must arrive able to run."""
    cfg = base_params["ecg_autoencoder"]
    p = SegmentationParams.from_dict({**cfg["ingestion"], "lead": ["MLII"]})
    segment = detected_segmenter({**cfg["detection"], "beats": "detected"})
    task = _record_task(excerpt[0], "100", p, segment, prefix="x")
    here = _run_record(task)
    there = _run_record(cloudpickle.loads(cloudpickle.dumps(task)))
    pd.testing.assert_frame_equal(here[0], there[0])
    np.testing.assert_array_equal(here[1], there[1])
    assert set(here[0]["record"]) == {"x100"} and len(here[0]) > 50


def test_parallel_parameters_are_checked_and_named():
    block = {"backend": "sequential", "n_workers": None, "scheduler_address": None}
    with pytest.raises(ValueError, match=r"'ingest\.parallel\.backend' is 'spark'"):
        ParallelParams.from_dict({**block, "backend": "spark"}, "ingest.parallel")
    with pytest.raises(ValueError, match=r"'p\.n_workers' must be null or an integer"):
        ParallelParams.from_dict({**block, "backend": "dask", "n_workers": 0}, "p")
    with pytest.raises(ValueError, match=r"'p' lacks \['scheduler_address'\]"):
        ParallelParams.from_dict({"backend": "dask", "n_workers": 2}, "p")
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) p\.workers; known: backend, n_workers, sch",
    ):
        ParallelParams.from_dict({"workers": 2}, "p")
    with pytest.raises(ValueError, match=r"'p' must be a mapping.*list"):
        ParallelParams.from_dict(["dask"], "p")
    with pytest.raises(ValueError, match="spill_windows' must be true or false"):
        segment_databases(
            {},
            {},
            {"parallel": block, "spill_windows": "yes"},
            {"mitdb": {}, "svdb": {}},
        )


def test_the_scheduler_comes_from_the_parameter_then_the_environment(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert (
        ParallelParams(backend="dask", n_workers=None, scheduler_address=None).address()
        is None
    )
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    assert (
        ParallelParams(backend="dask", n_workers=None, scheduler_address=None).address()
        == "tcp://10.0.0.5:8786"
    )
    assert (
        ParallelParams(
            backend="dask", n_workers=None, scheduler_address="tcp://h:1"
        ).address()
        == "tcp://h:1"
    )


def test_tasks_go_to_the_cluster_the_environment_names(monkeypatch):
    from dask.distributed import LocalCluster, get_worker

    def where(x: int) -> tuple[int, str]:
        return x * x, get_worker().address

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        out = map_tasks(
            where,
            [3, 1, 2],
            ParallelParams(backend="dask", n_workers=None, scheduler_address=None),
        )
        workers = set(cluster.scheduler_info["workers"])
    assert [square for square, _ in out] == [9, 1, 4]
    assert {address for _, address in out} <= workers


def test_sequential_tasks_keep_their_order_and_raise_unchanged():
    assert map_tasks(str, [3, 1, 2], IN_PROCESS) == ["3", "1", "2"]
    with pytest.raises(ZeroDivisionError):
        map_tasks(lambda x: 1 / x, [1, 0], IN_PROCESS)
