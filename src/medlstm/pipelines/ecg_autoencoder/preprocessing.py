"""One record's signal before segmentation: the lead chosen by name, resampled to the
target rate, NaN gaps filled, baseline wander removed (optionally band-passed), and
the RR intervals of its beats with their per-record normalisations."""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from medlstm.datasets.wfdb_records import WfdbRecord

logger = logging.getLogger(__name__)


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
