"""A new recording, from file to beats: read it, check it, detect and segment its beats.

Three input kinds (``ecg_autoencoder.inference.record_path``): a WFDB record (``.hea``
or a path without extension; annotations are read only for ``beats: reference``),
an EDF file (``.edf``) and a CSV of samples (``.csv``, one column per lead, named in a
header row; the rate is ``ecg_autoencoder.inference.sampling_rate``). The served
model's input is a table of samples (`signal_record`). Every kind becomes a
`WfdbRecord` whose lead is chosen by name (``ecg_autoencoder.ingestion.lead``); the
beats are then cut by ingestion's own `segment_beats`, exactly as in training.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlstm.core.params import parsed
from medlstm.datasets.wfdb_records import WfdbRecord, read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.detection import (
    DetectionParams,
    detect,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    segment_beats,
    segment_record,
)

logger = logging.getLogger(__name__)

BEAT_MODES = ("detected", "reference")
WHERE = "ecg_autoencoder.inference"


class RecordingError(ValueError):
    """A recording that cannot be classified; the message names the file and why."""


def load_recording(path: str, inference: dict[str, Any]) -> dict[str, WfdbRecord]:
    """Read the recording at ``path`` by its extension.

    Args:
        path: A WFDB record (``.hea`` or no extension), an ``.edf`` or a ``.csv`` file.
        inference: The ``ecg_autoencoder.inference`` parameters: ``beats``
            (annotations are read only for ``reference``), ``annotation`` (their
            extension) and ``sampling_rate`` (Hz, required for CSV).

    Returns:
        ``{record_id: WfdbRecord}`` with one record named after the file.

    Raises:
        RecordingError: naming the file, if it is missing, of an unknown kind or
            unreadable.
    """
    file = Path(path)
    mode = beat_mode(inference)
    rate = inference.get("sampling_rate")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        record = read_csv_recording(file, rate)
    elif suffix == ".edf":
        record = read_edf_recording(file)
    elif suffix == ".hea" or file.with_name(file.name + ".hea").is_file():
        annotation = inference.get("annotation") if mode == "reference" else None
        record = read_wfdb_record(file, annotation)
    elif not file.exists():
        raise RecordingError(f"{file}: recording not found.")
    else:
        raise RecordingError(
            f"{file}: unknown recording format {suffix!r}; expected a WFDB record "
            "(.hea or the path without extension), an EDF file (.edf) or a CSV of "
            "samples (.csv)."
        )
    if suffix != ".csv" and rate is not None and float(rate) != record.fs:
        logger.warning(
            "%s declares %g Hz; '%s.sampling_rate' (%s) applies to CSV files only.",
            file, record.fs, WHERE, rate,
        )  # fmt: skip
    return {record.record_id: record}


def beat_mode(inference: dict[str, Any]) -> str:
    """``inference.beats``: ``detected`` (found in the signal) or ``reference`` (the
    WFDB record's annotations)."""
    mode = inference.get("beats", "detected")
    if mode not in BEAT_MODES:
        raise ValueError(
            f"Parameter '{WHERE}.beats' is {mode!r}; expected one of {BEAT_MODES}."
        )
    return mode


def read_csv_recording(path: Path, sampling_rate: float | None) -> WfdbRecord:
    """A CSV of samples: a header row naming the leads, one row per sample; empty
    cells are invalid samples (NaN). Columns that are not numbers are ignored."""
    if not path.is_file():
        raise RecordingError(f"{path}: recording not found.")
    fs = _sampling_rate(sampling_rate, path)
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise RecordingError(f"{path}: not a readable CSV file ({err}).") from err
    signals = {
        str(name): column.to_numpy(np.float64)
        for name, column in frame.items()
        if pd.api.types.is_numeric_dtype(column) and not str(name).startswith("Unnamed")
    }
    if not signals or frame.empty:
        raise RecordingError(
            f"{path}: no numeric column of samples (columns: {list(frame.columns)}); "
            "expected a header row naming the leads and one row per sample."
        )
    return _record(path.stem, fs, signals, str(path))


def _sampling_rate(value: Any, path: Path) -> float:
    """``inference.sampling_rate`` as a positive number, or an error naming the file."""
    if value is None:
        raise RecordingError(
            f"{path}: a CSV file has no sampling rate; give it with "
            f"--params {WHERE}.sampling_rate=HZ."
        )
    try:
        fs = float(value)
    except (TypeError, ValueError):
        fs = float("nan")
    if not np.isfinite(fs) or fs <= 0:
        raise RecordingError(
            f"{path}: '{WHERE}.sampling_rate' is {value!r}; expected a rate in Hz."
        )
    return fs


def read_edf_recording(path: Path) -> WfdbRecord:
    """An EDF/EDF+ file, read by wfdb; its signal labels are the lead names."""
    from wfdb.io.convert.edf import read_edf

    if not path.is_file():
        raise RecordingError(f"{path}: recording not found.")
    try:
        edf = read_edf(str(path))
    except Exception as err:  # wfdb raises bare Exceptions on malformed files
        raise RecordingError(f"{path}: not a readable EDF file ({err}).") from err
    if edf.p_signal is None or not edf.sig_name:
        raise RecordingError(f"{path}: the EDF file holds no signal.")
    frames = set(edf.samps_per_frame or [1])
    if len(frames) > 1:
        raise RecordingError(
            f"{path}: its signals have different sampling rates ({sorted(frames)} "
            "samples per frame); export the ECG leads at one rate."
        )
    signal = np.asarray(edf.p_signal, dtype=np.float64)
    leads = {
        str(name).strip(): np.ascontiguousarray(signal[:, i])
        for i, name in enumerate(edf.sig_name)
    }
    return _record(path.stem, float(edf.fs) * frames.pop(), leads, str(path))


def _record(
    record_id: str, fs: float, signals: dict[str, np.ndarray], source: str
) -> WfdbRecord:
    return WfdbRecord(
        record_id=record_id,
        fs=float(fs),
        signals=signals,
        ann_samples=np.empty(0, np.int64),
        ann_symbols=np.empty(0, str),
        source=source,
    )


def signal_record(
    samples: pd.DataFrame, ingestion: dict[str, Any]
) -> dict[str, WfdbRecord]:
    """The served model's input as a record: one row per sample, columns ``signal``
    (the lead the model was trained on, ``ingestion.lead``; NaN for invalid samples)
    and ``fs`` (the sampling rate in Hz, the same on every row)."""
    source = "model input"
    missing = sorted({"signal", "fs"} - set(samples.columns))
    if missing:
        raise RecordingError(
            f"{source}: missing column(s) {missing}; expected one row per sample with "
            "columns 'signal' and 'fs' (sampling rate in Hz)."
        )
    rates = pd.to_numeric(samples["fs"], errors="coerce").dropna().unique()
    if len(rates) != 1:
        raise RecordingError(
            f"{source}: column 'fs' must hold one sampling rate, found "
            f"{sorted(rates.tolist())[:5]}."
        )
    lead = SegmentationParams.from_dict(ingestion).leads[0]
    x = pd.to_numeric(samples["signal"], errors="coerce").to_numpy(np.float64)
    return {"signal": _record("signal", float(rates[0]), {lead: x}, source)}


def check_recording(
    record: WfdbRecord, p: SegmentationParams, detection: DetectionParams
) -> str:
    """The lead to classify (the first of ``p.leads`` the record has), after checking
    that it can be: a rate of at least ``detection.min_fs``, at least
    ``detection.min_duration_s`` seconds, valid samples that are not all equal.

    Raises:
        RecordingError: naming the file and the problem.
    """
    src = record.source
    lead = next((name for name in p.leads if name in record.signals), None)
    if lead is None and p.missing_lead == "other" and record.signals:
        lead = next(iter(record.signals))
    if lead is None:
        raise RecordingError(
            f"{src}: no lead {' or '.join(p.leads)} (its leads: {list(record.signals)}); "
            "choose one with --params ecg_autoencoder.ingestion.lead=NAME."
        )
    fs = record.fs
    if not (np.isfinite(fs) and fs > 0):
        raise RecordingError(f"{src}: no valid sampling rate ({fs!r} Hz).")
    if fs < detection.min_fs:
        raise RecordingError(
            f"{src}: sampling rate {fs:g} Hz is below {detection.min_fs:g} Hz "
            "('ecg_autoencoder.detection.min_fs'), too coarse to place R peaks."
        )
    x = record.signals[lead]
    duration = len(x) / fs
    if duration < detection.min_duration_s:
        raise RecordingError(
            f"{src}: the recording lasts {duration:.1f} s, shorter than "
            f"{detection.min_duration_s:g} s ('ecg_autoencoder.detection.min_duration_s')."
        )
    valid = x[np.isfinite(x)]
    if not len(valid):
        raise RecordingError(f"{src}: lead {lead} has no valid sample (all NaN).")
    if np.ptp(valid) == 0:
        raise RecordingError(
            f"{src}: lead {lead} is a flat line (every valid sample is {valid[0]:g})."
        )
    return lead


def segment_recording(
    records: dict[str, WfdbRecord],
    ingestion: dict[str, Any],
    detection: dict[str, Any],
    inference: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """`segment_detected`, or for ``inference.beats: reference`` the record's
    annotated beats cut as in training, after the same checks."""
    if beat_mode(inference) == "detected":
        return segment_detected(records, ingestion, detection)
    checks = parsed(DetectionParams, detection)

    def segment(record: WfdbRecord, p: SegmentationParams):
        check_recording(record, p, checks)
        if not len(record.ann_samples):
            raise RecordingError(
                f"{record.source}: no reference beats (annotations) to classify; "
                f"use {WHERE}.beats=detected."
            )
        beats, windows, report = segment_record(record, p)
        return beats, windows, _with_duration(report, record)

    return segment_records(records, ingestion, segment)


def segment_detected(
    records: dict[str, WfdbRecord],
    ingestion: dict[str, Any],
    detection: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """Detect the beats of every record and cut them exactly as in training.

    Args:
        records: ``{record_id: WfdbRecord}``; annotations, if any, are ignored.
        ingestion: ``ecg_autoencoder.ingestion`` (lead, rate, windows, cleaning).
        detection: ``ecg_autoencoder.detection``, passed to ``detect``; its
            ``min_fs`` and ``min_duration_s`` also bound the recordings accepted.

    Returns:
        As `segment_records`; the beat table has ``input_sample`` (the R peak at the
        recording's own rate) and ``noise`` (the detector's flag) instead of symbol
        and label; the report counts ``detected_beats`` and ``noise_beats`` and gives
        ``analysable_s``, the seconds of signal not marked unreadable.

    Raises:
        RecordingError: naming the file, for a recording that fails
            `check_recording`, has fewer than three detected beats (saying so when
            none of it is analysable) or none that could be windowed. A recording
            of noise in which beats are detected is not an error: they are all
            flagged noise and ``analysable_s`` is 0.
    """

    checks = parsed(DetectionParams, detection)

    def segment(record: WfdbRecord, p: SegmentationParams):
        lead = check_recording(record, p, checks)
        try:
            found = detect(record.signals[lead], record.fs, detection)
        except ValueError as err:  # its messages name the problem, not the file
            raise RecordingError(f"{record.source}: lead {lead}: {err}") from err
        samples = found.beats["sample"].to_numpy(np.int64)
        noise = found.beats["noise"].to_numpy(bool)
        order = np.argsort(samples, kind="stable")
        samples, noise = samples[order], noise[order]
        if len(samples) < 3 and found.analysable_s == 0:
            raise RecordingError(
                f"{record.source}: no analysable signal in lead {lead}: every stretch "
                f"is flat, invalid or too noisy to read ({len(samples)} heartbeat(s) "
                "detected)."
            )
        if len(samples) < 3:
            raise RecordingError(
                f"{record.source}: {len(samples)} heartbeat(s) detected in lead {lead}; "
                "at least 3 are needed (is it an ECG? is the lead right?)."
            )
        counts = Counter(detected_beats=len(samples), noise_beats=int(noise.sum()))
        columns = {"input_sample": samples, "noise": noise}
        beats, windows, report = segment_beats(
            record, lead, samples, columns, p, counts
        )
        if beats.empty:
            raise RecordingError(
                f"{record.source}: none of the {len(samples)} beats detected in lead "
                f"{lead} could be windowed ({counts['dropped_edge']} at the edges, "
                f"{counts['dropped_no_rr']} without neighbours, "
                f"{counts['dropped_nan']} over invalid samples)."
            )
        report = _with_duration(report, record)
        return beats, windows, {**report, "analysable_s": found.analysable_s}

    return segment_records(records, ingestion, segment)


def _with_duration(report: dict[str, Any], record: WfdbRecord) -> dict[str, Any]:
    return {**report, "duration_s": record.n_samples / record.fs}


def example_signal(
    records: dict[str, WfdbRecord],
    ingestion: dict[str, Any],
    detection: dict[str, Any],
    inference: dict[str, Any],
) -> pd.DataFrame:
    """The served model's input example: the first ``inference.example_seconds`` of
    record ``inference.example_record``'s lead ``ingestion.lead`` (see
    `signal_record`)."""
    rid = str(inference["example_record"])
    if rid not in records:
        raise ValueError(
            f"Parameter '{WHERE}.example_record' is {rid!r}, not a record of the "
            f"training database (e.g. {sorted(records)[:3]})."
        )
    record = records[rid]
    p = SegmentationParams.from_dict(ingestion)
    lead = check_recording(record, p, parsed(DetectionParams, detection))
    n = int(round(float(inference["example_seconds"]) * record.fs))
    x = record.signals[lead][:n]
    return pd.DataFrame({"signal": x, "fs": np.full(len(x), record.fs)})
