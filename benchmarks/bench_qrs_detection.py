"""QRS detection measured the EC57 way: Se and +P of `detect_beats` per record.

Every detection is paired one to one with a reference beat within 150 ms
(`match_beats`); reference beats are the annotations whose symbol the pipeline's
label mapping (conf/base) labels, so rhythm, noise and flutter-wave annotations do
not count. The whole of every record is scored; ``--exclude-vf`` leaves out the
ventricular flutter/fibrillation episodes (between ``[`` and ``]`` annotations, in
MIT-BIH only record 207), where EC57 compares no beats. Records are read with the project's reader and the lead is picked by name
(``ecg_autoencoder.databases``: MLII in MIT-BIH, ECG1 in SVDB).

Prints the machine line, then one line per record (reference beats, TP, FN, FP, Se,
+P, seconds), then per database the gross TP, FN, FP, Se, +P and the wall time of
reading and detecting all its records with ``--workers`` processes.

Usage (from the project root)::

    python benchmarks/bench_qrs_detection.py [--database mitdb|svdb|both]
        [--records 100,108] [--method gqrs] [--detector-fs 120] [--workers 2]
        [--exclude-vf]

Targets on MIT-BIH: gross Se and +P >= 99.5 % (aim 99.8 %), all 48 records in
<= 60 s on 2 cores (aim 15 s); SVDB: aim 99.5 %.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medlstm.core.machine import machine_line
from medlstm.core.params import project_config
from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.beat_matching import (
    detection_counts,
)
from medlstm.pipelines.ecg_autoencoder.detection import (
    detect_beats,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"mitdb": "mitdb", "svdb": "svdb"}


def load_params(env: str = "base") -> dict[str, Any]:
    """The ``ecg_autoencoder`` parameters of ``env`` merged over base."""
    return project_config(ROOT, env)[0]["ecg_autoencoder"]


def record_ids(folder: Path, records: str | None) -> list[str]:
    """The ids given, or every record the folder's RECORDS file (else headers) lists."""
    if records:
        return [r.strip() for r in records.split(",") if r.strip()]
    listing = folder / "RECORDS"
    if listing.is_file():
        return listing.read_text().split()
    return sorted(p.stem for p in folder.glob("*.hea"))


def vf_episodes(samples: np.ndarray, symbols: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` samples of the ventricular flutter/fibrillation episodes."""
    starts = samples[symbols == "["]
    ends = samples[symbols == "]"]
    return [(int(a), int(ends[ends >= a].min(initial=samples.max()))) for a in starts]


def score_record(
    path: str,
    leads: list[str],
    beat_symbols: list[str],
    detection: dict[str, Any],
    exclude_vf: bool = False,
) -> dict[str, Any]:
    """Read one record, detect its beats in the first of ``leads`` it has, score them."""
    started, cpu_started = time.perf_counter(), time.process_time()
    record = read_wfdb_record(path)
    # MIT-BIH 102 and 104 have no MLII: their upper lead (V5, V2) is scored.
    lead = next((name for name in leads if name in record.signals), None)
    lead = lead or next(iter(record.signals))
    reference = record.ann_samples[np.isin(record.ann_symbols, beat_symbols)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = detect_beats(record.signals[lead], record.fs, detection)
    detected = found["sample"].to_numpy()
    if exclude_vf:
        for start, end in vf_episodes(record.ann_samples, record.ann_symbols):
            detected = detected[(detected < start) | (detected > end)]
            reference = reference[(reference < start) | (reference > end)]
    counts = detection_counts(
        detected,
        reference,
        record.fs,
        detection.get("match_tolerance_s", 0.15),
    )
    return {
        "record": record.record_id,
        "lead": lead,
        "n_ref": len(reference),
        "noise": int(found["noise"].sum()),
        "seconds": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
        **counts,
    }


def run_database(
    name: str,
    folder: Path,
    ids: list[str],
    params: dict[str, Any],
    detection: dict[str, Any],
    workers: int,
    exclude_vf: bool = False,
) -> dict[str, float]:
    """Score every record of one database; prints per-record and gross lines."""
    leads = [str(lead) for lead in params["databases"][name]["leads"]]
    symbols = sorted(
        {s for group in params["ingestion"]["label_mapping"].values() for s in group}
    )
    paths = [str(folder / rid) for rid in ids]
    print(f"\n{name}: {len(paths)} records, lead {'/'.join(leads)} (else the first)")
    print(f"{'record':>7} {'lead':>5} {'ref':>6} {'TP':>6} {'FN':>5} {'FP':>5} {'Se %':>7} "
          f"{'+P %':>7} {'noise':>5} {'cpu s':>5}")  # fmt: skip
    started = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max(workers, 1)) as pool:
        # Lines come as records finish, so a cut-short run still shows its part.
        for r in pool.map(
            score_record,
            paths,
            [leads] * len(paths),
            [symbols] * len(paths),
            [detection] * len(paths),
            [exclude_vf] * len(paths),
        ):
            rows.append(r)
            print(
                f"{r['record']:>7} {r['lead']:>5} {r['n_ref']:>6} {r['tp']:>6} "
                f"{r['fn']:>5} {r['fp']:>5} {100 * r['se']:>7.2f} "
                f"{100 * r['ppv']:>7.2f} {r['noise']:>5} {r['cpu_s']:>5.1f}",
                flush=True,
            )
    wall = time.perf_counter() - started
    tp, fn, fp = (sum(r[k] for r in rows) for k in ("tp", "fn", "fp"))
    cpu = sum(r["cpu_s"] for r in rows)
    gross = {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "se": tp / (tp + fn) if tp + fn else float("nan"),
        "ppv": tp / (tp + fp) if tp + fp else float("nan"),
        "wall_s": wall,
        "cpu_s": cpu,
    }
    print(
        f"{name} gross: TP {tp} FN {fn} FP {fp}  Se {100 * gross['se']:.2f} %  "
        f"+P {100 * gross['ppv']:.2f} %  wall {wall:.1f} s ({workers} workers, "
        f"method {detection['method']}, detector_fs {detection.get('detector_fs')}"
        f"{', VF episodes excluded' if exclude_vf else ''})"
    )
    # CPU seconds do not grow when other jobs share the cores; wall time does.
    print(
        f"{name} time: {cpu:.1f} CPU s reading + detecting ({cpu / len(rows):.2f} per "
        f"record) = {cpu / max(workers, 1):.1f} s on {workers} uncontended cores"
    )
    return gross


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["mitdb", "svdb", "both"], default="both")
    parser.add_argument("--records", help="comma-separated record ids (default: all)")
    parser.add_argument("--source", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--method", help="override ecg_autoencoder.detection.method")
    parser.add_argument(
        "--detector-fs", type=float, help="override detection.detector_fs (Hz)"
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--env", default="base", help="Kedro config environment")
    parser.add_argument(
        "--exclude-vf", action="store_true", help="leave out VF episodes (EC57)"
    )
    args = parser.parse_args()

    print(machine_line(args.workers))
    params = load_params(args.env)
    detection = dict(params["detection"])
    if args.method:
        detection["method"] = args.method
    if args.detector_fs is not None:
        detection["detector_fs"] = args.detector_fs
    names = ["mitdb", "svdb"] if args.database == "both" else [args.database]
    for name in names:
        folder = Path(args.source) / SOURCES[name]
        if not folder.is_dir():
            raise SystemExit(f"{folder}: database folder not found (--source).")
        run_database(
            name,
            folder,
            record_ids(folder, args.records),
            params,
            detection,
            args.workers,
            args.exclude_vf,
        )


if __name__ == "__main__":
    main()
