"""QRS detection: beat positions found in the signal instead of read from annotations.

`detect_beats` runs an established QRS detector from a maintained library (chosen by
``ecg_autoencoder.detection.method``), moves every detection onto the fiducial point
the models were trained on (the reference annotations' R peak: the largest deviation
of the band-passed signal near the detection) and flags detections that lie in
stretches a simple signal-quality check marks as noise, flat or invalid (NaN).

`match_beats` pairs detections with reference beats one to one within a tolerance
(ANSI/AAMI EC57: 150 ms), the basis of the sensitivity (Se) and positive
predictivity (+P) in ``benchmarks/bench_qrs_detection.py`` and of scoring a
classifier on detected beats (`score_detected_beats`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal

logger = logging.getLogger(__name__)

WHERE = "ecg_autoencoder.detection"
METHODS = ("gqrs", "xqrs", "sleepecg", "neurokit")
BEAT_SOURCES = ("reference", "detected")
EC57_TOLERANCE_S = 0.150


@dataclass(frozen=True)
class DetectionParams:
    """The ``ecg_autoencoder.detection`` block, validated (see its comments)."""

    beats: str = "reference"
    method: str = "gqrs"
    detector_fs: float | None = None
    min_fs: float = 100.0
    min_duration_s: float = 5.0
    refine_window_s: float = 0.05
    refine_band_hz: tuple[float, float] = (1.0, 40.0)
    min_rr_s: float = 0.2
    noise_window_s: float = 1.0
    flat_ptp_mv: float = 0.02
    artefact_ptp_ratio: float = 6.0
    match_tolerance_s: float = EC57_TOLERANCE_S

    def __post_init__(self) -> None:
        choices = {"beats": BEAT_SOURCES, "method": METHODS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"Parameter '{WHERE}.{key}' is {getattr(self, key)!r}; expected "
                    f"one of {allowed}."
                )
        positive = (
            "min_fs",
            "refine_window_s",
            "min_rr_s",
            "noise_window_s",
            "artefact_ptp_ratio",
            "match_tolerance_s",
        )
        for key in positive:
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"Parameter '{WHERE}.{key}' must be > 0, got {value}.")
        for key in ("min_duration_s", "flat_ptp_mv"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"Parameter '{WHERE}.{key}' must be >= 0.")
        if self.detector_fs is not None and not self.detector_fs >= self.min_fs:
            raise ValueError(
                f"Parameter '{WHERE}.detector_fs' is {self.detector_fs}; use null (the "
                f"input's rate) or a rate >= min_fs ({self.min_fs} Hz)."
            )
        low, high = self.refine_band_hz
        if not 0 <= low < high:
            raise ValueError(
                f"Parameter '{WHERE}.refine_band_hz' must be [low, high] with "
                f"0 <= low < high, got {list(self.refine_band_hz)}."
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> DetectionParams:
        """Build from the YAML block; unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {unknown} in '{WHERE}'; known: {sorted(known)}."
            )
        if "refine_band_hz" in values:
            band = values["refine_band_hz"]
            if not isinstance(band, list | tuple) or len(band) != 2:
                raise ValueError(
                    f"Parameter '{WHERE}.refine_band_hz' must be [low, high] in Hz."
                )
            values["refine_band_hz"] = (float(band[0]), float(band[1]))
        if values.get("detector_fs") is not None:
            values["detector_fs"] = float(values["detector_fs"])
        return cls(**values)


def _empty_detections() -> pd.DataFrame:
    return pd.DataFrame(
        {"sample": pd.Series(dtype=np.int64), "noise": pd.Series(dtype=bool)}
    )


def _fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN stretches, so filters and detectors see none."""
    nan = np.isnan(x)
    if not nan.any():
        return x
    idx = np.arange(len(x))
    filled = x.copy()
    filled[nan] = np.interp(idx[nan], idx[~nan], x[~nan])
    return filled


def _check_input(x: np.ndarray, fs: float, p: DetectionParams) -> np.ndarray:
    """The signal as float64 1-D; a ValueError naming the problem for bad input."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(
            f"detect_beats: the signal must be one lead (1-D), got shape {x.shape}."
        )
    if not (np.isfinite(fs) and fs >= p.min_fs):
        raise ValueError(
            f"detect_beats: sampling rate {fs!r} Hz is below {WHERE}.min_fs "
            f"({p.min_fs:g} Hz); the QRS complex (~80 ms) spans too few samples."
        )
    duration = len(x) / fs
    if duration < p.min_duration_s:
        raise ValueError(
            f"detect_beats: the signal lasts {duration:.2f} s, shorter than "
            f"{WHERE}.min_duration_s ({p.min_duration_s:g} s)."
        )
    if np.isinf(x).any():
        raise ValueError("detect_beats: the signal holds infinite values.")
    if np.isnan(x).all():
        raise ValueError("detect_beats: every sample of the signal is NaN.")
    return x


