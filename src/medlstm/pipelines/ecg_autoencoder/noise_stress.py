"""Noise stress records, built the way ANSI/AAMI EC57 and the WFDB tool ``nst`` do.

A clean record (MIT-BIH) gets a noise record of the MIT-BIH Noise Stress Test
Database (``em`` electrode motion, ``ma`` muscle, ``bw`` baseline wander) added at a
known signal-to-noise ratio: none in the first 5 minutes (a detector's learning
period), then noise and no noise in alternating 2-minute stretches. The reference
beats stay those of the clean record, so a detector is scored on the noisy one.

The SNR is ``nst``'s: ``SNR = 20 log10(S / (sqrt(8) N))`` dB, with ``S`` the QRS
amplitude, the trimmed mean (lowest and highest 5 % dropped) of the peak-to-peak
amplitude within 50 ms of the first 300 normal beats (``sigamp -a``), and ``N`` the
noise's RMS, the trimmed mean of the RMS about the mean of consecutive 1-s windows
(``sigamp``). ``sqrt(8)`` makes a sine of peak-to-peak ``S`` and RMS ``N`` 0 dB.

Where ``N`` is measured (``calibration``): ``nst`` measures it over the noise record's
first 300 s, as EC57's published records were built; the noise is not stationary
(``em``'s first channel is 4.5 dB louder in the stretches than in its first 5
minutes), so their noisy stretches hold more noise than the nominal SNR says.
``added`` measures it over the noise samples actually added, so the stretches reach
the nominal SNR.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from medlstm.datasets.wfdb_records import WfdbRecord

EC57_SNRS_DB = (24.0, 18.0, 12.0, 6.0, 0.0, -6.0)
LEARNING_S = 300.0  # EC57: the first 5 minutes stay clean
STRETCH_S = 120.0  # then 2 minutes noisy, 2 minutes clean, ...
QRS_HALF_WINDOW_S = 0.05  # sigamp -d default: 50 ms either side of the annotation
MAX_MEASUREMENTS = 300  # sigamp -n default
TRIM_FRACTION = 0.05  # sigamp drops the lowest and highest 5 % of its measurements
# The beats nst measures the QRS amplitude on (WFDB map1 NORMAL): normal and
# bundle-branch-block beats, AAMI class N.
NORMAL_SYMBOLS = ("N", "L", "R", "e", "j", "B")
CALIBRATIONS = ("nst", "added")


@dataclass(frozen=True)
class NoisyRecord:
    """A noise stress record and how it was built.

    Attributes:
        record: The clean record with noise added to every lead (reference beats
            unchanged).
        noisy: Per sample, True inside the stretches that hold noise.
        snr_db: The SNR requested for the noisy stretches.
        gains: Lead -> the gain the noise was multiplied by.
        noise_source: The noise record's id.
        calibration: Where the noise RMS was measured (``nst`` or ``added``).
    """

    record: WfdbRecord
    noisy: np.ndarray
    snr_db: float
    gains: dict[str, float]
    noise_source: str
    calibration: str


def trimmed_mean(values: np.ndarray, fraction: float = TRIM_FRACTION) -> float:
    """Mean of ``values`` after dropping the lowest and highest ``fraction`` of them
    (``sigamp``'s rule: ``n // 20`` from each end for 5 %)."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    v = v[np.isfinite(v)]
    if not len(v):
        raise ValueError("trimmed_mean: no finite value.")
    k = int(len(v) * fraction)
    return float(v[k : len(v) - k].mean())


def qrs_amplitude(
    x: np.ndarray,
    fs: float,
    beat_samples: np.ndarray,
    half_window_s: float = QRS_HALF_WINDOW_S,
    max_beats: int = MAX_MEASUREMENTS,
) -> float:
    """``S``: the trimmed mean of the peak-to-peak amplitude of ``x`` within
    ``half_window_s`` of each of the first ``max_beats`` beats (normal beats, sample
    indices). Beats whose window leaves the signal or holds NaN are skipped."""
    half = int(round(half_window_s * fs))
    beats = np.asarray(beat_samples, dtype=np.int64)
    beats = beats[(beats >= half) & (beats < len(x) - half)][:max_beats]
    if not len(beats):
        raise ValueError("qrs_amplitude: no normal beat inside the signal.")
    idx = beats[:, None] + np.arange(-half, half + 1)
    windows = x[idx]
    return trimmed_mean(np.ptp(windows, axis=1))


def noise_rms(
    noise: np.ndarray,
    fs: float,
    window_s: float = 1.0,
    max_windows: int | None = None,
) -> float:
    """``N``: the trimmed mean of the RMS about the mean of consecutive
    ``window_s`` windows of ``noise`` (at most ``max_windows``; a partial last window
    is dropped)."""
    width = int(round(window_s * fs))
    n = len(noise) // width
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ValueError(
            f"noise_rms: {len(noise)} samples, shorter than one {window_s:g}-s window."
        )
    windows = np.asarray(noise[: n * width], dtype=np.float64).reshape(n, width)
    return trimmed_mean(windows.std(axis=1))


def snr_db(signal_amplitude: float, rms: float) -> float:
    """``nst``'s SNR in dB of a QRS amplitude ``S`` over a noise RMS ``N``."""
    return float(20.0 * np.log10(signal_amplitude / (np.sqrt(8.0) * rms)))


def noise_gain(target_db: float, signal_amplitude: float, rms: float) -> float:
    """The factor that brings noise of RMS ``rms`` to ``target_db`` against a QRS
    amplitude ``signal_amplitude`` (the inverse of `snr_db`)."""
    if not (rms > 0 and signal_amplitude > 0):
        raise ValueError(
            f"noise_gain: QRS amplitude ({signal_amplitude}) and noise RMS ({rms}) "
            "must be > 0."
        )
    return float(signal_amplitude / (np.sqrt(8.0) * rms) * 10 ** (-target_db / 20.0))


def noisy_stretches(
    n_samples: int,
    fs: float,
    learning_s: float = LEARNING_S,
    stretch_s: float = STRETCH_S,
) -> np.ndarray:
    """Per sample, True where EC57's protocol adds noise: after ``learning_s``,
    alternately ``stretch_s`` noisy and ``stretch_s`` clean, starting noisy."""
    if not (learning_s >= 0 and stretch_s > 0):
        raise ValueError(
            f"noisy_stretches: learning_s ({learning_s}) must be >= 0 and stretch_s "
            f"({stretch_s}) > 0."
        )
    t = np.arange(n_samples) / fs - learning_s
    return (t >= 0) & ((t // stretch_s) % 2 == 0)


def mix(
    clean: np.ndarray, noise: np.ndarray, gain_per_sample: np.ndarray
) -> np.ndarray:
    """``clean + gain * noise - offset``: the offset changes wherever the gain does,
    so that the added noise has no step there (``nst``'s offsets): a step would be a
    QRS-like edge no real recording has."""
    gain = np.asarray(gain_per_sample, dtype=np.float64)
    change = np.flatnonzero(np.diff(gain) != 0) + 1
    # At a change at sample s the added noise stays what the old gain gives there.
    steps = np.zeros(len(clean))
    steps[change] = (gain[change] - gain[change - 1]) * noise[change]
    return clean + gain * noise - np.cumsum(steps)


def noise_stress_record(
    record: WfdbRecord,
    noise: WfdbRecord,
    target_db: float,
    learning_s: float = LEARNING_S,
    stretch_s: float = STRETCH_S,
    normal_symbols: tuple[str, ...] = NORMAL_SYMBOLS,
    calibration: str = "nst",
) -> NoisyRecord:
    """``record`` with ``noise`` added at ``target_db`` in EC57's stretches.

    Lead ``i`` of the record gets noise channel ``i`` modulo the noise record's
    channels (as ``nst`` pairs them); the noise is read from its start in step with
    the record and rewound if shorter. Each lead's gain is set from its own QRS
    amplitude (`qrs_amplitude`, the record's normal beats) and the noise's RMS
    (`noise_rms`) over its first 300 s (``calibration="nst"``) or over the samples
    added (``"added"``).

    Raises:
        ValueError: naming the record, if the rates differ, the record has no normal
            beat, no stretch is noisy or the noise is silent there.
    """
    if abs(record.fs - noise.fs) > 1e-6 * record.fs:
        raise ValueError(
            f"noise_stress_record: record {record.record_id} is at {record.fs:g} Hz, "
            f"noise {noise.record_id} at {noise.fs:g} Hz; resample one first."
        )
    if calibration not in CALIBRATIONS:
        raise ValueError(
            f"noise_stress_record: calibration {calibration!r}; expected one of "
            f"{CALIBRATIONS}."
        )
    n = record.n_samples
    noisy = noisy_stretches(n, record.fs, learning_s, stretch_s)
    if not noisy.any():
        raise ValueError(
            f"noise_stress_record: record {record.record_id} lasts {n / record.fs:.0f} s,"
            f" no longer than the clean learning period ({learning_s:g} s)."
        )
    beats = record.ann_samples[np.isin(record.ann_symbols, normal_symbols)]
    if not len(beats):
        raise ValueError(
            f"noise_stress_record: record {record.record_id} has no normal beat to "
            "measure the QRS amplitude on."
        )
    channels = list(noise.signals.values())
    signals, gains = {}, {}
    for i, (lead, x) in enumerate(record.signals.items()):
        channel = np.nan_to_num(channels[i % len(channels)])
        source = np.resize(channel, n)  # rewinds a shorter noise record
        rms = (
            noise_rms(channel, noise.fs, max_windows=MAX_MEASUREMENTS)
            if calibration == "nst"
            else noise_rms(source[noisy], record.fs)
        )
        if rms <= 0:
            raise ValueError(
                f"noise_stress_record: noise {noise.record_id} is silent in the noisy "
                f"stretches of record {record.record_id}."
            )
        try:
            amplitude = qrs_amplitude(x, record.fs, beats)
        except ValueError as err:
            raise ValueError(
                f"noise_stress_record: record {record.record_id} lead {lead}: {err}"
            ) from err
        gains[lead] = noise_gain(target_db, amplitude, rms)
        signals[lead] = mix(x, source, np.where(noisy, gains[lead], 0.0))
    return NoisyRecord(
        record=dataclasses.replace(record, signals=signals),
        noisy=noisy,
        snr_db=float(target_db),
        gains=gains,
        noise_source=noise.record_id,
        calibration=calibration,
    )
