"""Leave-records-out cross-validation of ecg_autoencoder settings over DS1.

The five validation records hold 193 S beats and every one of them is easy, so they
cannot tell two settings apart on what matters: S beats of patients unlike the
training ones. This script holds out whole DS1 records instead. The training records
are dealt into ``--folds`` groups (sorted by S beats, round robin, so every fold
holds S-rich records); each group is predicted by a model trained on the others,
and the out-of-fold predictions of all DS1 beats are pooled into one Se / +P table
per setting. DS2 is never read.

Training follows conf/<env>: the same model, loss, class weights and N cap
(``split.max_train_beats_per_class``), for a fixed ``--epochs`` (the held-out records
must not pick the epoch); 600 held-out beats are monitored for the progress log only.

Usage (from the project root, full database)::

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        python benchmarks/cv_ecg_autoencoder.py --threads 2 \\
        --setting small model.latent_size=32 \\
        --setting focal loss.focal_gamma=2
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from bench_ecg_autoencoder import ROOT, load_params

from medlstm.core.evaluation import classification_metrics
from medlstm.core.machine import machine_line
from medlstm.core.threads import limit_threads
from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.splitting import cap_training_beats
from medlstm.pipelines.ecg_autoencoder.training import (
    label_indices,
    predict_beats,
    train_autoencoder,
    train_cnn,
)

MONITORED_BEATS = 600


def record_folds(beats: pd.DataFrame, records: list[str], k: int) -> list[list[str]]:
    """``records`` dealt into ``k`` folds, sorted by S beats so each fold gets some."""
    s_beats = beats[beats["label"] == "S"].groupby("record").size()
    ordered = sorted(records, key=lambda r: (-s_beats.get(r, 0), r))
    return [ordered[i::k] for i in range(k)]


def fold_split(
    beats: pd.DataFrame, held_out: list[str], train: list[str], cap: int | None
) -> np.ndarray:
    """Split labels for one fold: train (capped by the pipeline's own
    `cap_training_beats`), val (a few held-out beats, monitored only), held_out (the
    rest), other."""
    record = beats["record"].to_numpy()
    split = pd.Series("other", index=beats.index, dtype=object)
    split[np.isin(record, train)] = "train"
    split = cap_training_beats(split, beats["label"], cap, seed=42).to_numpy(copy=True)
    held = np.random.default_rng(42).permutation(
        np.flatnonzero(np.isin(record, held_out))
    )
    split[held] = "held_out"
    split[held[:MONITORED_BEATS]] = "val"
    return split


def apply_overrides(block: dict, overrides: list[str]) -> dict:
    """``model.latent_size=32`` -> block["model"]["latent_size"] = 32."""
    block = copy.deepcopy(block)
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        target = block
        for name in parents:
            target = target.setdefault(name, {})
        target[leaf] = yaml.safe_load(value)
    return block


def route_overrides(overrides: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Overrides for the top-level loss weights (``alpha=``, ``beta=``), for the
    features block (``features.`` stripped) and for the model's block (the rest:
    ``model.``, ``loss.``, ``training.`` keys)."""
    top, features, block = [], [], []
    for item in overrides:
        key = item.partition("=")[0]
        if key in ("alpha", "beta"):
            top.append(item)
        elif key.startswith("features."):
            features.append(item.removeprefix("features."))
        else:
            block.append(item)
    return top, features, block


