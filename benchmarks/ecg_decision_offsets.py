"""Would per-class decision offsets chosen on validation help the ECG classifiers?

A classifier trained on one set of patients places its decision boundaries for their
class balance. Adding a log-offset ``b_c`` to each class score (``p_c * exp(b_c)``,
renormalised) moves the boundaries without retraining. This measures whether offsets
chosen on validation beats carry over to other patients, using validation data only:

- the offsets of S and V are chosen by coordinate ascent over a grid (-4 .. 4, step
  0.25; of equal scores the one nearest 0) for the project's selection rule, the mean
  over the validation sets of S Se + S +P + V Se + V +P;
- fitted on both validation sets (DS1's validation records, SVDB's validation part),
  the in-sample gain is printed;
- fitted on one validation set and scored on the other (cross-fitting): the honest
  estimate of what offsets do for patients they were not chosen on.

No test beat is read. Reads the beat table and windows of a finished ``kedro run
--pipeline=ecg_autoencoder --env full`` and the models it left in data/06_models.

Usage (from the project root)::

    python benchmarks/ecg_decision_offsets.py [--root RUN] [--scheme inter_patient_svdb]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from bench_ecg_autoencoder import load_params, load_run_inputs
from select_ecg_linear import validation_score

import medlstm.models  # noqa: F401 - registers the architectures
from medlstm.core.evaluation import classification_metrics
from medlstm.core.machine import machine_line
from medlstm.core.persistence import load_model
from medlstm.pipelines.ecg_autoencoder.linear import predict_val_linear
from medlstm.pipelines.ecg_autoencoder.splitting import assign_splits
from medlstm.pipelines.ecg_autoencoder.training import predict_val

ROOT = Path(__file__).resolve().parents[1]
GRID = np.round(np.arange(-4.0, 4.01, 0.25), 2)
Sets = list[tuple[np.ndarray, np.ndarray]]  # (log probs (n, C), class indices (n,))


def score(sets: Sets, offsets: np.ndarray, classes: list[str]) -> float:
    """The selection rule (`select_ecg_linear.validation_score`) over the sets, mean,
    with ``offsets`` added to the log probabilities."""
    return float(
        np.mean(
            [
                validation_score(
                    classification_metrics(y, (lp + offsets).argmax(1), classes)
                )
                for lp, y in sets
            ]
        )
    )


def choose_offsets(sets: Sets, classes: list[str]) -> np.ndarray:
    """Coordinate ascent over the S and V offsets; the other classes keep 0."""
    offsets = np.zeros(len(classes))
    best = score(sets, offsets, classes)
    candidates = sorted(GRID, key=lambda g: (abs(g), g))
    for _ in range(4):
        moved = False
        for c in (classes.index("S"), classes.index("V")):
            for value in candidates:
                trial = offsets.copy()
                trial[c] = value
                if (trial_score := score(sets, trial, classes)) > best + 1e-12:
                    best, offsets, moved = trial_score, trial, True
        if not moved:
            break
    return offsets


def by_database(
    predictions: pd.DataFrame, classes: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{database: (log probs (n, C), class indices (n,))}`` of validation beats."""
    out = {}
    for name, part in predictions.groupby("database"):
        probs = part[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)
        y = part["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
        out[name] = (np.log(np.clip(probs, 1e-30, None)), y)
    return out


def _shown(offsets: np.ndarray, classes: list[str]) -> str:
    return " ".join(f"{c} {offsets[classes.index(c)]:+.2f}" for c in ("S", "V"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder of the run")
    parser.add_argument("--scheme", default="inter_patient_svdb")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(machine_line(), flush=True)
    params = load_params("full")["ecg_autoencoder"]
    classes = list(params["ingestion"]["label_mapping"])
    beats, windows = load_run_inputs(args.root)
    split, _ = assign_splits(beats, params["split"] | {"scheme": args.scheme})
    models = args.root / "data/06_models"
    predictions = {
        "linear": predict_val_linear(
            json.loads((models / "ecg_linear.json").read_text()), split, windows
        )
    }
    for name, file in (
        ("cnn", "ecg_cnn1d.pt"),
        ("autoencoder", "ecg_lstm_autoencoder.pt"),
    ):
        model = load_model(models / file)
        predictions[name] = predict_val(
            model,
            split,
            windows,
            params["features"],
            params["ingestion"]["label_mapping"],
        )
    print(f"protocol {args.scheme}; rule: mean over validation sets of S Se+P + V Se+P")
    for name, table in predictions.items():
        sets = by_database(table, classes)
        zero = np.zeros(len(classes))
        both = choose_offsets(list(sets.values()), classes)
        print(
            f"\n{name}: fitted on both, offsets {_shown(both, classes)}: "
            f"{score(list(sets.values()), zero, classes):.3f} -> "
            f"{score(list(sets.values()), both, classes):.3f} (in-sample)"
        )
        for fitted_on, other in (tuple(sets), tuple(sets)[::-1]):
            offsets = choose_offsets([sets[fitted_on]], classes)
            print(
                f"  fitted on {fitted_on} ({_shown(offsets, classes)}), scored on "
                f"{other}: {score([sets[other]], zero, classes):.3f} -> "
                f"{score([sets[other]], offsets, classes):.3f}"
            )


if __name__ == "__main__":
    main()
