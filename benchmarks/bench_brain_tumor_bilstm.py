"""Full-data benchmark of brain_tumor_bilstm: ingestion speed, training throughput and
the accuracy of each training variant on the published and the deduplicated test set.

Run from the project root (the allocator setting is the Makefile's: up to 2x faster
LSTM training)::

    # ingestion (all ~7,000 images through the catalog) and the duplicate audit
    nice python benchmarks/bench_brain_tumor_bilstm.py ingest

    # training samples/s of the BiLSTM, batch 32: 1 vs 2 torch threads, bf16 autocast
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        nice python benchmarks/bench_brain_tumor_bilstm.py throughput

    # one variant = one `kedro run --pipeline=brain_tumor_bilstm --env full` with that
    # variant's runtime parameters, logged to MLflow like any run; prints its numbers
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        nice python benchmarks/bench_brain_tumor_bilstm.py train --variant original

    # the table of every variant's latest run in the MLflow store
    python benchmarks/bench_brain_tumor_bilstm.py summary

``VARIANTS`` below is the single list of variants; docs/brain_tumor_bilstm.md shows
the same parameters as ``kedro run --params`` command lines.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from medlstm.core.machine import machine_line
from medlstm.core.threads import limit_threads

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "brain_tumor_bilstm"

VARIANTS: dict[str, dict[str, Any]] = {
    # The published schedule: conf/full/parameters_brain_tumor_bilstm.yml as it is.
    "original": {},
    # Same architecture, longer schedule: early stopping and lr halving get more room.
    "long": {
        "training": {
            "epochs": 100,
            "early_stopping_patience": 12,
            "lr_plateau_patience": 4,
        },
    },
    # Longer schedule + label smoothing + gradient clipping + richer augmentation.
    "long_ls_aug": {
        "training": {
            "epochs": 100,
            "early_stopping_patience": 12,
            "lr_plateau_patience": 4,
            "label_smoothing": 0.1,
            "grad_clip_norm": 1.0,
        },
        "augmentation": {
            "rotation_degrees": 15,
            "translate": 0.05,
            "brightness": 0.1,
            "contrast": 0.1,
        },
    },
    # long_ls_aug with room to converge: the learning rate is halved less eagerly.
    "extended": {
        "training": {
            "epochs": 200,
            "early_stopping_patience": 25,
            "lr_plateau_patience": 8,
            "label_smoothing": 0.1,
            "grad_clip_norm": 1.0,
        },
        "augmentation": {
            "rotation_degrees": 15,
            "translate": 0.05,
            "brightness": 0.1,
            "contrast": 0.1,
        },
    },
}
# extended in bfloat16 autocast: does ~1.9x faster training keep the accuracy?
# Where bf16 cannot run (AVX2-only CPUs) the run stops before any node, saying so.
VARIANTS["extended_bf16"] = VARIANTS["extended"] | {
    "training": VARIANTS["extended"]["training"] | {"precision": "bf16"}
}


def _runtime_params(name: str, threads: int | None = None) -> dict[str, Any]:
    overrides = json.loads(json.dumps(VARIANTS[name]))
    overrides.setdefault("training", {})["show_progress"] = False
    if threads:
        overrides["training"]["num_threads"] = threads
    overrides["variant"] = {"name": name, "description": _describe(name)}
    return {PIPELINE: overrides}


def _describe(name: str) -> str:
    if not VARIANTS[name]:
        return "The published architecture and schedule (conf/full as shipped)."
    flat = [
        f"{section}.{key}={value}"
        for section, values in VARIANTS[name].items()
        for key, value in values.items()
    ]
    return "conf/full plus " + ", ".join(flat)


def bench_ingest(env: str) -> None:
    """Time loading every image through the catalog, and the duplicate audit."""
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DataCatalog

    from medlstm.pipelines.brain_tumor_bilstm.audit import audit_duplicates
    from medlstm.pipelines.brain_tumor_bilstm.ingestion import ingest_images

    bootstrap_project(ROOT)
    config = settings.CONFIG_LOADER_CLASS(
        conf_source=str(ROOT / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    params = config["parameters"][PIPELINE]
    names = ("brain_mri_raw_training", "brain_mri_raw_testing")
    catalog = DataCatalog.from_config({n: config["catalog"][n] for n in names})
    started, cpu_started = time.perf_counter(), time.process_time()
    training, testing = (catalog.load(n) for n in names)
    listed = time.perf_counter()
    images, index, quality = ingest_images(
        training, testing, params["data"], params["ingestion"]
    )
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    _, _, audit = audit_duplicates(images, index, params["audit"])
    audited = time.perf_counter()
    print(f"images ingested: {len(index)} (skipped {quality['n_skipped']})")
    print(f"list partitions: {listed - started:.1f} s")
    print(f"decode + grayscale + resize + hash: {loaded - listed:.1f} s")
    print(
        f"ingestion total (catalog load + node): {loaded - started:.1f} s wall, "
        f"{cpu_loaded - cpu_started:.1f} s CPU (wall exceeds CPU when the cores are shared)"
    )
    print(f"duplicate audit: {audited - loaded:.1f} s")
    leak = audit["testing_with_training_duplicate"]
    print(f"Testing images with a Training duplicate: {leak['total']} of {leak['of']}")


def bench_throughput(batches: int) -> None:
    """Training samples per second of the published model, batch 32, augmentation on,
    for 1 and 2 torch threads in float32 and 1 thread with bf16 autocast (where a
    bf16 LSTM runs on this CPU; otherwise that row says why it is missing)."""
    import torch

    from medlstm.core.precision import autocast, bf16_support
    from medlstm.models.brain_bilstm import BrainBiLSTM
    from medlstm.pipelines.brain_tumor_bilstm.training import (
        augment_batch,
        check_augmentation,
    )

    augmentation = check_augmentation(
        {"enabled": True, "hflip_probability": 0.5, "rotation_degrees": 10, "zoom": 0.1}
    )
    bf16_runs, why = bf16_support("cpu")
    for threads, bf16 in ((1, False), (2, False), (1, True)):
        if bf16 and not bf16_runs:
            print(f"{threads} thread(s), bf16 autocast: not measured, {why}")
            continue
        limit_threads(threads)
        torch.manual_seed(0)
        model = BrainBiLSTM()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.rand(32, 64, 64), torch.randint(0, 4, (32,))
        times = []
        for step in range(batches + 2):
            start = time.perf_counter()
            batch = (augment_batch(x, augmentation), y)
            with autocast("bf16" if bf16 else "fp32"):
                logits = model(batch[0])
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= 2:  # warm-up: oneDNN picks its kernels on the first calls
                times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2]
        print(
            f"{threads} thread(s), {'bf16 autocast' if bf16 else 'float32'}: "
            f"{32 / median:.0f} training samples/s (median of {batches} batches)"
        )


def bench_train(name: str, env: str, threads: int | None = None) -> None:
    """One pipeline run of a variant; prints the numbers the run logged."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    os.chdir(ROOT)
    bootstrap_project(ROOT)
    started = time.perf_counter()
    with KedroSession.create(
        project_path=ROOT, env=env, runtime_params=_runtime_params(name, threads)
    ) as session:
        session.run(pipeline_names=[PIPELINE])
    wall = time.perf_counter() - started
    reporting = ROOT / "data/08_reporting"
    metrics = json.loads((reporting / "brain_bilstm_test_metrics.json").read_text())
    summary = json.loads((reporting / "brain_bilstm_training_summary.json").read_text())
    print(f"variant {name}: pipeline wall time {wall / 60:.1f} min")
    _print_row(name, metrics, summary)
    print(f"report: {reporting / 'brain_bilstm_report.md'}")


