"""Choose the linear baseline's settings on validation data only, for both protocols.

Reads the beat table and windows of a finished ``kedro run --pipeline=ecg_autoencoder
--env full`` (data/02_intermediate/ecg_beats.parquet, data/05_model_input/ecg_windows.npz),
splits them under each protocol with the pipeline's own ``assign_splits``, fits every
candidate setting on the training part and scores it on the validation parts: DS1's
validation records and SVDB's validation part, apart. No test beat is read.

The rule: the highest mean over the two validation sets of S Se + S +P + V Se + V +P.

Usage (from the project root)::

    python benchmarks/select_ecg_linear.py [--root PATH_OF_THE_RUN] [--env full]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from bench_ecg_autoencoder import load_params, load_run_inputs

from medlstm.core.machine import machine_line
from medlstm.pipelines.ecg_autoencoder.linear import predict_val_linear, train_linear
from medlstm.pipelines.ecg_autoencoder.reporting import by_test_set, evaluate
from medlstm.pipelines.ecg_autoencoder.splitting import assign_splits

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    {"model": "logistic", "C": c, "class_weighting": "balanced"}
    for c in (0.01, 0.1, 1.0, 10.0)
] + [{"model": "lda"}]


def validation_score(metrics: dict) -> float:
    """S Se + S +P + V Se + V +P of one validation set."""
    pc = metrics["per_class"]
    return sum(pc[c][k] for c in ("S", "V") for k in ("recall", "precision"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder of the run")
    parser.add_argument("--env", default="full")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(machine_line(), flush=True)
    params = load_params(args.env)["ecg_autoencoder"]
    beats, windows = load_run_inputs(args.root)
    labels = params["ingestion"]["label_mapping"]
    for scheme in ("inter_patient", "inter_patient_svdb"):
        split, _ = assign_splits(beats, params["split"] | {"scheme": scheme})
        print(
            f"\nprotocol {scheme}: {int((split['split'] == 'train').sum())} training beats"
        )
        results = []
        for candidate in CANDIDATES:
            setting = params["linear"] | candidate
            started = time.perf_counter()
            model = train_linear(split, windows, setting, params["ingestion"], labels)
            val = by_test_set(
                evaluate(predict_val_linear(model, split, windows), labels)
            )
            scores = {db: validation_score(m) for db, m in val.items()}
            results.append((float(np.mean(list(scores.values()))), candidate))
            cells = "; ".join(
                f"{db} S {m['per_class']['S']['recall']:.3f} / "
                f"{m['per_class']['S']['precision']:.3f}, V "
                f"{m['per_class']['V']['recall']:.3f} / "
                f"{m['per_class']['V']['precision']:.3f}"
                for db, m in val.items()
            )
            print(
                f"  {candidate}: {cells}; score {results[-1][0]:.3f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        best = max(results, key=lambda r: r[0])
        print(f"  chosen on validation: {best[1]} (score {best[0]:.3f})")


if __name__ == "__main__":
    main()
