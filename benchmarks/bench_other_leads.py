"""The trained ECG classifiers on another lead than the one they were trained on.

Loads the models a finished ``kedro run --pipeline=ecg_autoencoder [--env full]``
left in data/06_models (as `bench_detected_beats`), reads the test records of the
split that run saved (``ecg_beats_split``: DS2 and SVDB's test part; ``--split val``
for the validation records) twice, on the training lead (MLII in MIT-BIH, ECG1 in
SVDB: ``databases.<db>.leads``) and on ``--lead`` (``second``: each record's other
lead, V1 in most MIT-BIH records, ECG2 in SVDB; or a lead name), cuts one window per
labelled reference beat with the training preprocessing (`segment_record_on`), and
classifies every record's beats with each model (the rhythm model reads each record's
beats in their order). Prints the machine line, which lead each record used, then per
model, database and lead: beats, accuracy, S and V Se / +P. ``--detected`` also
scores the beats the QRS detector finds on that lead (slower).

Usage (from the project root, after the training run)::

    python benchmarks/bench_other_leads.py [--env full] [--lead second|V1|ECG2]
        [--split test|val] [--databases mitdb,svdb] [--models rhythm,autoencoder,cnn]
        [--detected] [--threads 1] [--out scores.csv] [--predictions DIR]
        [--root PROJECT]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_detected_beats import MODELS, ROOT, model_path, reference_table

from medlstm.core.machine import machine_line
from medlstm.core.params import project_config
from medlstm.core.persistence import load_model
from medlstm.core.threads import limit_threads
from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.models.rhythm_bilstm import RhythmBiLSTM
from medlstm.pipelines.ecg_autoencoder.beat_matching import score_detected_beats
from medlstm.pipelines.ecg_autoencoder.detection import segment_detected_record
from medlstm.pipelines.ecg_autoencoder.reporting import evaluate
from medlstm.pipelines.ecg_autoencoder.rhythm import rhythm_probabilities
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    pick_lead,
    segment_record_on,
)
from medlstm.pipelines.ecg_autoencoder.training import (
    predict_beats,
    prediction_table,
)

CATALOG = {"mitdb": "ecg_raw_records", "svdb": "ecg_svdb_records"}


def split_records(
    root: Path, catalog: dict[str, Any], databases: dict[str, Any], part: str
) -> dict[str, list[str]]:
    """Database -> the ids (as in its folder, prefix removed) of the records the
    run's saved split put in ``part``."""
    path = root / catalog["ecg_beats_split"]["filepath"]
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run the training pipeline first.")
    split = pd.read_parquet(path, columns=["record", "database", "split"])
    split = split[split["split"] == part].drop_duplicates(["database", "record"])
    out = {}
    for name, rows in split.groupby("database"):
        prefix = str(databases[name].get("record_prefix") or "")
        out[str(name)] = sorted(str(r).removeprefix(prefix) for r in rows["record"])
    return out


