"""Experiment: the rhythm model trained with or without noisy copies of its training
records (`noisy_copies.noisy_training_copies`, the pipeline's own), compared on the
validation records, clean and under EC57 noise; no test record is read.

Reads the beats, windows and split a finished ``kedro run --pipeline=ecg_autoencoder
--env full`` saved (the ingestion is enough). ``--augment noisy`` trains with the
copies of ``ecg_autoencoder.rhythm.noisy_copies`` (enabled, with ``--sources``,
``--snrs`` and ``--false-label`` overriding the conf's), ``none`` without. Prints the
machine line and one ``RESULT`` dict: per database (MIT-BIH, SVDB) S and V Se / +P on
the validation beats, the criterion (S Se + S +P + V Se + V +P, mean of the two
databases), and on noise stress records built from the MIT-BIH validation records
(``em`` at 12 and 6 dB, the noise benchmark's construction) S and V Se / +P of the
kept beats, false S and V calls per hour of readable signal and the detection +P.

Usage (from the project root, after the ingestion of a full run)::

    python benchmarks/exp_noise_augmentation.py --augment noisy|none [--seed 42]
        [--sources em,ma] [--snrs 0,6,12] [--false-label N] [--threads 1]
        [--save PATH]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_detected_beats import ROOT
from bench_noise_stress import classify_rows, gross, stress_one, stress_tasks
from bench_other_leads import classify, scores_of

from medlstm.core.machine import machine_line
from medlstm.core.params import project_config
from medlstm.core.persistence import save_model
from medlstm.core.threads import limit_threads
from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.pipelines.ecg_autoencoder.noisy_copies import (
    noisy_training_copies,
    train_rhythm_with_copies,
)

SOURCE = ROOT.parent / "shared" / "data"
SCORES = ("S_Se", "S_+P", "V_Se", "V_+P")


def noise_scores(model, ecg, records, snr) -> dict[str, float]:
    rows = [stress_one(t) for t in stress_tasks(SOURCE, records, "em", snr, ecg, True)]
    cells = classify_rows(rows, {"rhythm": model}, ecg)["rhythm"]
    k = gross(rows, "kept")
    return {f"{snr:g}dB {key}": value for key, value in cells.items()} | {
        f"{snr:g}dB det +P": k["ppv"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--augment", choices=("noisy", "none"), default="noisy")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--snrs", help="comma-separated SNRs (default: the conf's)")
    parser.add_argument("--false-label", help="default: the conf's")
    parser.add_argument("--sources", help="comma-separated (default: the conf's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        limit_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    print(machine_line(), flush=True)
    params, catalog = project_config(ROOT, "full")
    ecg = params["ecg_autoencoder"]
    beats = pd.read_parquet(ROOT / catalog["ecg_beats_split"]["filepath"])
    windows = np.load(ROOT / catalog["ecg_windows"]["filepath"])["windows"]
    mit = beats[beats["database"] == "mitdb"]
    train_ids = sorted(mit.loc[mit["split"] == "train", "record"].unique())
    val_ids = sorted(mit.loc[mit["split"] == "val", "record"].unique())
    print(f"MIT-BIH training records {train_ids}; validation {val_ids}", flush=True)
    block = copy.deepcopy(ecg["rhythm"])
    block["checkpoint_path"] = None
    block["training"]["precision"] = "fp32"
    if args.seed is not None:
        block["training"]["seed"] = args.seed
    seed = block["training"]["seed"]
    block_copies = {
        **ecg["rhythm"]["noisy_copies"],
        "enabled": args.augment == "noisy",
        **({"sources": args.sources.split(",")} if args.sources else {}),
        **({"snr_db": [float(x) for x in args.snrs.split(",")]} if args.snrs else {}),
        **({"false_detection_label": args.false_label} if args.false_label else {}),
    }
    started = time.perf_counter()
    copies, copy_windows = noisy_training_copies(
        beats,
        WfdbRecordsDataset(str(SOURCE / "mitdb"), lazy=True).load(),
        WfdbRecordsDataset(str(SOURCE / "nstdb_noise"), annotation=None).load(),
        ecg["ingestion"],
        ecg["databases"],
        ecg["detection"],
        block_copies,
    )
    print(
        f"noisy copies: {len(copies)} beats in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    started = time.perf_counter()
    model, history = train_rhythm_with_copies(
        beats,
        {"windows": windows},
        copies,
        copy_windows,
        block,
        ecg["features"],
        ecg["ingestion"]["label_mapping"],
    )
    print(
        f"trained ({args.augment}, seed {seed}) in {time.perf_counter() - started:.0f} s, {len(history)} epochs",
        flush=True,
    )
    if args.save:
        save_model(model, args.save)
    val = beats["split"].to_numpy() == "val"
    predictions = classify(model, beats[val].reset_index(drop=True), windows[val], ecg)
    row = {"augment": args.augment, "seed": seed}
    per_db = []
    for database, part in predictions.groupby("database"):
        s = scores_of(part, ecg)
        per_db.append(sum(s[k] for k in SCORES))
        row |= {f"{database} {k}": s[k] for k in SCORES}
    row["criterion"] = float(np.mean(per_db))
    for snr in (12.0, 6.0):
        row |= noise_scores(model, ecg, val_ids, snr)
    print("RESULT", row, flush=True)


if __name__ == "__main__":
    main()
