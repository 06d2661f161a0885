"""Ingestion: one cleaned, labelled window per annotated heartbeat.

Per record: choose the lead by name, resample to the target rate, remove baseline
wander, cut a window around every labelled beat's R peak, optionally subtract the
record's median beat, and compute the beat's RR features. Every dropped beat and
skipped record is counted in the ingestion report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from medlstm.core.parallel import ParallelParams, map_tasks
from medlstm.datasets.wfdb_records import WfdbRecord
from medlstm.datasets.window_shards import ShardedWindows, SpillFolder, write_shard
from medlstm.pipelines.ecg_autoencoder.sampling_rate import (
    check_sampling_rates,
    qrs_width_ms,
)

logger = logging.getLogger(__name__)

# WFDB annotation codes that mark no beat (rhythm, noise, waves, comments).
DEFAULT_NON_BEAT_SYMBOLS = (
    "+", "~", "|", "x", "!", "[", "]", '"', "p", "t", "u", "`", "'", "^", "=", "@", "s", "T", "*", "D",
)  # fmt: skip


# Keys of the ingestion block about running the records (workers, window spill).
RUN_KEYS = ("parallel", "spill_windows")


@dataclass(frozen=True)
class SegmentationParams:
    """The ``ingestion`` block of parameters_ecg_autoencoder.yml, validated."""

    label_mapping: dict[str, list[str]]
    lead: str | tuple[str, ...] = "MLII"
    missing_lead: str = "skip"
    target_fs: float = 360.0
    samples_before: int = 108
    samples_after: int = 180
    baseline_windows_s: tuple[float, ...] = (0.2, 0.6)
    bandpass: dict[str, Any] | None = None
    local_rr_beats: int = 10
    window_scaling: str = "none"
    subtract_template: bool = True
    non_beat_symbols: tuple[str, ...] = DEFAULT_NON_BEAT_SYMBOLS
    unknown_symbol: str = "error"
    lookup: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = "ecg_autoencoder.ingestion"
        choices = {
            "missing_lead": ("skip", "other", "error"),
            "window_scaling": ("none", "record", "beat"),
            "unknown_symbol": ("error", "skip"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"Parameter '{where}.{key}' is {getattr(self, key)!r}; "
                    f"expected one of {allowed}."
                )
        if not isinstance(self.subtract_template, bool):
            raise ValueError(
                f"Parameter '{where}.subtract_template' must be true or false."
            )
        if self.local_rr_beats < 1:
            raise ValueError(
                f"Parameter '{where}.local_rr_beats' must be >= 1, got "
                f"{self.local_rr_beats}."
            )
        if self.samples_before < 0 or self.samples_after < 1:
            raise ValueError(
                f"Parameters '{where}.samples_before/after' must be >= 0 and >= 1."
            )
        lookup: dict[str, str] = {}
        for label, symbols in self.label_mapping.items():
            for symbol in symbols:
                if symbol in lookup:
                    raise ValueError(
                        f"Parameter '{where}.label_mapping': symbol {symbol!r} is mapped "
                        f"to both {lookup[symbol]!r} and {label!r}."
                    )
                lookup[symbol] = label
        clash = sorted(set(lookup) & set(self.non_beat_symbols))
        if clash:
            raise ValueError(
                f"Parameter '{where}': symbols {clash} are both labelled and non-beat."
            )
        object.__setattr__(self, "lookup", lookup)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SegmentationParams:
        """Build from the YAML block; unknown keys are an error, not a silent no-op."""
        known = {f.name for f in cls.__dataclass_fields__.values() if f.init}
        # How the records are run, not how one is cut: read by segment_databases.
        values = {k: v for k, v in values.items() if k not in RUN_KEYS}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {unknown} in 'ecg_autoencoder.ingestion'; "
                f"known: {sorted(known)}."
            )
        values = dict(values)
        for key in ("baseline_windows_s", "non_beat_symbols"):
            if key in values:
                values[key] = tuple(values[key])
        if isinstance(values.get("lead"), list | tuple):
            values["lead"] = tuple(str(name) for name in values["lead"])
        values["label_mapping"] = {
            str(k): [str(s) for s in v] for k, v in values["label_mapping"].items()
        }
        return cls(**values)

    @property
    def leads(self) -> tuple[str, ...]:
        """Lead names in order of preference (``lead`` is one name or a list)."""
        return (self.lead,) if isinstance(self.lead, str) else tuple(self.lead)

    @property
    def window(self) -> int:
        """Window length in samples."""
        return self.samples_before + self.samples_after


def choose_lead(
    record: WfdbRecord, leads: tuple[str, ...], missing_lead: str
) -> str | None:
    """The first of ``leads`` (names, in order of preference) the record has; else
    its first other lead (``missing_lead: other``), None to skip it (``skip``), or an
    error naming the record and its leads (``error``)."""
    found = next((name for name in leads if name in record.signals), None)
    if found is not None:
        return found
    wanted = " or ".join(leads)
    if missing_lead == "error":
        raise ValueError(
            f"{record.source}: record {record.record_id} has no lead {wanted} (its "
            f"leads: {list(record.signals)}). Add one of them to the database's leads "
            "or set 'ecg_autoencoder.ingestion.missing_lead' to skip or other."
        )
    if missing_lead == "other":
        other = next(iter(record.signals))
        logger.warning(
            "Record %s has no lead %s (leads %s); using %s instead.",
            record.record_id, wanted, list(record.signals), other,
        )  # fmt: skip
        return other
    logger.warning(
        "Record %s has no lead %s (leads %s); skipped.",
        record.record_id, wanted, list(record.signals),
    )  # fmt: skip
    return None


def resample(
    x: np.ndarray,
    samples: np.ndarray,
    fs: float,
    target_fs: float,
    record: WfdbRecord | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polyphase-resample ``x`` to ``target_fs`` and move annotation samples with it
    (e.g. SVDB's 128 Hz to 360 Hz: up 45, down 16).

    Raises:
        ValueError: naming the record, for a rate that is not a positive number or
            whose ratio to ``target_fs`` has no exact fraction with terms <= 1000.
    """
    name = f"{record.source}: record {record.record_id}" if record else "signal"
    if not (np.isfinite(fs) and fs > 0):
        raise ValueError(f"{name}: sampling rate {fs!r} Hz cannot be resampled.")
    if fs == target_fs:
        return x, samples
    ratio = Fraction(target_fs / fs).limit_denominator(1000)
    if abs(float(ratio) - target_fs / fs) > 1e-9 * target_fs / fs:
        raise ValueError(
            f"{name}: cannot resample {fs:g} Hz to {target_fs:g} Hz exactly (the ratio "
            "has no fraction with terms <= 1000); set "
            "'ecg_autoencoder.ingestion.target_fs' to a rate it divides."
        )
    nan = np.isnan(x)
    y = signal.resample_poly(fill_nan(x), ratio.numerator, ratio.denominator)
    if nan.any():  # a resampled sample is invalid if its source neighbourhood was
        src = np.minimum(
            (np.arange(len(y)) * fs / target_fs).round().astype(np.int64), len(x) - 1
        )
        y[nan[src]] = np.nan
    moved = np.round(samples * (target_fs / fs)).astype(np.int64)
    return y, moved


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN stretches, so filters see no NaN."""
    nan = np.isnan(x)
    if not nan.any() or nan.all():
        return np.nan_to_num(x) if nan.all() else x
    idx = np.arange(len(x))
    filled = x.copy()
    filled[nan] = np.interp(idx[nan], idx[~nan], x[~nan])
    return filled


def clean_signal(
    x: np.ndarray,
    fs: float,
    baseline_windows_s: tuple[float, ...],
    bandpass: dict[str, Any] | None = None,
) -> np.ndarray:
    """Remove baseline wander (cascaded median filters) and optionally band-pass.

    NaN samples stay NaN, so windows that overlap them can be dropped downstream.
    """
    nan = np.isnan(x)
    filled = fill_nan(x)
    baseline = filled
    for width_s in baseline_windows_s:
        width = int(round(width_s * fs)) | 1  # odd, centred
        baseline = ndimage.median_filter(baseline, size=width, mode="nearest")
    y = filled - baseline
    if bandpass and bandpass.get("enabled", False):
        sos = signal.butter(
            int(bandpass.get("order", 3)),
            [float(bandpass["low_hz"]), float(bandpass["high_hz"])],
            btype="bandpass",
            fs=fs,
            output="sos",
        )
        y = signal.sosfiltfilt(sos, y)
    y[nan] = np.nan
    return y


def rr_intervals(
    beat_samples: np.ndarray, fs: float, local_beats: int
) -> dict[str, np.ndarray]:
    """RR features of every beat, in seconds and as unit-free ratios.

    ``pre_rr``/``post_rr`` are NaN for the first/last beat. ``local_rr`` is the mean
    of the ``local_beats`` RR intervals centred on the beat; ``record_rr`` the mean
    over the whole record, which normalises away the patient's heart rate.
    """
    rr = np.diff(beat_samples) / fs  # (n - 1,)
    pre = np.concatenate([[np.nan], rr])
    post = np.concatenate([rr, [np.nan]])
    local = (
        pd.Series(pre)
        .rolling(max(local_beats, 1), center=True, min_periods=1)
        .mean()
        .to_numpy(copy=True)
    )
    record = np.full(len(beat_samples), rr.mean() if len(rr) else np.nan)
    return {
        "pre_rr": pre,
        "post_rr": post,
        "local_rr": local,
        "record_rr": record,
        "rr_pre_norm": pre / record,
        "rr_post_norm": post / record,
        "rr_local_norm": local / record,
        "rr_pre_local": pre / local,
    }


HEART_RATE_BPM = (25.0, 250.0)


def check_heart_rate(record_rr: np.ndarray, record: WfdbRecord) -> float | None:
    """The record's mean heart rate (bpm) from its mean RR interval (``record_rr`` of
    `rr_intervals`); a warning naming the record when it is outside
    `HEART_RATE_BPM`, which usually means the header's sampling rate is wrong (the
    beats then sit at the wrong times)."""
    if not len(record_rr) or not np.isfinite(record_rr[0]) or record_rr[0] <= 0:
        return None
    bpm = float(60.0 / record_rr[0])
    low, high = HEART_RATE_BPM
    if not low <= bpm <= high:
        logger.warning(
            "Record %s: mean heart rate %.0f bpm is outside %g-%g bpm; check the "
            "sampling rate its header declares (%g Hz).",
            record.record_id, bpm, low, high, record.fs,
        )  # fmt: skip
    return bpm


def _labelled_beats(
    record: WfdbRecord, p: SegmentationParams, counts: Counter
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of labelled beat annotations and their labels; counts the rest."""
    symbols = record.ann_symbols
    is_beat = np.isin(symbols, list(p.lookup))
    is_non_beat = np.isin(symbols, list(p.non_beat_symbols))
    unknown = ~is_beat & ~is_non_beat
    counts["non_beat_annotations"] += int(is_non_beat.sum())
    if unknown.any():
        found = Counter(symbols[unknown].tolist())
        if p.unknown_symbol == "error":
            raise ValueError(
                f"{record.source}: unknown annotation symbol(s) {dict(found)}. Map them in "
                "'ecg_autoencoder.ingestion.label_mapping', list them in 'non_beat_symbols', "
                "or set 'unknown_symbol: skip'."
            )
        logger.warning(
            "Record %s: skipped %d annotations with unknown symbols %s.",
            record.record_id, int(unknown.sum()), dict(found),
        )  # fmt: skip
        counts["skipped_unknown_symbol"] += int(unknown.sum())
    idx = np.flatnonzero(is_beat)
    return idx, np.array([p.lookup[s] for s in symbols[idx]], dtype=str)


