"""QRS detection, noise flags and (optionally) classification on EC57 noise stress
records built from MIT-BIH records.

Each record (default: DS2, ``split.inter_patient.test``, patients no model was
trained on) gets a noise record of the MIT-BIH Noise Stress Test Database added at
each SNR (`noise_stress.noise_stress_record`: clean for the first 5 minutes, then
2-minute stretches noisy and clean in turn, SNR as ``nst`` defines and calibrates
it). Detection
runs on the noisy lead (``ecg_autoencoder.detection``), nothing taken from the
annotations; the reference beats are the clean record's.

Beats are scored from the end of the learning period on, EC57 style (one-to-one
within 150 ms): ``all`` counts every detection; ``kept`` leaves out the detections
flagged as noise and the reference beats inside stretches marked unreadable (what a
reader of the report is shown). Also printed: beats flagged, the share of the noisy
and of the clean time marked unreadable. With trained models (``data/06_models``,
or ``--models``), the kept beats are classified and scored (S and V Se/+P, false S
and V calls per hour of readable signal).

Prints the machine line, then one row per noise and SNR (``clean``: no noise added).

Usage (from the project root)::

    python benchmarks/bench_noise_stress.py [--records 100,103] [--noise em,ma,bw]
        [--snr 24,18,12,6,0,-6] [--minutes 30] [--models auto|none|rhythm,autoencoder,cnn]
        [--env base] [--workers 2] [--learning-s 300] [--stretch-s 120]
        [--calibration nst|added] [--detection-param KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlstm.core.machine import machine_line
from medlstm.core.params import project_config
from medlstm.datasets.wfdb_records import WfdbRecord, read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.beat_matching import (
    detection_counts,
    match_beats,
    score_detected_beats,
)
from medlstm.pipelines.ecg_autoencoder.detection import detect
from medlstm.pipelines.ecg_autoencoder.noise_stress import (
    CALIBRATIONS,
    EC57_SNRS_DB,
    LEARNING_S,
    STRETCH_S,
    noise_stress_record,
    noisy_stretches,
)
from medlstm.pipelines.ecg_autoencoder.preprocessing import choose_lead
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    _labelled_beats,
    segment_beats,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "rhythm": "ecg_rhythm_model",
    "autoencoder": "ecg_autoencoder_model",
    "cnn": "ecg_cnn_model",
}
CLEAN = "clean"


def model_files(root: Path, catalog: dict[str, Any], models: str) -> dict[str, Path]:
    """The model files to classify with: ``none``; ``auto`` (those of the catalog's
    ``ecg_rhythm_model``, ``ecg_autoencoder_model`` and ``ecg_cnn_model`` that exist);
    or named ones, which must exist."""
    if models == "none":
        return {}
    names = list(MODELS) if models == "auto" else models.split(",")
    found = {}
    for name in names:
        if name not in MODELS:
            raise SystemExit(
                f"--models: unknown model {name!r}; expected {list(MODELS)}."
            )
        entry = catalog[MODELS[name]]
        path = root / (entry.get("filepath") or entry["dataset"]["filepath"])
        if path.is_file():
            found[name] = path
        elif models != "auto":
            raise SystemExit(f"{path}: model file not found (--models {name}).")
    return found


@functools.cache
def _noise_record(path: str) -> WfdbRecord:
    return read_wfdb_record(path, annotation=None)


def overridden(detection: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """``detection`` with each ``KEY=VALUE`` of ``pairs`` set (VALUE read as YAML)."""
    import yaml

    out = dict(detection)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in detection:
            raise SystemExit(
                f"--detection-param {pair!r}: expected KEY=VALUE with KEY one of "
                f"{sorted(detection)}."
            )
        out[key] = yaml.safe_load(value)
    return out


def truncated(record: WfdbRecord, seconds: float | None) -> WfdbRecord:
    """The first ``seconds`` of ``record`` (all of it for None)."""
    if seconds is None:
        return record
    n = int(round(seconds * record.fs))
    inside = record.ann_samples < n
    return dataclasses.replace(
        record,
        signals={lead: x[:n] for lead, x in record.signals.items()},
        ann_samples=record.ann_samples[inside],
        ann_symbols=record.ann_symbols[inside],
    )


def stress_tasks(
    source: Path,
    ids: list[str],
    noise: str,
    snr: float | None,
    ecg: dict[str, Any],
    classify: bool,
    seconds: float | None = None,
    learning_s: float = LEARNING_S,
    stretch_s: float = STRETCH_S,
    calibration: str = "nst",
) -> list[dict[str, Any]]:
    """One `stress_one` task per MIT-BIH record of ``ids`` under ``source``: noise
    record ``noise`` (or ``clean``) at ``snr`` dB."""
    return [
        {
            "path": str(source / "mitdb" / rid),
            "noise": noise,
            "noise_path": str(source / "nstdb_noise" / noise),
            "snr": snr,
            "seconds": seconds,
            "learning_s": learning_s,
            "stretch_s": stretch_s,
            "calibration": calibration,
            "ecg": ecg,
            "classify": classify,
        }
        for rid in ids
    ]


def stress_one(task: dict[str, Any]) -> dict[str, Any]:
    """Build one noisy record, detect its beats, score them; with ``classify``, the
    windows of its kept beats and their reference for the main process to score."""
    ecg = task["ecg"]
    p = SegmentationParams.for_database(ecg["ingestion"], ecg["databases"]["mitdb"])
    record = truncated(read_wfdb_record(task["path"]), task["seconds"])
    lead = choose_lead(record, p.leads, p.missing_lead)
    if lead is None:
        return {"record": record.record_id, "skipped": f"no lead {p.leads}"}
    n = record.n_samples
    if task["noise"] == CLEAN:
        noisy = noisy_stretches(n, record.fs, task["learning_s"], task["stretch_s"])
    else:
        built = noise_stress_record(
            record,
            _noise_record(task["noise_path"]),
            task["snr"],
            task["learning_s"],
            task["stretch_s"],
            calibration=task["calibration"],
        )
        record, noisy = built.record, built.noisy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = detect(record.signals[lead], record.fs, ecg["detection"])
    samples = found.beats["sample"].to_numpy(np.int64)
    flagged = found.beats["noise"].to_numpy(bool)
    idx, labels = _labelled_beats(record, p, Counter())
    reference = record.ann_samples[idx]
    start = int(round(task["learning_s"] * record.fs))  # EC57 scores after learning
    ref_in = reference >= start
    det_in = samples >= start
    ref_kept = ref_in & ~found.unreadable[np.clip(reference, 0, n - 1)]
    det_kept = det_in & ~flagged
    tol = ecg["detection"].get("match_tolerance_s", 0.15)
    scored = ~np.zeros(n, bool)
    scored[:start] = False
    out = {
        "record": record.record_id,
        "all": detection_counts(samples[det_in], reference[ref_in], record.fs, tol),
        "kept": detection_counts(
            samples[det_kept], reference[ref_kept], record.fs, tol
        ),
        "flagged": int((flagged & det_in).sum()),
        "noisy_s": noisy.sum() / record.fs,
        "noisy_flagged_s": (noisy & found.unreadable).sum() / record.fs,
        "clean_s": (~noisy).sum() / record.fs,
        "clean_flagged_s": (~noisy & found.unreadable).sum() / record.fs,
        "readable_scored_h": (scored & ~found.unreadable).sum() / record.fs / 3600,
    }
    if task["classify"]:
        ref_of_det, _ = match_beats(samples, reference, record.fs, tol)
        label = np.where(ref_of_det >= 0, labels[np.maximum(ref_of_det, 0)], "")
        columns = {"input_sample": samples, "noise": flagged, "label": label}
        beats, windows, _ = segment_beats(record, lead, samples, columns, p)
        keep = (~beats["noise"].to_numpy(bool)) & (
            beats["input_sample"].to_numpy() >= start
        )
        truth = pd.DataFrame(
            {
                "record": record.record_id,
                "sample": np.round(reference[ref_kept] * p.target_fs / record.fs),
                "label": labels[ref_kept],
            }
        ).astype({"sample": np.int64})
        # Every beat in its order: the rhythm model reads each among its neighbours,
        # noise-flagged ones included, as the inference pipeline does; only the kept
        # beats are scored.
        out["beats"] = beats
        out["windows"] = windows
        out["keep"] = keep
        out["truth"] = truth
        out["target_fs"] = p.target_fs
    return out


def gross(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Summed TP, FN, FP of ``key`` (``all`` or ``kept``) with their Se and +P."""
    tp, fn, fp = (sum(r[key][k] for r in rows) for k in ("tp", "fn", "fp"))
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "se": tp / (tp + fn) if tp + fn else float("nan"),
        "ppv": tp / (tp + fp) if tp + fp else float("nan"),
    }


