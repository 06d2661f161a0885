"""Is a record's declared sampling rate believable?

A header that declares 250 Hz for a 360 Hz recording puts every beat 1.44x too far
apart (74 bpm read as 51 bpm) and makes every QRS complex 1.44x too wide; both stay
in the range real patients cover. Measured on the 48 MIT-BIH and 78 SVDB records
(``benchmarks/qrs_width_by_record.py``), the QRS width at the true rate spans
19-227 ms: a threshold above the widest true record catches 4 of the 126 records
declared 360/250 times too slow, and their mean heart rates (48-142 bpm, falsified
33-99 bpm) all stay inside 25-250 bpm. No threshold on one record's QRS width or
heart rate separates a wrong rate from bundle-branch blocks, paced beats and
bradycardia. What does:
the records of one database share their acquisition, hence their rate. A record
whose declared rate differs from the one most of its database declares is named,
with its QRS width beside theirs as a hint (a rate ``k`` times too low shows QRS
complexes ``k`` times too wide, in milliseconds, than the same heart would; one
record's width alone proves nothing). A record read on its own
(``ecg_autoencoder_inference``) has no siblings: only the heart-rate range checks it.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

logger = logging.getLogger(__name__)

QRS_SEARCH_S = 0.15  # the QRS lies within this of its annotated R peak
MAX_BEATS = 2000  # the median beat of a record settles long before this


def qrs_width_ms(x: np.ndarray, beat_samples: np.ndarray, fs: float) -> float | None:
    """Width (ms, at the declared rate ``fs``) of the QRS complex of the record's
    median beat: the span where its slope exceeds a fifth of its steepest, within
    ``QRS_SEARCH_S`` of the R peak; None without enough clean beats."""
    half = int(round(QRS_SEARCH_S * fs))
    inside = beat_samples[(beat_samples > half) & (beat_samples < len(x) - half)]
    if len(inside) < 5 or half < 3:
        return None
    around = inside[:MAX_BEATS, None] + np.arange(-half, half + 1)
    beats = x[around]
    beats = beats[np.isfinite(beats).all(axis=1)]
    if len(beats) < 5:
        return None
    median_beat = np.median(beats - np.median(beats, axis=1, keepdims=True), axis=0)
    slope = np.abs(np.diff(median_beat))
    steep = np.flatnonzero(slope > 0.2 * slope.max())
    if slope.max() <= 0 or len(steep) == 0:
        return None
    return float((steep.max() - steep.min() + 1) / fs * 1000.0)


def check_sampling_rates(
    rates: dict[str, float], qrs_ms: dict[str, float | None], source: str
) -> dict[str, str]:
    """Warn about each record of one database whose declared rate (``rates``) is not
    the one most of its records declare; returns ``{record: why}`` for the report.

    ``qrs_ms`` (from `qrs_width_ms`) is quoted as evidence: with a rate too low by
    ``k`` the record's QRS width in ms is ``k`` times the width at its true rate.
    """
    if len(rates) < 3:
        return {}
    common, count = Counter(rates.values()).most_common(1)[0]
    if count <= len(rates) / 2:
        return {}
    others = [w for rid, w in qrs_ms.items() if rates[rid] == common and w]
    typical = float(np.median(others)) if others else None
    suspects = {}
    for rid, fs in sorted(rates.items()):
        if fs == common:
            continue
        why = (
            f"declares {fs:g} Hz while {count} of the {len(rates)} records of "
            f"{source} declare {common:g} Hz"
        )
        width = qrs_ms.get(rid)
        if width and typical:
            why += (
                f"; its QRS complexes measure {width:.0f} ms at {fs:g} Hz, the "
                f"others' {typical:.0f} ms (median)"
            )
        suspects[rid] = why
        logger.warning(
            "Record %s %s. Check the sampling rate in its header: a wrong one moves "
            "every beat and resamples the signal wrongly.",
            rid, why,
        )  # fmt: skip
    return suspects
