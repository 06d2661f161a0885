"""Ingestion: one cleaned, labelled window per annotated heartbeat.

Per record: choose the lead by name, resample to the target rate, remove baseline
wander (`preprocessing`), cut a window around every labelled beat's R peak,
optionally subtract the record's median beat, and compute the beat's RR features.
Records run as tasks, in this process or on Dask workers (`medlstm.core.parallel`).
Every dropped beat and skipped record is counted in the ingestion report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlstm.core.parallel import IN_PROCESS, ParallelParams, map_tasks
from medlstm.datasets.wfdb_records import WfdbRecord
from medlstm.datasets.window_shards import ShardedWindows, SpillFolder, write_shard
from medlstm.pipelines.ecg_autoencoder.sampling_rate import (
    check_sampling_rates,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    empty_beats,
    segment_record,
)

logger = logging.getLogger(__name__)


def segment_records(
    records: dict[str, WfdbRecord],
    params: dict[str, Any],
    segment: Callable[
        [WfdbRecord, SegmentationParams], tuple[pd.DataFrame, np.ndarray, dict]
    ] = segment_record,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """Cut one cleaned window per labelled beat of every record.

    Args:
        records: ``{record_id: WfdbRecord}`` from the WFDB dataset.
        params: The ``ecg_autoencoder.ingestion`` parameters.
        segment: How one record is cut: `segment_record` (its labelled beats) or
            another function that ends in `segment_beats` (detected beats).

    Returns:
        - beats: one row per kept beat, ordered by record then sample: ``record``,
          ``sample`` (at the target rate), ``symbol``, ``label``, ``lead``, RR
          intervals in seconds and the normalised RR features.
        - windows: ``{"windows": (n_beats, window) float32, "record", "sample"}``,
          row ``i`` belonging to beat ``i``.
        - report: per-record and total counts of kept, dropped and skipped beats.
    """
    p = SegmentationParams.from_dict(params)
    return _outputs(*_segment_each(records, p, segment), p)


SegmentFn = Callable[
    [WfdbRecord, SegmentationParams], tuple[pd.DataFrame, np.ndarray, dict]
]


@dataclass(frozen=True)
class _RecordTask:
    """One record's share of the ingestion, small enough to send to a worker."""

    record_id: str
    load: Callable[[], WfdbRecord]
    p: SegmentationParams
    segment: SegmentFn
    shard: Path | None = None


def _given(record: WfdbRecord) -> WfdbRecord:
    return record


def _record_task(
    records: Mapping[str, WfdbRecord],
    rid: str,
    p: SegmentationParams,
    segment: SegmentFn,
    prefix: str = "",
    shard: Path | None = None,
) -> _RecordTask:
    """The task of record ``rid``; a lazily read record is read where it runs."""
    loader = getattr(records, "loader", None)
    load = loader(rid) if loader is not None else partial(_given, records[rid])
    return _RecordTask(f"{prefix}{rid}", load, p, segment, shard)


def _run_record(task: _RecordTask) -> tuple[pd.DataFrame, np.ndarray | Path, dict]:
    """Read, rename and cut one record; its windows go to ``task.shard`` if set
    (the path is returned instead of the array)."""
    record = task.load()
    if record.record_id != task.record_id:
        record = dataclasses.replace(record, record_id=task.record_id)
    beats, windows, report = task.segment(record, task.p)
    if task.shard is not None:
        return beats, write_shard(task.shard, windows), report
    return beats, windows, report


def _segment_each(
    records: Mapping[str, WfdbRecord],
    p: SegmentationParams,
    segment: SegmentFn = segment_record,
    parallel: ParallelParams | None = None,
    spill: SpillFolder | None = None,
) -> tuple[pd.DataFrame, np.ndarray | ShardedWindows, dict[str, dict[str, Any]]]:
    """``segment`` (`segment_record` by default) of every record: beats, windows
    (n, T), per-record reports. ``parallel`` runs the records on Dask workers;
    ``spill`` writes each record's windows to a shard (windows: `ShardedWindows`)."""
    ids = sorted(records)
    tasks = [
        _record_task(records, rid, p, segment, shard=_shard(spill, i))
        for i, rid in enumerate(ids)
    ]
    results = map_tasks(_run_record, tasks, parallel or IN_PROCESS)
    return _assemble([t.record_id for t in tasks], results, spill)