def _resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    ratio = Fraction(target / fs).limit_denominator(1000)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator)


def _run_detector(x: np.ndarray, fs: float, method: str) -> np.ndarray:
    """Sample indices of the QRS complexes the library's detector finds in ``x``."""
    if method == "gqrs":
        from wfdb.processing import gqrs_detect

        found = gqrs_detect(sig=x, fs=fs)
    elif method == "xqrs":
        from wfdb.processing import XQRS

        xqrs = XQRS(sig=x, fs=fs)
        xqrs.detect(verbose=False)
        found = xqrs.qrs_inds
    elif method == "sleepecg":
        import sleepecg

        found = sleepecg.detect_heartbeats(x, fs)
    else:
        import neurokit2 as nk

        cleaned = nk.ecg_clean(x, sampling_rate=fs, method="neurokit")
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method="neurokit")
        found = info["ECG_R_Peaks"]
    return np.unique(np.asarray(found, dtype=np.int64))


def refine_peaks(
    x: np.ndarray,
    fs: float,
    samples: np.ndarray,
    window_s: float,
    band_hz: tuple[float, float] = (1.0, 40.0),
) -> np.ndarray:
    """Move each detection to the largest deviation of the band-passed signal within
    ``window_s`` of it: the R peak the reference annotations (and the models'
    training windows) are centred on, whatever fiducial the detector reports.

    Args:
        x: The signal (no NaN), at ``fs``.
        fs: Sampling rate in Hz.
        samples: Detections, sample indices of ``x``.
        window_s: Search radius in seconds.
        band_hz: Band-pass before the search; the upper edge may exceed Nyquist
            (then only the high-pass applies).

    Returns:
        Refined sample indices, same length and order as ``samples``.
    """
    samples = np.asarray(samples, dtype=np.int64)
    if len(samples) == 0:
        return samples
    y = _bandpass(x, fs, band_hz)
    y = np.abs(y - np.median(y))
    half = max(int(round(window_s * fs)), 1)
    offsets = np.arange(-half, half + 1)
    idx = np.clip(samples[:, None] + offsets, 0, len(y) - 1)
    return idx[np.arange(len(samples)), np.argmax(y[idx], axis=1)]


def _bandpass(x: np.ndarray, fs: float, band_hz: tuple[float, float]) -> np.ndarray:
    low, high = band_hz
    nyquist = fs / 2
    if high < nyquist * 0.95 and low > 0:
        sos = signal.butter(2, [low, high], btype="bandpass", fs=fs, output="sos")
    elif low > 0:
        sos = signal.butter(2, low, btype="highpass", fs=fs, output="sos")
    elif high < nyquist * 0.95:
        sos = signal.butter(2, high, btype="lowpass", fs=fs, output="sos")
    else:
        return x - np.median(x)
    return signal.sosfiltfilt(sos, x)


def _merge_close(samples: np.ndarray, x: np.ndarray, min_gap: int) -> np.ndarray:
    """Keep one detection (the larger deviation) of any pair closer than ``min_gap``:
    two detections of one QRS complex after refinement."""
    samples = np.unique(samples)
    if len(samples) < 2:
        return samples
    keep = [samples[0]]
    for s in samples[1:]:
        if s - keep[-1] < min_gap:
            if abs(x[s]) > abs(x[keep[-1]]):
                keep[-1] = s
        else:
            keep.append(s)
    return np.asarray(keep, dtype=np.int64)


def noise_flags(
    x: np.ndarray, fs: float, samples: np.ndarray, p: DetectionParams
) -> np.ndarray:
    """True for detections in a stretch that is invalid (NaN in the input), flat
    (peak-to-peak below ``flat_ptp_mv``) or an artefact (peak-to-peak above
    ``artefact_ptp_ratio`` times the record's median), each judged over
    ``noise_window_s`` centred on the detection."""
    samples = np.asarray(samples, dtype=np.int64)
    if len(samples) == 0:
        return np.zeros(0, bool)
    width = max(int(round(p.noise_window_s * fs)) | 1, 3)
    filled = _fill_nan(x)
    ptp = ndimage.maximum_filter1d(filled, width, mode="nearest") - (
        ndimage.minimum_filter1d(filled, width, mode="nearest")
    )
    nan_near = (
        ndimage.maximum_filter1d(np.isnan(x).astype(np.uint8), width, mode="nearest")
        > 0
    )
    at = ptp[samples]
    typical = np.median(at)
    return (
        nan_near[samples] | (at < p.flat_ptp_mv) | (at > p.artefact_ptp_ratio * typical)
    )


