"""Experiment: the rhythm model trained on both leads of its training records,
compared on the validation records' two leads (never on test records).

Reads the beats, windows and split a finished ``kedro run --pipeline=ecg_autoencoder
[--env full]`` saved, cuts every training and validation record again on its second
lead (`segment_record_on`; V1 in most MIT-BIH records, ECG2 in SVDB), adds those beats
as records of their own (``101~V1``: a run never mixes the two leads) in the same part
as the record, and trains the rhythm model with ``--augment both`` on both copies
(selected on both leads of the validation records), ``--augment random`` on one
lead per training record (seeded; selected as ``both``), or with ``--augment none`` on the
training lead only (the pipeline's setting, for other seeds than the run's). Scores
the trained model, and with ``--run-model`` the run's own rhythm model, on the
validation beats of each lead: per database accuracy and S, V Se / +P, and the
criterion (S Se + S +P + V Se + V +P, mean of MIT-BIH and SVDB) per lead.

Usage (from the project root, after the training run)::

    python benchmarks/exp_lead_augmentation.py --env full --augment both|none
        [--seed 42] [--run-model] [--threads 1] [--save PATH]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_detected_beats import MODELS, ROOT, model_path
from bench_other_leads import CATALOG, classify, scores_of, segment_on_lead

from medlstm.core.machine import machine_line
from medlstm.core.params import project_config
from medlstm.core.persistence import load_model, save_model
from medlstm.core.threads import limit_threads
from medlstm.pipelines.ecg_autoencoder.rhythm import train_rhythm
from medlstm.pipelines.ecg_autoencoder.segmentation import SegmentationParams

PARTS = {"train": ("train", "train_unused"), "val": ("val",)}
SCORES = ("S_Se", "S_+P", "V_Se", "V_+P")


def second_lead_beats(
    root: Path, catalog: dict[str, Any], ecg: dict[str, Any], beats: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """The training and validation records' beats cut on their second lead, each
    record renamed ``<record>~<lead>`` and in the record's part (train or val)."""
    frames, arrays = [], []
    for database, cfg in ecg["databases"].items():
        prefix = str(cfg.get("record_prefix") or "")
        p = SegmentationParams.from_dict(
            {**ecg["ingestion"], "lead": [str(x) for x in cfg["leads"]]}
        )
        folder = root / catalog[CATALOG[database]]["path"]
        for part, splits in PARTS.items():
            rows = beats[(beats["database"] == database) & beats["split"].isin(splits)]
            ids = sorted(r.removeprefix(prefix) for r in rows["record"].unique())
            seg = segment_on_lead(folder, ids, database, p, "second")
            if seg["reference"] is None:
                continue
            b, w = seg["reference"]
            b["record"] = b["record"] + "~" + b["lead"]
            b["split"] = part
            frames.append(b)
            arrays.append(w)
            used = sorted(set(seg["leads"].values()) - {None})
            print(
                f"{database} {part}: {len(ids)} records, second leads {used}, {len(b)} beats"
            )
    return pd.concat(frames, ignore_index=True), np.concatenate(arrays)


def val_scores(model, sets: dict[str, tuple], ecg: dict[str, Any]) -> list[dict]:
    """Scores per lead and database of the validation beats, and the criterion."""
    rows = []
    for lead, (b, w) in sets.items():
        predictions = classify(model, b.reset_index(drop=True), w, ecg)
        per_db = []
        for database, part in predictions.groupby("database"):
            s = scores_of(part, ecg)
            per_db.append(sum(s[k] for k in SCORES))
            rows.append({"lead": lead, "database": database} | s)
        rows.append(
            {"lead": lead, "database": "criterion", "accuracy": np.mean(per_db)}
        )
    return rows


def training_set(
    beats: pd.DataFrame,
    windows: np.ndarray,
    extra: pd.DataFrame,
    extra_windows: np.ndarray,
    augment: str,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The beats the rhythm model trains and is selected on under ``augment``."""
    if augment == "both":
        train_beats = pd.concat([beats, extra], ignore_index=True)
        train_windows = np.concatenate([windows, extra_windows])
    elif augment == "random":  # each training record once, on a seeded random lead
        records = sorted(
            beats.loc[beats["split"].isin(PARTS["train"]), "record"].unique()
        )
        rng = np.random.default_rng(seed)
        second = {r for r in records if rng.random() < 0.5}
        on_second = extra["record"].str.split("~").str[0]
        keep_first = ~beats["record"].isin(second).to_numpy()
        keep_extra = (extra["split"] == "val").to_numpy() | on_second.isin(
            second
        ).to_numpy()
        print(f"{len(second)} of {len(records)} training records on their second lead")
        train_beats = pd.concat(
            [beats[keep_first], extra[keep_extra]], ignore_index=True
        )
        train_windows = np.concatenate([windows[keep_first], extra_windows[keep_extra]])
    else:
        train_beats, train_windows = beats, windows
    return train_beats, train_windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="full")
    parser.add_argument("--augment", choices=("both", "random", "none"), default="both")
    parser.add_argument("--seed", type=int, default=None, help="rhythm training seed")
    parser.add_argument(
        "--run-model", action="store_true", help="score the run's model"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save", type=Path, default=None, help="save the model here")
    args = parser.parse_args()
    if args.threads:
        limit_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(machine_line(), flush=True)
    params, catalog = project_config(ROOT, args.env)
    ecg = params["ecg_autoencoder"]
    beats = pd.read_parquet(ROOT / catalog["ecg_beats_split"]["filepath"])
    arrays = np.load(ROOT / catalog["ecg_windows"]["filepath"])
    windows = arrays["windows"]
    started = time.perf_counter()
    extra, extra_windows = second_lead_beats(ROOT, catalog, ecg, beats)
    print(f"second leads cut in {time.perf_counter() - started:.0f} s", flush=True)

    val = beats["split"].to_numpy() == "val"
    sets = {
        "training": (beats[val], windows[val]),
        "second": (
            extra[extra["split"] == "val"],
            extra_windows[extra["split"] == "val"],
        ),
    }
    rows = []
    if args.run_model:
        model = load_model(model_path(ROOT, catalog, MODELS["rhythm"]))
        rows += [{"model": "run"} | r for r in val_scores(model, sets, ecg)]

    block = copy.deepcopy(ecg["rhythm"])
    block["checkpoint_path"] = None
    block["training"]["precision"] = "fp32"
    if args.seed is not None:
        block["training"]["seed"] = args.seed
    train_beats, train_windows = training_set(
        beats, windows, extra, extra_windows, args.augment, block["training"]["seed"]
    )
    started = time.perf_counter()
    model, history = train_rhythm(
        train_beats,
        {
            "windows": train_windows,
            "record": train_beats["record"].to_numpy(dtype=str),
            "sample": train_beats["sample"].to_numpy(dtype=np.int64),
        },
        block,
        ecg["features"],
        ecg["ingestion"]["label_mapping"],
    )
    print(
        f"trained ({args.augment}, seed {block['training']['seed']}) in "
        f"{time.perf_counter() - started:.0f} s, {len(history)} epochs",
        flush=True,
    )
    if args.save:
        save_model(model, args.save)
    name = f"{args.augment}-seed{block['training']['seed']}"
    rows += [{"model": name} | r for r in val_scores(model, sets, ecg)]
    with pd.option_context(
        "display.width", 200, "display.float_format", "{:.3f}".format
    ):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