def _shard(spill: SpillFolder | None, i: int) -> Path | None:
    return None if spill is None else spill.shard(f"{i:06d}")


def _assemble(
    ids: list[str],
    results: list[tuple[pd.DataFrame, np.ndarray | Path, dict]],
    spill: SpillFolder | None = None,
) -> tuple[pd.DataFrame, np.ndarray | ShardedWindows, dict[str, dict[str, Any]]]:
    """One database's beat table, windows and per-record reports from its records'
    results (in record order)."""
    frames = [beats for beats, _, _ in results]
    per_record = {rid: report for rid, (_, _, report) in zip(ids, results, strict=True)}
    suspects = check_sampling_rates(
        {rid: report["fs"] for rid, report in per_record.items()},
        {rid: report.get("qrs_width_ms") for rid, report in per_record.items()},
        str(Path(per_record[ids[0]]["source"]).parent) if ids else "",
    )
    for rid, why in suspects.items():
        per_record[rid]["suspect_sampling_rate"] = why
    beats = pd.concat(frames, ignore_index=True) if frames else empty_beats()
    if beats.empty:
        raise ValueError(
            f"No beat was kept from {len(ids)} record(s); see the warnings above."
        )
    if spill is not None:
        windows = ShardedWindows([path for _, path, _ in results], _owner=spill)
    else:
        windows = np.concatenate([w for _, w, _ in results])
    return beats, windows, per_record


