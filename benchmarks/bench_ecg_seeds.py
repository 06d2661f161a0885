"""Seed repeats of ecg_autoencoder: k trainings of each model on one ingestion, every
score as the mean (min-max) over the seeds.

One run's scores move with the seed and the CPU by more than the gaps between
settings near a target, so a claim is judged on the mean of several seeds on one
named machine. This script runs the pipeline's own nodes through Kedro sessions (each
repeat is an MLflow run of its own):

1. the ingestion once (``--to-nodes=ecg_autoencoder.ingestion.assign_splits``);
2. for each repeat, the chosen models' nodes from their training on, with every
   seed of the committed setting moved by ``1000 * repeat`` (repeat 0 is the setting
   as committed; an ensemble's seeds all move);
3. the validation scores of every repeat, and with ``--test`` the test scores, per
   model and database: accuracy, macro F1, S and V Se / +P, then their mean
   (min-max) over the repeats. Without ``--test`` no test beat is predicted: the
   mode for choosing settings.

Usage (from the project root)::

    python benchmarks/bench_ecg_seeds.py --env full --repeats 3 --precision fp32 \\
        [--models rhythm autoencoder cnn linear] [--scheme inter_patient_svdb] [--test]
        [--threads 2] [--params KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medlstm.core.machine import machine_line
from medlstm.core.params import nest_dotted, project_config
from medlstm.core.threads import limit_threads
from medlstm.pipelines.ecg_autoencoder.reporting import by_test_set

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "ecg_autoencoder"
MODELS = ("rhythm", "autoencoder", "cnn", "linear")
SEEDED = ("rhythm", "autoencoder", "cnn")  # the linear model has no seed
SCORES = ("accuracy", "macro_f1", "S_Se", "S_+P", "V_Se", "V_+P")
SEED_STEP = 1000


def load_params(env: str) -> dict[str, Any]:
    """The parameters of ``env`` merged over base, as ``kedro run --env`` merges them."""
    return project_config(ROOT, env)[0]


def seed_overrides(
    params: dict[str, Any], models: list[str], repeat: int
) -> dict[str, Any]:
    """Dotted parameter overrides that move every seed of ``models`` by
    ``SEED_STEP * repeat`` (nothing for repeat 0)."""
    if repeat == 0:
        return {}
    block = params[PIPELINE]
    overrides: dict[str, Any] = {}
    for model in models:
        if model not in SEEDED:
            continue
        seed = block[model]["training"].get("seed", 42)
        overrides[f"{PIPELINE}.{model}.training.seed"] = seed + SEED_STEP * repeat
        members = block[model].get("ensemble_seeds") or []
        if members:
            overrides[f"{PIPELINE}.{model}.ensemble_seeds"] = [
                s + SEED_STEP * repeat for s in members
            ]
    return overrides


def node_names(models: list[str], test: bool) -> tuple[list[str], list[str]]:
    """``from_nodes`` (each model's training) and ``to_nodes`` (its validation
    scores, and with ``test`` its test scores) of one repeat."""
    starts = [f"{PIPELINE}.{m}.train_{m}" for m in models]
    ends = [f"{PIPELINE}.{m}.evaluate_val_{m}" for m in models]
    if test:
        ends += [f"{PIPELINE}.{m}.evaluate_{m}" for m in models]
    return starts, ends


def run(env: str, overrides: dict[str, Any], **nodes: list[str]) -> float:
    """One Kedro session of the pipeline; its wall time in seconds."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    started = time.perf_counter()
    with KedroSession.create(
        project_path=ROOT, env=env, runtime_params=nest_dotted(overrides)
    ) as session:
        session.run(pipeline_names=[PIPELINE], **nodes)
    return time.perf_counter() - started


def scores(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Database -> the headline scores of one metrics file."""
    out = {}
    for database, m in by_test_set(metrics).items():
        pc = m["per_class"]
        out[database] = {
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "S_Se": pc["S"]["recall"],
            "S_+P": pc["S"]["precision"],
            "V_Se": pc["V"]["recall"],
            "V_+P": pc["V"]["precision"],
        }
    return out


def collect(models: list[str], parts: list[str], repeat: int) -> list[dict[str, Any]]:
    """Rows (repeat, model, part, database, scores) from this repeat's reports."""
    rows = []
    for model in models:
        for part in parts:
            path = ROOT / f"data/08_reporting/ecg_{model}_{part}_metrics.json"
            for database, values in scores(json.loads(path.read_text())).items():
                rows.append(
                    {"repeat": repeat, "model": model, "part": part}
                    | {"database": database, **values}
                )
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, part and database: each score as "mean (min-max)" over the repeats."""

    def cell(values: pd.Series) -> str:
        v = values.to_numpy(dtype=float)
        return f"{np.mean(v):.3f} ({np.min(v):.3f}-{np.max(v):.3f})"

    grouped = table.groupby(["model", "part", "database"], sort=False)
    out = grouped[list(SCORES)].agg(cell)
    out.insert(0, "repeats", grouped.size())
    return out.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="full", help="Kedro environment")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per model")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--scheme", choices=("inter_patient", "inter_patient_svdb"), default=None
    )
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default="fp32",
        help="training.precision of every torch model (default fp32)",
    )  # fmt: skip
    parser.add_argument(
        "--test", action="store_true",
        help="also predict and score the test beats (once per committed setting)",
    )  # fmt: skip
    parser.add_argument(
        "--skip-ingestion", action="store_true",
        help="reuse the beats and windows of the last ingestion",
    )  # fmt: skip
    parser.add_argument(
        "--params", nargs="*", default=[], metavar="KEY=VALUE",
        help="more overrides, e.g. ecg_autoencoder.rhythm.sequence_length=32",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="CSV of every repeat")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        limit_threads(args.threads)
    print(machine_line(), flush=True)
    params = load_params(args.env)
    common: dict[str, Any] = {}
    if args.scheme:
        common[f"{PIPELINE}.split.scheme"] = args.scheme
    for model in set(args.models) & set(SEEDED):
        common[f"{PIPELINE}.{model}.training.precision"] = args.precision
    for item in args.params:
        key, _, value = item.partition("=")
        common[key] = yaml.safe_load(value)
    print(f"settings: env {args.env}, overrides {common}", flush=True)
    if not args.skip_ingestion:
        seconds = run(
            args.env, common, to_nodes=[f"{PIPELINE}.ingestion.assign_splits"]
        )
        print(f"ingestion: {seconds:.0f} s", flush=True)
    starts, ends = node_names(args.models, args.test)
    parts = ["val", "test"] if args.test else ["val"]
    rows = []
    for repeat in range(args.repeats):
        overrides = {**common, **seed_overrides(params, args.models, repeat)}
        seconds = run(args.env, overrides, from_nodes=starts, to_nodes=ends)
        seeds = {k: v for k, v in overrides.items() if "seed" in k}
        print(f"repeat {repeat} ({seeds or 'committed seeds'}): {seconds:.0f} s")
        new = collect(args.models, parts, repeat)
        for row in new:
            values = ", ".join(f"{k} {row[k]:.3f}" for k in SCORES)
            print(f"  {row['model']} {row['part']} {row['database']}: {values}")
        rows += new
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"\nmean (min-max) over {args.repeats} repeats:")
    print(summarise(table).to_string(index=False))


if __name__ == "__main__":
    main()
