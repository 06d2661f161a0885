"""QRS detection: beat positions found in the signal instead of read from annotations.

`detect_beats` runs an established QRS detector from a maintained library (chosen by
``ecg_autoencoder.detection.method``), moves every detection onto the fiducial point
the models were trained on (the reference annotations' R peak: the largest deviation
of the band-passed signal near the detection) and flags detections that lie in
stretches marked unreadable: flat, invalid (NaN), an artefact, or judged noisy by the
signal-quality check (a second detector's agreement and the signal's kurtosis per
window, `window_quality`). `detect` also returns the unreadable samples.

For training on detected beats, each detection takes the label of the reference beat
it matches (`beat_matching.match_beats`, ANSI/AAMI EC57: 150 ms).

Long on purpose (~600 lines): the detector's steps (input checks, detector, R-peak
refinement, merging, T-wave rejection, quality check, extra and small beats, noise
flags) read top to bottom in one place.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal, stats

from medlstm.core.params import check_complete_block, check_known_keys, parsed
from medlstm.datasets.wfdb_records import WfdbRecord
from medlstm.pipelines.ecg_autoencoder import gqrs
from medlstm.pipelines.ecg_autoencoder.beat_matching import (
    match_beats,
)
from medlstm.pipelines.ecg_autoencoder.preprocessing import (
    choose_lead,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    _labelled_beats,
    segment_beats,
    segment_record,
)

logger = logging.getLogger(__name__)

WHERE = "ecg_autoencoder.detection"
METHODS = ("gqrs", "xqrs", "sleepecg")
BEAT_SOURCES = ("reference", "detected")
# Where each detector puts its mark relative to the reference R peak (median over
# MIT-BIH records 100 105 119 200 203 208 213 221 233, first 5 min): gqrs marks
# ~36 ms before it, near QRS onset; refinement searches around the corrected point.
FIDUCIAL_OFFSET_S = {"gqrs": -0.036, "xqrs": 0.0, "sleepecg": 0.0}
# The band the kurtosis of a window is taken in: the ECG's, without baseline wander
# (whose slow swings would lower every record's kurtosis alike).
KURTOSIS_BAND_HZ = (0.5, 40.0)


@dataclass(frozen=True)
class DetectionParams:
    """The ``ecg_autoencoder.detection`` block, validated. Every field comes from that
    block in conf/base (its comments say what each does): no default here can drift
    from it."""

    beats: str
    method: str
    detector_fs: float | None
    min_fs: float
    min_duration_s: float
    refine_window_s: float
    refine_band_hz: tuple[float, float]
    min_rr_s: float
    twave_window_s: float
    twave_slope_ratio: float
    noise_window_s: float
    flat_ptp_mv: float
    artefact_ptp_ratio: float
    quality_detector: str | None
    quality_window_s: float
    agreement_tolerance_s: float
    min_agreement: float
    suspect_agreement: float
    suspect_max_kurtosis: float
    extra_beat_span: float
    small_beat_ratio: float
    match_tolerance_s: float

    def __post_init__(self) -> None:
        choices = {
            "beats": BEAT_SOURCES,
            "method": METHODS,
            "quality_detector": (*METHODS, None),
        }
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
            "twave_slope_ratio",
            "quality_window_s",
            "agreement_tolerance_s",
        )
        for key in positive:
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"Parameter '{WHERE}.{key}' must be > 0, got {value}.")
        for key in ("min_duration_s", "flat_ptp_mv", "twave_window_s"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"Parameter '{WHERE}.{key}' must be >= 0.")
        # extra_beat_span: 2 RR would drop premature beats with a full pause.
        bounded = {
            "min_agreement": 1,
            "suspect_agreement": 1,
            "extra_beat_span": 1.9,
            "small_beat_ratio": 1,
        }
        for key, high in bounded.items():
            if not 0 <= getattr(self, key) <= high:
                raise ValueError(
                    f"Parameter '{WHERE}.{key}' must be in [0, {high:g}], got "
                    f"{getattr(self, key)}."
                )
        if not np.isfinite(self.suspect_max_kurtosis):
            raise ValueError(
                f"Parameter '{WHERE}.suspect_max_kurtosis' must be finite."
            )
        if self.quality_detector is not None and self.quality_detector == self.method:
            raise ValueError(
                f"Parameter '{WHERE}.quality_detector' is {self.quality_detector!r}, "
                f"the same as '{WHERE}.method'; the check needs a second, independent "
                "detector (or null to turn it off)."
            )
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
        """Build from the YAML block; an unknown or a missing key is an error."""
        values = {} if values is None else values
        names = [f.name for f in fields(cls)]
        check_known_keys(values, names, WHERE)
        check_complete_block(values, names, WHERE)
        values = dict(values)
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
        # wfdb's gqrs, its filters vectorised: the same detections, ~10x faster.
        found = gqrs.gqrs_detect(x, fs)
    elif method == "xqrs":
        from wfdb.processing import XQRS

        xqrs = XQRS(sig=x, fs=fs)
        xqrs.detect(verbose=False)
        found = xqrs.qrs_inds
    else:
        try:
            import sleepecg
        except ImportError as err:
            raise ValueError(
                f"Parameter '{WHERE}.method' or '{WHERE}.quality_detector' is "
                "sleepecg, which is not installed (pip install -e . installs it)."
            ) from err

        found = sleepecg.detect_heartbeats(x, fs)
    return np.unique(np.asarray(found, dtype=np.int64))


def refine_peaks(
    x: np.ndarray,
    fs: float,
    samples: np.ndarray,
    window_s: float,
    band_hz: tuple[float, float] = (5.0, 25.0),
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
    return _refine_in(np.abs(y - np.median(y)), samples, window_s * fs)


def _refine_in(y: np.ndarray, samples: np.ndarray, half: float) -> np.ndarray:
    """Index of the maximum of ``y`` within ``half`` samples of each of ``samples``."""
    if len(samples) == 0:
        return samples
    half = max(int(round(half)), 1)
    idx = np.clip(samples[:, None] + np.arange(-half, half + 1), 0, len(y) - 1)
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


def reject_t_waves(
    samples: np.ndarray, band: np.ndarray, fs: float, window_s: float, ratio: float
) -> np.ndarray:
    """Drop detections that follow the previous beat within ``window_s`` and whose
    steepest slope is below ``ratio`` times that beat's: a T wave, not a QRS complex
    (Pan & Tompkins 1985's rule). ``band`` is the band-passed signal."""
    if window_s <= 0 or len(samples) < 2:
        return samples
    slope = np.abs(np.gradient(band))
    half = max(int(round(0.04 * fs)), 1)
    idx = np.clip(samples[:, None] + np.arange(-half, half + 1), 0, len(band) - 1)
    steepest = slope[idx].max(axis=1)
    gap = int(round(window_s * fs))
    keep = [0]
    for i in range(1, len(samples)):
        prev = keep[-1]
        if samples[i] - samples[prev] < gap and steepest[i] < ratio * steepest[prev]:
            continue
        keep.append(i)
    return samples[keep]


@dataclass(frozen=True)
class Detection:
    """What `detect` finds in one lead.

    Attributes:
        beats: One row per beat, sorted by ``sample``: ``sample`` (int64, the R peak
            in the input's sample indices) and ``noise`` (bool, the beat lies in a
            stretch marked unreadable).
        unreadable: Per input sample, True where the signal is unreadable (invalid,
            flat, an artefact or too noisy): beats there are flagged ``noise``.
        fs: The input's sampling rate in Hz.
        windows: The signal-quality check per window (`window_quality`): ``start``,
            ``end`` (samples), ``agreement``, ``kurtosis``, ``noisy``; empty when
            the check is off.
    """

    beats: pd.DataFrame
    unreadable: np.ndarray
    fs: float
    windows: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    @property
    def analysable_s(self) -> float:
        """Seconds of readable signal."""
        return float((~self.unreadable).sum() / self.fs)


def unreadable_samples(x: np.ndarray, fs: float, p: DetectionParams) -> np.ndarray:
    """Per sample, True in a stretch that is invalid (NaN within ``noise_window_s``),
    flat (peak-to-peak over ``noise_window_s`` below ``flat_ptp_mv``) or an artefact
    (peak-to-peak above ``artefact_ptp_ratio`` times its median over the record)."""
    width = max(int(round(p.noise_window_s * fs)) | 1, 3)
    filled = _fill_nan(x)
    ptp = ndimage.maximum_filter1d(filled, width, mode="nearest") - (
        ndimage.minimum_filter1d(filled, width, mode="nearest")
    )
    nan_near = (
        ndimage.maximum_filter1d(np.isnan(x).astype(np.uint8), width, mode="nearest")
        > 0
    )
    typical = np.median(ptp[~nan_near]) if (~nan_near).any() else 0.0
    return nan_near | (ptp < p.flat_ptp_mv) | (ptp > p.artefact_ptp_ratio * typical)


def noise_flags(
    x: np.ndarray, fs: float, samples: np.ndarray, p: DetectionParams
) -> np.ndarray:
    """True for detections in a stretch `unreadable_samples` marks."""
    samples = np.asarray(samples, dtype=np.int64)
    if len(samples) == 0:
        return np.zeros(0, bool)
    return unreadable_samples(x, fs, p)[samples]


def window_bounds(n: int, fs: float, window_s: float) -> np.ndarray:
    """Edges (samples) of consecutive ``window_s`` windows over ``n`` samples; the
    last window takes the remainder (a short tail is not judged alone)."""
    width = max(int(round(window_s * fs)), 1)
    count = max(n // width, 1)
    edges = np.arange(count + 1) * width
    edges[-1] = n
    return edges


def window_kurtosis(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Excess kurtosis of ``x`` in each window ``edges[i]:edges[i + 1]`` (as
    `window_bounds` makes them: equal widths, the last taking the remainder).

    One `scipy.stats.kurtosis` call over the equal windows as rows: called per
    window, its input checks cost more than the arithmetic (0.1 s a record).
    """
    width = int(edges[1] - edges[0])
    full = len(edges) - 2  # windows before the last, all ``width`` long
    kurt = np.empty(len(edges) - 1)
    if full:
        kurt[:full] = stats.kurtosis(x[: full * width].reshape(full, width), axis=1)
    kurt[full] = stats.kurtosis(x[edges[-2] : edges[-1]])
    return kurt


def window_quality(
    filled: np.ndarray,
    fs: float,
    primary: np.ndarray,
    second: np.ndarray,
    p: DetectionParams,
) -> pd.DataFrame:
    """The signal-quality indices of each ``quality_window_s`` window and its verdict.

    ``agreement`` (bSQI, Li, Clifford et al. 2008): of the two detectors' beats in
    the window, the share they agree on (within ``agreement_tolerance_s``),
    ``2 * matched / (n_primary + n_second)``; 1 when neither finds a beat (a pause is
    not noise). ``kurtosis`` (kSQI): the excess kurtosis of the 0.5-40 Hz signal; a
    clean ECG is peaky (QRS spikes over a flat baseline), noise is not. A window is
    ``noisy`` when its agreement is below ``min_agreement``, or below
    ``suspect_agreement`` with kurtosis below ``suspect_max_kurtosis`` (the
    detectors disagree on a few beats of a clean record too: kurtosis tells those
    windows apart).
    """
    edges = window_bounds(len(filled), fs, p.quality_window_s)
    matched_of_primary, _ = match_beats(primary, second, fs, p.agreement_tolerance_s)
    count = lambda beats: np.histogram(beats, edges)[0]  # noqa: E731
    n_primary, n_second = count(primary), count(second)
    n_matched = count(primary[matched_of_primary >= 0])
    total = n_primary + n_second
    agreement = np.where(total > 0, 2 * n_matched / np.maximum(total, 1), 1.0)
    kurt = window_kurtosis(_bandpass(filled, fs, KURTOSIS_BAND_HZ), edges)
    noisy = (agreement < p.min_agreement) | (
        (agreement < p.suspect_agreement) & (kurt < p.suspect_max_kurtosis)
    )
    return pd.DataFrame(
        {
            "start": edges[:-1],
            "end": edges[1:],
            "agreement": agreement,
            "kurtosis": kurt,
            "noisy": noisy,
        }
    )


def _detections(
    y: np.ndarray,
    rate: float,
    band: np.ndarray,
    fs: float,
    method: str,
    p: DetectionParams,
) -> np.ndarray:
    """One detector's beats at the input's rate ``fs``, each moved onto its R peak
    (largest deviation of ``band``), doubles merged and T waves dropped."""
    found = _run_detector(y, rate, method)
    if rate != fs:
        found = np.round(found * (fs / rate)).astype(np.int64)
    found = found - int(round(FIDUCIAL_OFFSET_S[method] * fs))
    found = found[(found >= 0) & (found < len(band))]
    refined = _refine_in(np.abs(band - np.median(band)), found, p.refine_window_s * fs)
    samples = _merge_close(refined, band, int(round(p.min_rr_s * fs)))
    return reject_t_waves(samples, band, fs, p.twave_window_s, p.twave_slope_ratio)


def extra_beats(
    samples: np.ndarray, agreed: np.ndarray, fs: float, span: float
) -> np.ndarray:
    """True for detections the second detector did not find that sit between two
    beats closer than ``span`` local RR intervals: an extra detection (a noise spike)
    splitting one interval in two. A premature beat is followed by a (compensatory)
    pause, so its two intervals span more (1.5-2 RR); the local RR is the median of
    the 15 intervals around."""
    n = len(samples)
    if span <= 0 or n < 5:
        return np.zeros(n, bool)
    rr = np.diff(samples) / fs
    local = pd.Series(rr).rolling(15, center=True, min_periods=3).median().to_numpy()
    between = np.full(n, np.inf)
    # Detection i: from beat i-1 to beat i+1, against the local RR at i.
    between[1:-1] = (samples[2:] - samples[:-2]) / fs / local[:-1]
    return ~agreed & (between < span)


def small_beats(
    samples: np.ndarray,
    agreed: np.ndarray,
    band: np.ndarray,
    fs: float,
    ratio: float,
) -> np.ndarray:
    """True for detections the second detector did not find whose QRS (peak-to-peak
    of the band-passed signal within 60 ms) is under ``ratio`` times the median QRS
    of the detections both found: a noise spike, not a beat (the record's QRS
    complexes vary far less than that)."""
    if ratio <= 0 or not agreed.any():
        return np.zeros(len(samples), bool)
    half = max(int(round(0.06 * fs)), 1)
    idx = np.clip(samples[:, None] + np.arange(-half, half + 1), 0, len(band) - 1)
    qrs = np.ptp(band[idx], axis=1)
    return ~agreed & (qrs < ratio * np.median(qrs[agreed]))


def detect_beats(signal: np.ndarray, fs: float, params: dict[str, Any]) -> pd.DataFrame:
    """Find the R peaks of one ECG lead: `detect`'s beat table."""
    return detect(signal, fs, params).beats


def detect(signal: np.ndarray, fs: float, params: dict[str, Any]) -> Detection:
    """Find the R peaks of one ECG lead and the stretches too noisy to read.

    The beats are those of ``method``, less those that only it found and that split
    one RR interval in two (`extra_beats`) or are far smaller than the record's
    beats (`small_beats`). A stretch is unreadable where
    `unreadable_samples` marks it (invalid, flat, artefact) or where the signal
    quality check (`window_quality`, second detector ``quality_detector``) finds it
    noisy; the beats there are flagged ``noise``.

    Args:
        signal: One lead in physical units (mV), 1-D; NaN marks invalid samples.
        fs: Its sampling rate in Hz (>= ``params.min_fs``).
        params: The ``ecg_autoencoder.detection`` parameters.

    Returns:
        The beats (``sample``, ``noise``), the unreadable samples and the quality
        per window; no beat, with a warning, for a flat signal.

    Raises:
        ValueError: naming the problem, for a signal that is not 1-D, a rate below
            ``min_fs``, a signal shorter than ``min_duration_s``, infinite values or
            no valid sample at all.
    """
    p = parsed(DetectionParams, params)
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
        return Detection(_empty_detections(), np.ones(len(x), bool), fs)
    rate = min(p.detector_fs, fs) if p.detector_fs else fs  # never upsample
    y = filled if rate == fs else _resample(filled, fs, rate)
    band = _bandpass(filled, fs, p.refine_band_hz)
    samples = _detections(y, rate, band, fs, p.method, p)
    unreadable = unreadable_samples(x, fs, p)
    windows = pd.DataFrame()
    if p.quality_detector is not None:
        second = _detections(y, rate, band, fs, p.quality_detector, p)
        windows = window_quality(filled, fs, samples, second, p)
        for a, b in windows.loc[windows["noisy"], ["start", "end"]].to_numpy():
            unreadable[a:b] = True
        of_second, _ = match_beats(samples, second, fs, p.agreement_tolerance_s)
        agreed = of_second >= 0
        extra = extra_beats(samples, agreed, fs, p.extra_beat_span)
        extra |= small_beats(samples, agreed, band, fs, p.small_beat_ratio)
        samples = samples[~extra]
    beats = pd.DataFrame({"sample": samples, "noise": unreadable[samples]})
    return Detection(beats.reset_index(drop=True), unreadable, fs, windows)


UNMATCHED = ""  # label of a detection that matches no reference beat


def segment_detected_record(
    record: WfdbRecord,
    p: SegmentationParams,
    detection: dict[str, Any],
    keep_unmatched: bool = False,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """`segment_record` with the detector's beat positions instead of the annotations'.

    Each detection takes the symbol and label of the labelled reference beat it
    matches (`match_beats`, ``detection.match_tolerance_s``). RR features are computed
    over all detections, as at inference, where no reference exists.

    Args:
        record: The record with its reference annotations.
        p: The segmentation parameters.
        detection: The ``ecg_autoencoder.detection`` parameters.
        keep_unmatched: Keep detections that match no reference beat (label ``""``,
            for scoring them as false positives); training drops them.

    Returns:
        As `segment_record`; the report also counts ``detected_beats``,
        ``noise_beats``, ``detected_unmatched`` (false positives) and
        ``reference_missed`` (labelled beats no detection matches).
    """
    lead = choose_lead(record, p.leads, p.missing_lead)
    if lead is None:
        return segment_record(record, p)  # the same skip and report
    dp = parsed(DetectionParams, detection)
    counts: Counter = Counter()
    idx, labels = _labelled_beats(record, p, counts)
    counts["labelled_beats"] = len(idx)
    reference = record.ann_samples[idx]
    found = detect_beats(record.signals[lead], record.fs, detection)
    samples = found["sample"].to_numpy(np.int64)
    ref_of_det, det_of_ref = match_beats(
        samples, reference, record.fs, dp.match_tolerance_s
    )
    matched = ref_of_det >= 0
    counts["detected_beats"] = len(samples)
    counts["noise_beats"] = int(found["noise"].sum())
    counts["detected_unmatched"] = int((~matched).sum())
    counts["reference_missed"] = int((det_of_ref < 0).sum())
    symbol = np.full(len(samples), UNMATCHED, dtype=object)
    label = np.full(len(samples), UNMATCHED, dtype=object)
    symbol[matched] = record.ann_symbols[idx][ref_of_det[matched]]
    label[matched] = labels[ref_of_det[matched]]
    columns = {"symbol": symbol.astype(str), "label": label.astype(str)}
    beats, windows, report = segment_beats(record, lead, samples, columns, p, counts)
    if not keep_unmatched:
        keep = (beats["label"] != UNMATCHED).to_numpy()
        beats, windows = beats[keep].reset_index(drop=True), windows[keep]
        report["kept"] = len(beats)
    return beats, windows, report


def detected_segmenter(
    detection: dict[str, Any], keep_unmatched: bool = False
) -> Callable[[WfdbRecord, SegmentationParams], tuple]:
    """`segment_detected_record` bound to ``detection``, in the form
    `segment_records` and `segment_databases` take."""

    def segment(record: WfdbRecord, p: SegmentationParams):
        return segment_detected_record(record, p, detection, keep_unmatched)

    return segment


def beat_source(detection: dict[str, Any] | None) -> str:
    """``detection.beats``: ``reference`` (annotations) or ``detected``."""
    return parsed(DetectionParams, detection).beats