def _outputs(
    beats: pd.DataFrame,
    windows: np.ndarray,
    per_record: dict[str, dict[str, Any]],
    p: SegmentationParams,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """The node outputs: beat table, window arrays aligned with it, and the report
    of kept, dropped and skipped beats per record and in total."""
    totals: Counter = Counter()
    for report in per_record.values():
        totals.update({k: v for k, v in report.items() if isinstance(v, int)})
    skipped = {rid: r["skipped"] for rid, r in per_record.items() if "skipped" in r}
    logger.info(
        "Segmented %d beats from %d records (%d skipped); dropped %d at edges, %d "
        "without RR, %d with NaN.",
        len(beats), len(per_record), len(skipped), totals["dropped_edge"],
        totals["dropped_no_rr"], totals["dropped_nan"],
    )  # fmt: skip
    report = {
        "n_beats": len(beats),
        "window_samples": p.window,
        "target_fs": p.target_fs,
        "label_counts": (
            beats["label"].value_counts().sort_index().to_dict()
            if "label" in beats
            else {}
        ),
        "totals": dict(sorted(totals.items())),
        "skipped_records": skipped,
        "records": per_record,
    }
    return beats, window_arrays(beats, windows), report


def window_arrays(beats: pd.DataFrame, windows: Any) -> dict[str, Any]:
    """The windows as the catalog stores them: ``windows`` (row ``i`` belonging to beat
    ``i`` of ``beats``) with each beat's ``record`` and ``sample``, which training
    checks against the beat table (`training.check_aligned`)."""
    return {
        "windows": windows,
        "record": beats["record"].to_numpy(dtype=str),
        "sample": beats["sample"].to_numpy(dtype=np.int64),
    }


def _spill_folder(ingestion: dict[str, Any]) -> SpillFolder | None:
    """A temporary shard folder when ``ingestion.spill_windows`` is on."""
    spill = ingestion.get("spill_windows", False)
    if not isinstance(spill, bool):
        raise ValueError(
            "Parameter 'ecg_autoencoder.ingestion.spill_windows' must be true or "
            f"false, got {spill!r}."
        )
    return SpillFolder() if spill else None


def segment_databases(
    mitdb: dict[str, WfdbRecord],
    svdb: dict[str, WfdbRecord],
    ingestion: dict[str, Any],
    databases: dict[str, dict[str, Any]],
    detection: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """`segment_records` over several databases into one beat table.

    Each database has its own lead names (MLII in MIT-BIH, ECG1 in SVDB) and a record
    prefix that keeps ids unique across databases (``svdb_800``); records at another
    rate are resampled to ``ingestion.target_fs`` with their annotations.

    Every record is one task: read (where it runs, for lazily loaded records), cut,
    its features computed. ``ingestion.parallel`` runs the tasks in this process or
    on Dask workers (`medlstm.core.parallel`), with the same result either way.

    Args:
        mitdb, svdb: ``{record_id: WfdbRecord}`` of each database (a dict, or a
            `LazyWfdbRecords` whose records are read one at a time).
        ingestion: The ``ecg_autoencoder.ingestion`` parameters; ``parallel`` and
            ``spill_windows`` (each record's windows written to a temporary shard
            as soon as it is cut; the windows are then a `ShardedWindows`).
        databases: ``ecg_autoencoder.databases``: per database ``leads`` (names in
            order of preference) and ``record_prefix``.
        detection: ``ecg_autoencoder.detection``; with ``beats: detected`` the beats
            sit where the QRS detector finds them, labelled by the reference beat
            each matches (`detection.segment_detected_record`). None or ``beats:
            reference``: the annotated positions.

    Returns:
        As `segment_records`, the beat table with a ``database`` column after
        ``record``, and the report with a ``databases`` entry per database.
    """
    sources = {"mitdb": mitdb, "svdb": svdb}
    missing = sorted(set(sources) - set(databases))
    if missing:
        raise ValueError(
            f"Parameter 'ecg_autoencoder.databases' has no entry for {missing}; "
            "each needs 'leads' and 'record_prefix'."
        )
    parallel = ParallelParams.from_dict(
        ingestion.get("parallel"), "ecg_autoencoder.ingestion.parallel"
    )
    spill = _spill_folder(ingestion)
    # One task list over every database: one cluster start, all workers busy.
    tasks, groups, p = _database_tasks(
        sources, databases, ingestion, _segmenter(detection), spill
    )
    results = map_tasks(_run_record, tasks, parallel)
    frames, arrays, per_record, counts = [], [], {}, {}
    for name, start, stop in groups:
        ids = [t.record_id for t in tasks[start:stop]]
        beats, windows, reports = _assemble(ids, results[start:stop], spill)
        clash = sorted(set(reports) & set(per_record))
        if clash:
            raise ValueError(
                f"Record ids {clash[:5]} occur in more than one database; give the "
                "databases distinct 'record_prefix' values in 'ecg_autoencoder.databases'."
            )
        beats.insert(1, "database", name)
        frames.append(beats)
        arrays.append(windows)
        per_record.update(reports)
        counts[name] = {
            "n_beats": len(beats),
            "label_counts": beats["label"].value_counts().sort_index().to_dict(),
        }
    windows = (
        ShardedWindows.concat(arrays) if spill is not None else np.concatenate(arrays)
    )
    beats, windows, report = _outputs(
        pd.concat(frames, ignore_index=True), windows, per_record, p
    )
    return beats, windows, {**report, "databases": counts}


def _segmenter(detection: dict[str, Any] | None) -> Callable:
    """How one record is cut: at its annotated beats, or at the detected ones."""
    if detection is None:
        return segment_record
    # Imported here: detection builds on this module.
    from medlstm.pipelines.ecg_autoencoder.detection import (
        beat_source,
        detected_segmenter,
    )

    if beat_source(detection) == "detected":
        return detected_segmenter(detection)
    return segment_record


def _database_tasks(
    sources: dict[str, Mapping[str, WfdbRecord]],
    databases: dict[str, dict[str, Any]],
    ingestion: dict[str, Any],
    segment: Callable,
    spill: SpillFolder | None,
) -> tuple[list[_RecordTask], list[tuple[str, int, int]], SegmentationParams]:
    """One task per record of every database, each with its database's leads and
    record prefix; ``(tasks, (database, first, stop) per database, the last
    database's settings)``."""
    tasks, groups = [], []
    for name, records in sources.items():
        cfg = databases[name]
        if not cfg.get("leads"):
            raise ValueError(
                f"Parameter 'ecg_autoencoder.databases.{name}.leads' is empty."
            )
        prefix = str(cfg.get("record_prefix") or "")
        p = SegmentationParams.for_database(ingestion, cfg)
        start = len(tasks)
        tasks += [
            _record_task(records, rid, p, segment, prefix, _shard(spill, start + i))
            for i, rid in enumerate(sorted(records))
        ]
        groups.append((name, start, len(tasks)))
    return tasks, groups, p