def segment_record(
    record: WfdbRecord, p: SegmentationParams
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Windows, beat table and counts of one record's labelled beats (see
    `segment_records`)."""
    lead = choose_lead(record, p.leads, p.missing_lead)
    if lead is None:
        report = {"source": record.source, "fs": record.fs, "lead": None}
        report["skipped"] = f"no lead {' or '.join(p.leads)}"
        return _empty_beats(), np.empty((0, p.window), np.float32), report
    counts: Counter = Counter()
    idx, labels = _labelled_beats(record, p, counts)
    counts["labelled_beats"] = len(idx)
    columns = {"symbol": record.ann_symbols[idx], "label": labels}
    return segment_beats(record, lead, record.ann_samples[idx], columns, p, counts)


def segment_beats(
    record: WfdbRecord,
    lead: str,
    beat_samples: np.ndarray,
    columns: dict[str, np.ndarray],
    p: SegmentationParams,
    counts: Counter | None = None,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """One cleaned window and the RR features of every beat of ``lead``.

    The one path from beat positions to windows, for annotated beats (training) and
    detected ones (inference): resample to ``p.target_fs``, remove baseline wander,
    compute RR features over all the given beats, drop beats at the edges, without
    both neighbours or whose window holds NaN, scale, subtract the record template.

    Args:
        record: The record; its ``fs`` is the rate of ``beat_samples``.
        lead: Name of the lead to cut.
        beat_samples: R-peak sample of every beat at the record's rate, ascending.
        columns: Per-beat values (same length as ``beat_samples``) kept in the beat
            table after ``lead``, e.g. symbol and label.
        p: The segmentation parameters.
        counts: Counts so far (labelled beats, skipped annotations), extended here.

    Returns:
        As `segment_record`: beat table, windows (n, T) and the record's report.
    """
    counts = Counter() if counts is None else counts
    report: dict[str, Any] = {"source": record.source, "fs": record.fs, "lead": lead}
    # At the declared rate: the evidence of a wrong one (`check_sampling_rates`).
    report["qrs_width_ms"] = qrs_width_ms(record.signals[lead], beat_samples, record.fs)
    x, beat_samples = resample(
        record.signals[lead],
        np.asarray(beat_samples, np.int64),
        record.fs,
        p.target_fs,
        record,
    )
    report["resampled_from"] = None if record.fs == p.target_fs else record.fs
    x = clean_signal(x, p.target_fs, p.baseline_windows_s, p.bandpass)

    rr = rr_intervals(beat_samples, p.target_fs, p.local_rr_beats)
    report["mean_heart_rate_bpm"] = check_heart_rate(rr["record_rr"], record)

    starts = beat_samples - p.samples_before
    inside = (starts >= 0) & (beat_samples + p.samples_after <= len(x))
    has_rr = np.isfinite(rr["pre_rr"]) & np.isfinite(rr["post_rr"]) & (rr["pre_rr"] > 0)
    counts["dropped_edge"] = int((~inside).sum())
    counts["dropped_no_rr"] = int((inside & ~has_rr).sum())
    keep = np.flatnonzero(inside & has_rr)
    windows = x[starts[keep, None] + np.arange(p.window)]  # (n_keep, window)
    finite = np.isfinite(windows).all(axis=1)
    counts["dropped_nan"] = int((~finite).sum())
    keep, windows = keep[finite], windows[finite]
    if counts["dropped_nan"]:
        logger.warning(
            "Record %s: dropped %d beats whose window holds invalid (NaN) samples.",
            record.record_id, counts["dropped_nan"],
        )  # fmt: skip
    windows = _scale(windows, p.window_scaling)
    if p.subtract_template and len(windows):
        windows = windows - record_template(windows)
    counts["kept"] = len(keep)
    if len(keep) == 0:
        logger.warning("Record %s: no beat could be windowed.", record.record_id)

    beats = pd.DataFrame(
        {
            "record": record.record_id,
            "sample": beat_samples[keep],
            **{name: np.asarray(values)[keep] for name, values in columns.items()},
            "lead": lead,
            **{name: values[keep] for name, values in rr.items()},
        }
    )
    report.update(counts)
    return beats, windows.astype(np.float32), report


def record_template(windows: np.ndarray) -> np.ndarray:
    """The patient's typical beat (T,): the median of the record's windows (n, T).

    Subtracting it leaves how each beat departs from the patient's normal, which
    transfers across patients far better than raw morphology. No labels are used,
    so no leakage.
    """
    return np.median(windows, axis=0)


def _scale(windows: np.ndarray, how: str) -> np.ndarray:
    """'record': divide by the record's median beat amplitude; 'beat': z-score each."""
    if how == "none" or len(windows) == 0:
        return windows
    if how == "beat":
        std = windows.std(axis=1, keepdims=True)
        return (windows - windows.mean(axis=1, keepdims=True)) / np.maximum(std, 1e-6)
    amplitude = np.median(np.abs(windows).max(axis=1))
    return windows / max(amplitude, 1e-6)


