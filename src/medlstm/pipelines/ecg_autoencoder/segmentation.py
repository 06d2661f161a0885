"""One record cut into beat windows: the segmentation settings, the labelled beats of
its annotations, and one cleaned window per beat with its RR features."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from medlstm.core.params import check_complete_block, check_known_keys
from medlstm.datasets.wfdb_records import WfdbRecord
from medlstm.pipelines.ecg_autoencoder.preprocessing import (
    check_heart_rate,
    choose_lead,
    clean_signal,
    resample,
    rr_intervals,
)
from medlstm.pipelines.ecg_autoencoder.sampling_rate import qrs_width_ms

logger = logging.getLogger(__name__)

# Keys of the ingestion block about running the records (workers, window spill).
RUN_KEYS = ("parallel", "spill_windows")


@dataclass(frozen=True)
class SegmentationParams:
    """The ``ingestion`` block of parameters_ecg_autoencoder.yml, validated. Every
    field comes from that block (its comments say what each does): no default here
    can drift from it."""

    label_mapping: dict[str, list[str]]
    lead: str | tuple[str, ...]
    missing_lead: str
    target_fs: float
    samples_before: int
    samples_after: int
    baseline_windows_s: tuple[float, ...]
    bandpass: dict[str, Any] | None
    local_rr_beats: int
    window_scaling: str
    subtract_template: bool
    non_beat_symbols: tuple[str, ...]
    unknown_symbol: str
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
        known = [f.name for f in cls.__dataclass_fields__.values() if f.init]
        check_known_keys(values, [*known, *RUN_KEYS], "ecg_autoencoder.ingestion")
        check_complete_block(values, known, "ecg_autoencoder.ingestion")
        # How the records are run, not how one is cut: read by segment_databases.
        values = {k: v for k, v in values.items() if k not in RUN_KEYS}
        for key in ("baseline_windows_s", "non_beat_symbols"):
            if key in values:
                values[key] = tuple(values[key])
        if isinstance(values.get("lead"), list | tuple):
            values["lead"] = tuple(str(name) for name in values["lead"])
        values["label_mapping"] = {
            str(k): [str(s) for s in v] for k, v in values["label_mapping"].items()
        }
        return cls(**values)

    @classmethod
    def for_database(
        cls, ingestion: dict[str, Any], database: dict[str, Any]
    ) -> SegmentationParams:
        """The ``ingestion`` block with one database's lead names
        (``ecg_autoencoder.databases.<name>.leads``, in order of preference)."""
        return cls.from_dict(
            {**ingestion, "lead": [str(lead) for lead in database["leads"]]}
        )

    @property
    def leads(self) -> tuple[str, ...]:
        """Lead names in order of preference (``lead`` is one name or a list)."""
        return (self.lead,) if isinstance(self.lead, str) else tuple(self.lead)

    @property
    def window(self) -> int:
        """Window length in samples."""
        return self.samples_before + self.samples_after


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
        return empty_beats(), np.empty((0, p.window), np.float32), report
    counts: Counter = Counter()
    idx, labels = _labelled_beats(record, p, counts)
    counts["labelled_beats"] = len(idx)
    columns = {"symbol": record.ann_symbols[idx], "label": labels}
    return segment_beats(record, lead, record.ann_samples[idx], columns, p, counts)


def pick_lead(
    record: WfdbRecord, p: SegmentationParams, which: str = "training"
) -> str | None:
    """The lead of ``record`` to cut, by name.

    Args:
        record: The record (its leads in header order).
        p: The segmentation parameters: ``p.leads`` are the training lead names.
        which: ``training``: the first of ``p.leads`` the record has (`choose_lead`,
            with ``p.missing_lead``); ``second``: the record's first lead, in header
            order, other than that one (MIT-BIH's V1, V2, V4 or V5; SVDB's ECG2);
            any other value: the lead of that name.

    Returns:
        The lead's name, or None when the record has no such lead (no second lead,
        or no training lead to tell the second one from).
    """
    training = choose_lead(record, p.leads, p.missing_lead)
    if which == "training":
        return training
    if which == "second":
        if training is None:
            return None
        return next((name for name in record.signals if name != training), None)
    return which if which in record.signals else None


def segment_record_on(
    record: WfdbRecord, p: SegmentationParams, which: str = "training"
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """`segment_record` on the lead `pick_lead` chooses (``training``, ``second`` or
    a lead name): the same windows and RR features, cut from another lead. A record
    without that lead keeps no beats; its report says why (``skipped``)."""
    lead = pick_lead(record, p, which)
    if lead is None:
        report = {"source": record.source, "fs": record.fs, "lead": None}
        report["skipped"] = f"no {which} lead (leads {list(record.signals)})"
        return empty_beats(), np.empty((0, p.window), np.float32), report
    return segment_record(record, replace(p, lead=lead))


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


def empty_beats() -> pd.DataFrame:
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