def classify_rows(
    rows: list[dict[str, Any]], models: dict[str, Any], ecg: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Per model: S and V Se/+P on the kept beats and false S and V calls per hour."""
    from medlstm.models.rhythm_bilstm import RhythmBiLSTM
    from medlstm.pipelines.ecg_autoencoder.rhythm import rhythm_probabilities
    from medlstm.pipelines.ecg_autoencoder.training import (
        predict_beats,
        prediction_table,
    )

    classes = list(ecg["ingestion"]["label_mapping"])
    every_beat = pd.concat([r["beats"] for r in rows], ignore_index=True)
    every_window = np.concatenate([r["windows"] for r in rows])
    keep = np.concatenate([r["keep"] for r in rows])
    beats = every_beat[keep].reset_index(drop=True)
    windows = every_window[keep]
    truth = pd.concat([r["truth"] for r in rows], ignore_index=True)
    hours = sum(r["readable_scored_h"] for r in rows)
    fs = rows[0]["target_fs"]
    tol = ecg["detection"].get("match_tolerance_s", 0.15)
    out = {}
    for name, model in models.items():
        if beats.empty:
            out[name] = {}
            continue
        if isinstance(model, RhythmBiLSTM):
            probs = rhythm_probabilities(model, every_beat, every_window)[keep]
            predictions = prediction_table(beats, probs, classes)
        else:
            predictions, _, _ = predict_beats(
                model, beats, windows, ecg["features"], classes
            )
        scores = score_detected_beats(
            predictions[["record", "sample", "predicted"]], truth, classes, fs, tol
        )
        cells = {}
        for c in ("S", "V"):
            k = scores["per_class"][c]
            cells[f"{c} Se"] = k["se"]
            cells[f"{c} +P"] = k["ppv"]
            cells[f"false {c}/h"] = k["fp"] / hours if hours else float("nan")
        out[name] = cells
    return out


def print_header(model_names: list[str]) -> None:
    head = (
        f"{'noise':>5} {'SNR':>5} {'Se all':>7} {'+P all':>7} {'Se kept':>7} "
        f"{'+P kept':>7} {'flagged':>7} {'noisy%':>6} {'clean%':>6}"
    )
    for name in model_names:
        head += " | " + " ".join(
            f"{name[:2] + ' ' + h:>9}"
            for h in ("S Se", "S +P", "V Se", "V +P", "fS/h", "fV/h")
        )
    print(head, flush=True)


def print_row(
    noise: str, snr: str, rows: list[dict[str, Any]], classified: dict[str, Any]
) -> None:
    a, k = gross(rows, "all"), gross(rows, "kept")
    noisy = sum(r["noisy_s"] for r in rows)
    clean = sum(r["clean_s"] for r in rows)
    noisy_pct = 100 * sum(r["noisy_flagged_s"] for r in rows) / noisy if noisy else 0.0
    clean_pct = 100 * sum(r["clean_flagged_s"] for r in rows) / clean if clean else 0.0
    line = (
        f"{noise:>5} {snr:>5} {100 * a['se']:>7.2f} {100 * a['ppv']:>7.2f} "
        f"{100 * k['se']:>7.2f} {100 * k['ppv']:>7.2f} "
        f"{sum(r['flagged'] for r in rows):>7d} {noisy_pct:>6.1f} {clean_pct:>6.1f}"
    )
    for cells in classified.values():
        values = [
            cells.get(h, float("nan"))
            for h in ("S Se", "S +P", "V Se", "V +P", "false S/h", "false V/h")
        ]
        line += " | " + " ".join(
            f"{100 * v:>9.2f}" if i < 4 else f"{v:>9.1f}" for i, v in enumerate(values)
        )
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", help="comma-separated ids (default: DS2 test)")
    parser.add_argument("--noise", default="em", help="comma-separated: em, ma, bw")
    parser.add_argument(
        "--snr",
        default=",".join(f"{s:g}" for s in EC57_SNRS_DB),
        help="comma-separated SNRs in dB",
    )
    parser.add_argument(
        "--no-clean", action="store_true", help="skip the row without added noise"
    )
    parser.add_argument("--minutes", type=float, help="use the first M minutes")
    parser.add_argument("--learning-s", type=float, default=LEARNING_S)
    parser.add_argument("--stretch-s", type=float, default=STRETCH_S)
    parser.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default="nst",
        help="noise RMS over the noise record's first 300 s (nst, EC57) or over the "
        "samples added (added: the stretches reach the nominal SNR)",
    )
    parser.add_argument(
        "--models", default="auto", help="auto | none | rhythm,autoencoder,cnn"
    )
    parser.add_argument(
        "--detection-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override ecg_autoencoder.detection.KEY (YAML value), e.g. "
        "quality_detector=null extra_beat_span=0 for the detector without its check",
    )
    parser.add_argument("--env", default="base", help="Kedro config environment")
    parser.add_argument("--root", default=str(ROOT), help="project root")
    parser.add_argument("--source", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    print(machine_line(args.workers))
    root = Path(args.root).resolve()
    params, catalog = project_config(root, args.env)
    ecg = params["ecg_autoencoder"]
    ecg["detection"] = overridden(ecg["detection"], args.detection_param)
    source = Path(args.source)
    ids = (
        [r.strip() for r in args.records.split(",") if r.strip()]
        if args.records
        else [str(r) for r in ecg["split"]["inter_patient"]["test"]]
    )
    for rid in ids:
        if not (source / "mitdb" / f"{rid}.hea").is_file():
            raise SystemExit(
                f"{source / 'mitdb' / rid}.hea: record not found (--records)."
            )
    noises = [n.strip() for n in args.noise.split(",") if n.strip()]
    for name in noises:
        if not (source / "nstdb_noise" / f"{name}.hea").is_file():
            raise SystemExit(
                f"{source / 'nstdb_noise' / name}.hea: noise record not found (--noise)."
            )
    snrs = [float(s) for s in args.snr.split(",") if s.strip()]
    from medlstm.core.persistence import load_model

    models = {
        name: load_model(path)
        for name, path in model_files(root, catalog, args.models).items()
    }
    det = ecg["detection"]
    print(
        f"{len(ids)} records ({','.join(ids)}), noise {','.join(noises)}, "
        f"{args.minutes or 30:g} min each, learning {args.learning_s:g} s, stretches "
        f"{args.stretch_s:g} s, SNR calibration {args.calibration}; detector "
        f"{det['method']}, quality check {det.get('quality_detector')}, extra-beat "
        f"span {det.get('extra_beat_span')}; models: "
        f"{', '.join(models) or 'none (detection only)'}"
    )
    print_header(list(models))
    cases = ([] if args.no_clean else [(CLEAN, None)]) + [
        (n, s) for n in noises for s in snrs
    ]
    seconds = None if args.minutes is None else 60 * args.minutes
    started = time.perf_counter()
    with ProcessPoolExecutor(max(args.workers, 1)) as pool:
        for noise, snr in cases:
            tasks = stress_tasks(
                source,
                ids,
                noise,
                snr,
                ecg,
                classify=bool(models),
                seconds=seconds,
                learning_s=args.learning_s,
                stretch_s=args.stretch_s,
                calibration=args.calibration,
            )
            rows = [r for r in pool.map(stress_one, tasks) if "skipped" not in r]
            if not rows:
                raise SystemExit(f"No record of {ids} has lead {ecg['databases']}.")
            classified = classify_rows(rows, models, ecg) if models else {}
            print_row(noise, CLEAN if snr is None else f"{snr:g}", rows, classified)
    print(f"wall {time.perf_counter() - started:.0f} s ({args.workers} workers)")


if __name__ == "__main__":
    main()