def pooled_scores(pred: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    """Accuracy and per-class Se / +P of the pooled out-of-fold predictions."""
    metrics = classification_metrics(
        label_indices(pred["label"], classes),
        label_indices(pred["predicted"], classes),
        classes,
    )
    scores = {"accuracy": metrics["accuracy"], "n": metrics["n"]}
    for c, m in metrics["per_class"].items():
        scores[f"{c}_Se"], scores[f"{c}_+P"] = m["recall"], m["precision"]
    return scores


def average_predictions(preds: list[pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """The ensemble of out-of-fold predictions of the same beats: mean probabilities."""
    key = ["record", "sample"]
    preds = [p.sort_values(key).reset_index(drop=True) for p in preds]
    for other in preds[1:]:
        if not other[key].equals(preds[0][key]):
            raise ValueError("The prediction files do not cover the same beats.")
    columns = [f"p_{c}" for c in classes]
    mean = np.mean([p[columns].to_numpy() for p in preds], axis=0)
    out = preds[0][key + ["label"]].copy()
    out[columns] = mean
    out["predicted"] = np.asarray(classes)[mean.argmax(axis=1)]
    return out


def print_average(paths: list[Path], params: dict) -> None:
    """Pooled scores of each file and of their average (see `average_predictions`)."""
    classes = list(params["ecg_autoencoder"]["ingestion"]["label_mapping"])
    preds = [pd.read_parquet(path) for path in paths]
    named = [(path.stem, p) for path, p in zip(paths, preds, strict=True)]
    for name, pred in [*named, ("average", average_predictions(preds, classes))]:
        print(score_line(name, pooled_scores(pred, classes)))


def score_line(name: str, s: dict[str, float]) -> str:
    """One printed line: accuracy, S and V Se / +P, and their sum (the selection rule)."""
    total = s["S_Se"] + s["S_+P"] + s["V_Se"] + s["V_+P"]
    return (
        f"{name:>16}: acc {s['accuracy']:.3f}  S Se/+P {s['S_Se']:.3f}/{s['S_+P']:.3f}"
        f"  V Se/+P {s['V_Se']:.3f}/{s['V_+P']:.3f}  sum {total:.2f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="full", help="conf/<env> (default: full)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/mitdb")
    parser.add_argument(
        "--model", choices=("autoencoder", "cnn"), default="autoencoder"
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--setting", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
        help="a named setting and its overrides: keys of the model's block "
        "(model.latent_size=16, loss.focal_gamma=2), features.KEY=VALUE, alpha=, "
        "beta=; ensemble_seeds=[] for one model with training.seed; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--average", nargs="+", type=Path, metavar="PARQUET",
        help="train nothing: score the per-beat mean of the class probabilities in "
        "these out-of-fold files (e.g. one setting's seeds), and each file alone",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "data/08_reporting")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        limit_threads(args.threads)
    print(machine_line(), flush=True)
    if args.average:
        print_average(args.average, load_params(args.env))
        return
    settings = args.setting or [["as_configured"]]
    args.out.mkdir(parents=True, exist_ok=True)

    params = load_params(args.env)
    cfg = params["ecg_autoencoder"]
    classes = list(cfg["ingestion"]["label_mapping"])
    beats, windows, _ = segment_records(
        WfdbRecordsDataset(str(args.data)).load(), cfg["ingestion"]
    )
    ds1 = [str(r) for r in cfg["split"]["inter_patient"]["train"]]
    folds = record_folds(
        beats, [r for r in ds1 if r in set(beats["record"])], args.folds
    )
    print("folds (records held out together):", folds)
    train_fn = train_autoencoder if args.model == "autoencoder" else train_cnn

    results = {}
    for name, *overrides in settings:
        top, feature_items, block_items = route_overrides(overrides)
        block = apply_overrides(cfg[args.model], block_items)
        features = apply_overrides(cfg["features"], feature_items)
        weights = apply_overrides(
            {"alpha": params["alpha"], "beta": params["beta"]}, top
        )
        extra = (
            (weights["alpha"], weights["beta"]) if args.model == "autoencoder" else ()
        )
        block["checkpoint_path"] = None
        block["training"] = {
            **block["training"], "epochs": args.epochs, "early_stopping_patience": None,
            "monitor": "train_loss", "num_threads": args.threads, "show_progress": False,
        }  # fmt: skip
        out_of_fold, started = [], time.perf_counter()
        for held_out in folds:
            train = [r for r in ds1 if r not in held_out]
            split = fold_split(
                beats, held_out, train, cfg["split"]["max_train_beats_per_class"]
            )
            keep = split != "other"
            part = beats.assign(split=split)[keep].reset_index(drop=True)
            arrays = {key: values[keep] for key, values in windows.items()}
            model, _ = train_fn(
                part, arrays, block, features, cfg["ingestion"]["label_mapping"],
                *extra,
            )  # fmt: skip
            test = part["split"].isin(["val", "held_out"]).to_numpy()
            pred, _, _ = predict_beats(
                model, part[test], arrays["windows"][test], features, classes
            )
            out_of_fold.append(pred)
        pred = pd.concat(out_of_fold, ignore_index=True)
        pred.to_parquet(args.out / f"ecg_{args.model}_ds1_cv_{name}.parquet")
        scores = pooled_scores(pred, classes)
        scores["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = {"overrides": overrides, **scores}
        print(f"{score_line(name, scores)}  ({scores['seconds']:.0f} s)", flush=True)
    path = args.out / f"ecg_{args.model}_ds1_cv.json"
    path.write_text(
        json.dumps({"folds": folds, "epochs": args.epochs, **results}, indent=2)
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