def detect_beats(signal: np.ndarray, fs: float, params: dict[str, Any]) -> pd.DataFrame:
    """Find the R peaks of one ECG lead.

    Args:
        signal: One lead in physical units (mV), 1-D; NaN marks invalid samples.
        fs: Its sampling rate in Hz (>= ``params.min_fs``).
        params: The ``ecg_autoencoder.detection`` parameters.

    Returns:
        One row per beat, sorted by ``sample``: ``sample`` (int64, the R peak in the
        input's sample indices) and ``noise`` (bool, the beat lies in a stretch marked
        noisy, flat or invalid). Empty, with a warning, for a flat signal.

    Raises:
        ValueError: naming the problem, for a signal that is not 1-D, a rate below
            ``min_fs``, a signal shorter than ``min_duration_s``, infinite values or
            no valid sample at all.
    """
    p = DetectionParams.from_dict(params)
    x = _check_input(signal, float(fs), p)
    fs = float(fs)
    filled = _fill_nan(x)
    if np.ptp(filled) <= p.flat_ptp_mv:
        msg = (
            f"detect_beats: the signal is flat (peak-to-peak {np.ptp(filled):.3g} <= "
            f"{WHERE}.flat_ptp_mv); no beat detected."
        )
        warnings.warn(msg, stacklevel=2)
        logger.warning(msg)
        return _empty_detections()
    rate = p.detector_fs or fs
    y = filled if rate == fs else _resample(filled, fs, rate)
    found = _run_detector(y, rate, p.method)
    if rate != fs:
        found = np.round(found * (fs / rate)).astype(np.int64)
    found = found[(found >= 0) & (found < len(x))]
    refined = refine_peaks(filled, fs, found, p.refine_window_s, p.refine_band_hz)
    band = _bandpass(filled, fs, p.refine_band_hz)
    samples = _merge_close(refined, band, int(round(p.min_rr_s * fs)))
    return pd.DataFrame(
        {"sample": samples, "noise": noise_flags(x, fs, samples, p)}
    ).reset_index(drop=True)


def match_beats(
    detected_samples: np.ndarray,
    reference_samples: np.ndarray,
    fs: float,
    tolerance_s: float = EC57_TOLERANCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair detections with reference beats one to one within ``tolerance_s``
    (EC57's beat-by-beat comparison: 150 ms).

    Pairs are taken closest first, so each reference beat gets at most one detection
    and each detection at most one reference beat; a tie in distance goes to the
    earlier reference beat, then the earlier detection.

    Args:
        detected_samples: Detected R peaks (sample indices, any order).
        reference_samples: Reference beat positions (same rate).
        fs: Sampling rate in Hz.
        tolerance_s: Largest allowed distance, inclusive.

    Returns:
        ``(ref_of_det, det_of_ref)``: for each detection the index of its reference
        beat or -1 (a false positive); for each reference beat the index of its
        detection or -1 (a false negative). Indices refer to the inputs' order.
    """
    det = np.asarray(detected_samples, dtype=np.int64).ravel()
    ref = np.asarray(reference_samples, dtype=np.int64).ravel()
    if not (np.isfinite(fs) and fs > 0) or not tolerance_s >= 0:
        raise ValueError(
            f"match_beats: fs ({fs}) must be > 0 and tolerance_s ({tolerance_s}) >= 0."
        )
    tol = tolerance_s * fs
    ref_of_det = np.full(len(det), -1, np.int64)
    det_of_ref = np.full(len(ref), -1, np.int64)
    if len(det) == 0 or len(ref) == 0:
        return ref_of_det, det_of_ref
    ref_order = np.argsort(ref, kind="stable")
    ref_sorted = ref[ref_order]
    lo = np.searchsorted(ref_sorted, det - tol, side="left")
    hi = np.searchsorted(ref_sorted, det + tol, side="right")
    counts = hi - lo
    pair_det = np.repeat(np.arange(len(det)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    pair_ref_sorted = np.arange(len(pair_det)) + starts
    pair_ref = ref_order[pair_ref_sorted]
    dist = np.abs(det[pair_det] - ref[pair_ref])
    # Closest first; ties: earlier reference, then earlier detection.
    order = np.lexsort((det[pair_det], ref[pair_ref], dist))
    for k in order:
        d, r = pair_det[k], pair_ref[k]
        if ref_of_det[d] < 0 and det_of_ref[r] < 0:
            ref_of_det[d] = r
            det_of_ref[r] = d
    return ref_of_det, det_of_ref


def detection_counts(
    detected_samples: np.ndarray,
    reference_samples: np.ndarray,
    fs: float,
    tolerance_s: float = EC57_TOLERANCE_S,
) -> dict[str, float]:
    """TP, FN, FP, Se and +P of detections against reference beats (`match_beats`).
    Se and +P are NaN when undefined (no reference beat / no detection)."""
    ref_of_det, det_of_ref = match_beats(
        detected_samples, reference_samples, fs, tolerance_s
    )
    tp = int((det_of_ref >= 0).sum())
    fn = int((det_of_ref < 0).sum())
    fp = int((ref_of_det < 0).sum())
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "se": tp / (tp + fn) if tp + fn else float("nan"),
        "ppv": tp / (tp + fp) if tp + fp else float("nan"),
    }