def _empty_beats() -> pd.DataFrame:
    columns = {
        "record": str,
        "sample": np.int64,
        "symbol": str,
        "label": str,
        "lead": str,
    }
    frame = pd.DataFrame({k: pd.Series(dtype=v) for k, v in columns.items()})
    # The RR column names from the function that fills them, so the two cannot drift.
    for name in rr_intervals(np.empty(0, np.int64), 1.0, 1):
        frame[name] = pd.Series(dtype=np.float64)
    return frame


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
    results = map_tasks(_run_record, tasks, parallel or ParallelParams())
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
    beats = pd.concat(frames, ignore_index=True) if frames else _empty_beats()
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
    arrays_out = {
        "windows": windows,
        "record": beats["record"].to_numpy(dtype=str),
        "sample": beats["sample"].to_numpy(dtype=np.int64),
    }
    return beats, arrays_out, report


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
    segment = segment_record
    if detection is not None:
        # Imported here: detection builds on this module.
        from medlstm.pipelines.ecg_autoencoder.detection import (
            beat_source,
            detected_segmenter,
        )

        if beat_source(detection) == "detected":
            segment = detected_segmenter(detection)
    parallel = ParallelParams.from_dict(
        ingestion.get("parallel"), "ecg_autoencoder.ingestion.parallel"
    )
    spill = _spill_folder(ingestion)
    # One task list over every database: one cluster start, all workers busy.
    tasks, groups = [], []
    for name, records in sources.items():
        cfg = databases[name]
        if not cfg.get("leads"):
            raise ValueError(
                f"Parameter 'ecg_autoencoder.databases.{name}.leads' is empty."
            )
        prefix = str(cfg.get("record_prefix") or "")
        p = SegmentationParams.from_dict(
            {**ingestion, "lead": [str(lead) for lead in cfg["leads"]]}
        )
        start = len(tasks)
        tasks += [
            _record_task(records, rid, p, segment, prefix, _shard(spill, start + i))
            for i, rid in enumerate(sorted(records))
        ]
        groups.append((name, start, len(tasks)))
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
