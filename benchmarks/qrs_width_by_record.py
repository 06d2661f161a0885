"""QRS width (`qrs_width_ms`) of every real record at its true rate and as it reads
when the header declares a rate 360/250 times too low.

The question it answers: can one record's QRS width (or heart rate) tell that its
declared rate is wrong? Only if the falsified widths clear every true one. It prints
the machine line, one line per record (database, record, lead, rate, labelled beats,
mean heart rate at the true rate and as falsified, QRS width at the true rate and as
falsified), then per database and over both the range of the true widths, how many
falsified records read wider than the widest true record (what a threshold with no
false alarm would catch), and the seconds taken.

Usage (from the project root)::

    python benchmarks/qrs_width_by_record.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from medlstm.core.machine import machine_line
from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.sampling_rate import qrs_width_ms
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
)

FALSIFIED = 250 / 360  # a 360 Hz record whose header says 250 Hz
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    params = yaml.safe_load(
        (ROOT / "conf" / "base" / "parameters_ecg_autoencoder.yml").read_text()
    )["ecg_autoencoder"]
    # The symbols the pipeline labels as beats (rhythm and noise annotations are not).
    beat_symbols = list(SegmentationParams.from_dict(params["ingestion"]).lookup)
    widths: dict[str, list[float]] = {}
    print("database record lead fs beats bpm bpm_falsified qrs_ms qrs_ms_falsified")
    for database, cfg in params["databases"].items():
        folder = args.data / database
        started = time.perf_counter()
        widths[database] = []
        for hea in sorted(folder.glob("*.hea")):
            record = read_wfdb_record(folder / hea.stem)
            lead = next((lead for lead in cfg["leads"] if lead in record.signals), None)
            lead = lead or next(iter(record.signals))
            beats = record.ann_samples[np.isin(record.ann_symbols, beat_symbols)]
            width = qrs_width_ms(record.signals[lead], beats, record.fs)
            bpm = 60.0 / (np.diff(beats).mean() / record.fs)
            widths[database].append(width)
            print(
                f"{database} {hea.stem} {lead} {record.fs:g} {len(beats)} {bpm:.0f} "
                f"{bpm * FALSIFIED:.0f} {width:.1f} {width / FALSIFIED:.1f}",
                flush=True,
            )
        seconds = time.perf_counter() - started
        _summary(database, widths[database], seconds)
    _summary("both", [w for ws in widths.values() for w in ws], None)


def _summary(name: str, widths: list[float], seconds: float | None) -> None:
    true = np.array(widths)
    falsified = true / FALSIFIED
    caught = int((falsified > true.max()).sum())
    took = f", {seconds:.0f} s" if seconds is not None else ""
    print(
        f"# {name}: {len(true)} records, true QRS {true.min():.0f}-{true.max():.0f} ms "
        f"(median {np.median(true):.0f}); falsified {falsified.min():.0f}-"
        f"{falsified.max():.0f} ms; above the widest true record: {caught} of "
        f"{len(true)}{took}",
        flush=True,
    )


if __name__ == "__main__":
    main()
