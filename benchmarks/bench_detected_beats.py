"""The trained ECG classifiers on detected beats against reference beat positions.

Loads the models a finished ``kedro run --pipeline=ecg_autoencoder [--env full]``
left in data/06_models (the catalog's ``ecg_rhythm_model``, ``ecg_autoencoder_model``
and ``ecg_cnn_model``), then classifies the DS2 test records
(``split.inter_patient.test``) twice:

- reference: one window per labelled annotation, as in training and evaluation;
- detected: one window per beat the QRS detector finds (``ecg_autoencoder.detection``),
  nothing taken from the annotations.

Both are scored with `score_detected_beats` against every labelled reference beat of
the records: a detection matching no reference beat (150 ms) is a false positive of
the class predicted, a reference beat no classified detection matches (missed, or at
the record's edge) a false negative of its class. Prints the machine line, then per
model accuracy and S and V Se / +P side by side, and the detection counts.

Usage (from the project root, after the training run)::

    python benchmarks/bench_detected_beats.py [--env full] [--records 100,103]
        [--models rhythm,autoencoder,cnn] [--root PROJECT]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlstm.core.machine import machine_line
from medlstm.core.params import project_config
from medlstm.core.persistence import load_model
from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.models.rhythm_bilstm import RhythmBiLSTM
from medlstm.pipelines.ecg_autoencoder.beat_matching import (
    score_detected_beats,
)
from medlstm.pipelines.ecg_autoencoder.detection import (
    segment_detected_record,
)
from medlstm.pipelines.ecg_autoencoder.preprocessing import (
    choose_lead,
)
from medlstm.pipelines.ecg_autoencoder.rhythm import rhythm_probabilities
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    _labelled_beats,
    segment_record,
)
from medlstm.pipelines.ecg_autoencoder.training import (
    predict_beats,
    prediction_table,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "rhythm": "ecg_rhythm_model",
    "autoencoder": "ecg_autoencoder_model",
    "cnn": "ecg_cnn_model",
}


def model_path(root: Path, catalog: dict[str, Any], name: str) -> Path:
    """The local file of a catalog model entry (inside its MLflow artifact wrapper)."""
    entry = catalog[name]
    filepath = entry.get("filepath") or entry["dataset"]["filepath"]
    return root / filepath


def reference_table(record, p: SegmentationParams) -> pd.DataFrame:
    """Every labelled reference beat of ``record`` at ``p.target_fs``."""
    idx, labels = _labelled_beats(record, p, Counter())
    samples = np.round(record.ann_samples[idx] * (p.target_fs / record.fs))
    return pd.DataFrame(
        {
            "record": record.record_id,
            "sample": samples.astype(np.int64),
            "label": labels,
        }
    )


def segment_test_records(
    folder: Path,
    ids: list[str],
    ecg: dict[str, Any],
) -> dict[str, Any]:
    """Windows of the reference and the detected beats of every record, and the
    reference table to score against."""
    p = SegmentationParams.for_database(ecg["ingestion"], ecg["databases"]["mitdb"])
    out: dict[str, list] = {"ref": [], "det": [], "truth": []}
    counts = {"detected": 0, "unmatched": 0, "missed": 0, "noise": 0}
    started = time.perf_counter()
    for rid in ids:
        record = read_wfdb_record(folder / rid)
        if choose_lead(record, p.leads, p.missing_lead) is None:
            continue
        out["truth"].append(reference_table(record, p))
        out["ref"].append(segment_record(record, p)[:2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beats, windows, report = segment_detected_record(
                record, p, ecg["detection"], keep_unmatched=True
            )
        out["det"].append((beats, windows))
        counts["detected"] += report["detected_beats"]
        counts["unmatched"] += report["detected_unmatched"]
        counts["missed"] += report["reference_missed"]
        counts["noise"] += report["noise_beats"]
    if not out["truth"]:
        raise SystemExit(f"No record of {ids} in {folder} has lead {p.leads}.")

    def joined(parts):
        return (
            pd.concat([b for b, _ in parts], ignore_index=True),
            np.concatenate([w for _, w in parts]),
        )

    return {
        "reference": joined(out["ref"]),
        "detected": joined(out["det"]),
        "truth": pd.concat(out["truth"], ignore_index=True),
        "counts": counts,
        "fs": p.target_fs,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="full", help="Kedro config environment")
    parser.add_argument("--root", default=str(ROOT), help="project root")
    parser.add_argument("--records", help="comma-separated ids (default: DS2 test)")
    parser.add_argument("--models", default="rhythm,autoencoder,cnn")
    args = parser.parse_args()

    print(machine_line())
    root = Path(args.root).resolve()
    params, catalog = project_config(root, args.env)
    ecg = params["ecg_autoencoder"]
    classes = list(ecg["ingestion"]["label_mapping"])
    folder = root / catalog["ecg_raw_records"]["path"]
    ids = (
        args.records.split(",")
        if args.records
        else [str(r) for r in ecg["split"]["inter_patient"]["test"]]
    )
    ids = [r for r in ids if (folder / f"{r}.hea").is_file()] or ids
    data = segment_test_records(folder, ids, ecg)
    c = data["counts"]
    print(
        f"{len(ids)} records from {folder} ({args.env}); {len(data['truth'])} reference "
        f"beats; detector {ecg['detection']['method']}: {c['detected']} detections, "
        f"{c['unmatched']} unmatched, {c['missed']} reference beats missed, "
        f"{c['noise']} flagged noise; segmenting took {data['seconds']:.1f} s"
    )
    header = f"{'model':<12} {'beats':<10} {'acc %':>6} " + " ".join(
        f"{c + ' ' + m:>8}" for c in ("S", "V") for m in ("Se %", "+P %")
    )
    print(header)
    for name in args.models.split(","):
        path = model_path(root, catalog, MODELS[name])
        model = load_model(path)
        for source in ("reference", "detected"):
            beats, windows = data[source]
            if isinstance(model, RhythmBiLSTM):  # each record's beats in their order
                probs = rhythm_probabilities(model, beats, windows)
                predictions = prediction_table(beats, probs, classes)
            else:
                predictions, _, _ = predict_beats(
                    model, beats, windows, ecg["features"], classes
                )
            scores = score_detected_beats(
                predictions[["record", "sample", "predicted"]],
                data["truth"],
                classes,
                data["fs"],
                ecg["detection"].get("match_tolerance_s", 0.15),
            )
            cells = [
                100 * scores["per_class"][k][m]
                for k in ("S", "V")
                for m in ("se", "ppv")
            ]
            print(
                f"{name:<12} {source:<10} {100 * scores['accuracy']:>6.2f} "
                + " ".join(f"{v:>8.2f}" for v in cells)
            )


if __name__ == "__main__":
    main()