def segment_on_lead(
    folder: Path,
    ids: list[str],
    database: str,
    p: SegmentationParams,
    which: str,
    detection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reference-beat windows of ``ids`` on lead ``which`` (`pick_lead`), the lead
    each record used, and with ``detection`` the detected beats on that lead and the
    reference table to score them against."""
    prefix = "svdb_" if database == "svdb" else ""
    parts, leads, detected, truth = [], {}, [], []
    counts = dict.fromkeys(
        ("detected_beats", "detected_unmatched", "reference_missed"), 0
    )
    for rid in ids:
        record = read_wfdb_record(folder / rid)
        record = replace(record, record_id=prefix + rid)
        beats, windows, report = segment_record_on(record, p, which)
        leads[rid] = report.get("lead")
        if not len(beats):
            continue
        beats.insert(1, "database", database)
        parts.append((beats, windows))
        if detection is not None:
            on_lead = replace(p, lead=pick_lead(record, p, which))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d_beats, d_windows, report = segment_detected_record(
                    record, on_lead, detection, keep_unmatched=True
                )
            for key in counts:
                counts[key] += report.get(key, 0)
            d_beats.insert(1, "database", database)
            detected.append((d_beats, d_windows))
            truth.append(reference_table(record, p))
    return {
        "reference": _joined(parts),
        "detected": _joined(detected) if detection is not None else None,
        "truth": pd.concat(truth, ignore_index=True) if truth else None,
        "leads": leads,
        "detection": counts if detection is not None else None,
    }


def _joined(parts: list[tuple[pd.DataFrame, np.ndarray]]):
    if not parts:
        return None
    return (
        pd.concat([b for b, _ in parts], ignore_index=True),
        np.concatenate([w for _, w in parts]),
    )


def classify(
    model, beats: pd.DataFrame, windows: np.ndarray, ecg: dict[str, Any]
) -> pd.DataFrame:
    """Predictions of one model for ``beats``; the rhythm model reads each record's
    beats in their order."""
    classes = list(ecg["ingestion"]["label_mapping"])
    if isinstance(model, RhythmBiLSTM):
        return prediction_table(
            beats, rhythm_probabilities(model, beats, windows), classes
        )
    return predict_beats(model, beats, windows, ecg["features"], classes)[0]


def _headline(
    beats: int, accuracy: float, per_class: dict, se: str, ppv: str
) -> dict[str, float]:
    """The printed columns: beats, accuracy, S and V Se / +P."""
    return {
        "beats": beats,
        "accuracy": accuracy,
        **{
            f"{c}_{name}": per_class[c][key]
            for c in ("S", "V")
            for name, key in (("Se", se), ("+P", ppv))
        },
    }


def scores_of(predictions: pd.DataFrame, ecg: dict[str, Any]) -> dict[str, float]:
    """Accuracy and S, V Se / +P of reference-beat predictions (one database)."""
    m = evaluate(predictions, ecg["ingestion"]["label_mapping"])
    return _headline(
        len(predictions), m["accuracy"], m["per_class"], "recall", "precision"
    )


def detected_scores(
    predictions: pd.DataFrame, truth: pd.DataFrame, ecg: dict[str, Any]
) -> dict[str, float]:
    """As `scores_of`, for detected beats matched to the reference (EC57)."""
    s = score_detected_beats(
        predictions[["record", "sample", "predicted"]],
        truth,
        list(ecg["ingestion"]["label_mapping"]),
        ecg["ingestion"]["target_fs"],
        ecg["detection"].get("match_tolerance_s", 0.15),
    )
    return _headline(len(truth), s["accuracy"], s["per_class"], "se", "ppv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="full", help="Kedro config environment")
    parser.add_argument("--root", default=str(ROOT), help="project root")
    parser.add_argument("--lead", default="second", help="second, or a lead name")
    parser.add_argument("--split", default="test", choices=("test", "val"))
    parser.add_argument("--databases", default="mitdb,svdb")
    parser.add_argument("--models", default="rhythm,autoencoder,cnn")
    parser.add_argument("--detected", action="store_true", help="also detected beats")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the scores")
    parser.add_argument(
        "--predictions", type=Path, default=None,
        help="folder for every reference beat's predictions (model_database_lead.csv)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        limit_threads(args.threads)

    print(machine_line(), flush=True)
    root = Path(args.root).resolve()
    params, catalog = project_config(root, args.env)
    ecg = params["ecg_autoencoder"]
    ids = split_records(root, catalog, ecg["databases"], args.split)
    data: dict[tuple[str, str], dict[str, Any]] = {}
    for database in args.databases.split(","):
        if database not in ids:
            print(f"{database}: no {args.split} record in the saved split")
            continue
        p = SegmentationParams.for_database(
            ecg["ingestion"], ecg["databases"][database]
        )
        folder = root / catalog[CATALOG[database]]["path"]
        started = time.perf_counter()
        for which in ("training", args.lead):
            data[database, which] = segment_on_lead(
                folder,
                ids[database],
                database,
                p,
                which,
                ecg["detection"] if args.detected else None,
            )
        used = {
            rid: f"{data[database, 'training']['leads'][rid]}/"
            f"{data[database, args.lead]['leads'][rid]}"
            for rid in ids[database]
        }
        print(
            f"{database} {args.split} ({len(ids[database])} records from {folder}, "
            f"{time.perf_counter() - started:.0f} s), training/{args.lead} lead: "
            + ", ".join(f"{rid} {lead}" for rid, lead in used.items()),
            flush=True,
        )
        for which in ("training", args.lead):
            if data[database, which]["detection"]:
                print(
                    f"  detector on the {which} lead: {data[database, which]['detection']}"
                )

    rows = []
    for name in args.models.split(","):
        model = load_model(model_path(root, catalog, MODELS[name]))
        score = partial(classify, model, ecg=ecg)
        for (database, which), part in data.items():
            if part["reference"] is None:
                continue
            beats, windows = part["reference"]
            predictions = score(beats, windows)
            if args.predictions:
                args.predictions.mkdir(parents=True, exist_ok=True)
                predictions.to_csv(
                    args.predictions / f"{name}_{database}_{which}.csv", index=False
                )
            rows.append(
                {
                    "model": name,
                    "database": database,
                    "lead": which,
                    "beats_from": "reference",
                }
                | scores_of(predictions, ecg)
            )
            if part["detected"] is not None:
                d_beats, d_windows = part["detected"]
                rows.append(
                    {
                        "model": name,
                        "database": database,
                        "lead": which,
                        "beats_from": "detected",
                    }
                    | detected_scores(score(d_beats, d_windows), part["truth"], ecg)
                )
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    with pd.option_context(
        "display.width", 200, "display.float_format", "{:.3f}".format
    ):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