def _print_row(name: str, metrics: dict[str, Any], summary: dict[str, Any]) -> None:
    p, d = metrics["published"], metrics["deduplicated"]
    print(
        f"| {name} | {p['accuracy']:.4f} | {p['macro_f1']:.4f} | {d['accuracy']:.4f} | "
        f"{d['macro_f1']:.4f} (n = {d['n']}) | {summary['best_epoch']} / "
        f"{summary['epochs_run']} | {summary['seconds_to_best_epoch'] / 60:.1f} min |"
    )


def _run_json(client: Any, run_id: str, artifact: str) -> dict[str, Any]:
    local = client.download_artifacts(run_id, f"{PIPELINE}/{artifact}.json")
    return json.loads(Path(local).read_text())


def bench_summary() -> None:
    """The latest MLflow run of every variant as a Markdown table."""
    import mlflow

    os.chdir(ROOT)
    client = mlflow.MlflowClient(
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    experiment = client.get_experiment_by_name(f"medlstm/{PIPELINE}")
    if experiment is None:
        print("No brain_tumor_bilstm runs yet.")
        return
    print(
        "| variant | published acc | published macro F1 | dedup acc | dedup macro F1 | "
        "best / run epochs | time to best |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in VARIANTS:
        runs = client.search_runs(
            [experiment.experiment_id],
            # Full-data runs only: the excerpt's Testing split has 80 images.
            f"params.`{PIPELINE}.variant.name` = '{name}' and "
            f"metrics.`{PIPELINE}.test_published.n` > 1000",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            continue
        run = runs[0]
        metrics, summary = (
            _run_json(client, run.info.run_id, artifact)
            for artifact in (
                "brain_bilstm_test_metrics",
                "brain_bilstm_training_summary",
            )
        )
        _print_row(name, metrics, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("ingest", "throughput", "train", "summary"))
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="original")
    parser.add_argument(
        "--env", default="full", help="Kedro environment (default: full)"
    )
    parser.add_argument(
        "--batches", type=int, default=30, help="throughput: timed batches"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="train: override training.num_threads"
    )
    args = parser.parse_args()
    print(machine_line(args.threads), flush=True)
    if args.stage == "ingest":
        bench_ingest(args.env)
    elif args.stage == "throughput":
        bench_throughput(args.batches)
    elif args.stage == "train":
        bench_train(args.variant, args.env, args.threads)
    else:
        bench_summary()


if __name__ == "__main__":
    main()
