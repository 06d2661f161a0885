"""Benchmark of ecg_autoencoder on the full MIT-BIH database (issue 3 targets).

Prints:
1. ingestion: reading and segmenting all 48 records (target <= 15 s on 2 cores);
2. epoch: one training epoch of the LSTM autoencoder over all DS1 beats (~51k;
   target <= 180 s, aim 60 s), with the settings of conf/<env>/parameters;
3. metrics: DS2 test accuracy and S / V Se and +P of both models, against the
   floor and aim of the issue. ``--run`` first runs
   ``kedro run --pipeline=ecg_autoencoder --env full`` (long); without it the
   figures come from the last run's data/08_reporting/*_test_metrics.json.

Usage (from the project root; the allocator settings are worth up to 2x for LSTMs,
see docs/ecg_autoencoder.md)::

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        python benchmarks/bench_ecg_autoencoder.py --threads 2 [--run] [--skip-epoch]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import Subset

from medlstm.core.training import TrainingParams, fit, seed_everything
from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.models.ecg_autoencoder import LSTMAutoencoderClassifier
from medlstm.pipelines.ecg_autoencoder.ingestion import segment_records
from medlstm.pipelines.ecg_autoencoder.modelling import autoencoder_loss, split_tensors

ROOT = Path(__file__).resolve().parents[1]
FLOOR = {"accuracy": 0.90, "V_Se": 0.85, "V_+P": 0.85, "S_Se": 0.60}
AIM = {"accuracy": 0.95, "V_Se": 0.92, "V_+P": 0.92, "S_Se": 0.80, "S_+P": 0.60}


def load_params(env: str) -> dict:
    """Parameters of ``env`` (whole top-level keys replace base's, as in Kedro)."""
    params = yaml.safe_load(
        (ROOT / "conf/base/parameters_ecg_autoencoder.yml").read_text()
    )
    override = ROOT / f"conf/{env}/parameters_ecg_autoencoder.yml"
    if env != "base" and override.exists():
        params.update(yaml.safe_load(override.read_text()))
    return params


def bench_ingestion(source: Path, params: dict) -> tuple:
    started = time.perf_counter()
    records = WfdbRecordsDataset(str(source)).load()
    loaded = time.perf_counter()
    beats, windows, _ = segment_records(records, params["ecg_autoencoder"]["ingestion"])
    done = time.perf_counter()
    print(
        f"ingestion: {len(records)} records, {len(beats)} beats in {done - started:.1f} s "
        f"(read {loaded - started:.1f} s, segment {done - loaded:.1f} s; target <= 15 s)"
    )
    return beats, windows


def bench_epoch(beats, windows, params: dict, fraction: float) -> None:
    cfg = params["ecg_autoencoder"]
    ds1 = {str(r) for r in cfg["split"]["inter_patient"]["train"]}
    beats = beats.assign(split=np.where(beats["record"].isin(ds1), "train", "other"))
    classes = list(cfg["ingestion"]["label_mapping"])
    train = split_tensors(beats, windows, "train", cfg["features"], classes)
    n = int(round(fraction * len(train)))
    train = Subset(train, range(n)) if n < len(train) else train
    val = Subset(train, range(256))
    block = cfg["autoencoder"]
    training = TrainingParams.from_dict(
        {**block["training"], "epochs": 1, "show_progress": False, "resume": False}
    )
    seed_everything(training.seed)
    model = LSTMAutoencoderClassifier(
        seq_len=windows["windows"].shape[1],
        n_classes=len(classes),
        n_rr_features=len(cfg["features"]["rr_columns"]),
        **block["model"],
    )
    loss = autoencoder_loss(
        float(params["alpha"]),
        float(params["beta"]),
        precision=block["loss"].get("precision", "fp32"),
    )
    cpu_started = time.process_time()
    result = fit(model, train, val, training, batch_loss=loss)
    cpu = time.process_time() - cpu_started
    seconds = result.history[0]["epoch_seconds"]
    scale = len(beats[beats["split"] == "train"]) / n
    # CPU time is what the epoch costs with its threads' cores to itself; on a
    # machine shared with other jobs the wall time is longer by the contention.
    print(
        f"epoch: {n} DS1 beats in {seconds:.1f} s wall ({n / seconds:.0f} beats/s), "
        f"{cpu:.1f} s CPU -> full DS1 epoch ({round(n * scale)} beats): "
        f"{seconds * scale:.0f} s wall, {cpu * scale:.0f} s CPU "
        f"(target <= 180 s, aim 60 s); batch {training.batch_size}, "
        f"{block['loss'].get('precision', 'fp32')}, {torch.get_num_threads()} threads"
    )


def run_pipeline(env: str) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    started = time.perf_counter()
    with KedroSession.create(project_path=ROOT, env=env) as session:
        session.run(pipeline_names=["ecg_autoencoder"])
    print(
        f"kedro run --pipeline=ecg_autoencoder --env {env}: {time.perf_counter() - started:.0f} s"
    )


def print_metrics() -> None:
    for model in ("autoencoder", "cnn"):
        path = ROOT / f"data/08_reporting/ecg_{model}_test_metrics.json"
        if not path.exists():
            print(f"metrics: {path} not found; run with --run first")
            continue
        m = json.loads(path.read_text())
        pc = m["per_class"]
        got = {
            "accuracy": m["accuracy"],
            "V_Se": pc["V"]["recall"],
            "V_+P": pc["V"]["precision"],
            "S_Se": pc["S"]["recall"],
            "S_+P": pc["S"]["precision"],
        }
        line = ", ".join(f"{k} {v:.3f}" for k, v in got.items())
        floor = all(got[k] >= v for k, v in FLOOR.items())
        aim = all(got[k] >= v for k, v in AIM.items())
        print(
            f"metrics ({model}, DS2 test, n={m['n']}): {line}, macro F1 {m['macro_f1']:.3f}; "
            f"floor {'met' if floor else 'NOT met'}, aim {'met' if aim else 'not met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, default=ROOT.parent / "shared/data/mitdb"
    )
    parser.add_argument(
        "--env", default="full", help="Kedro environment of the settings"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--epoch-fraction", type=float, default=1.0, help="time part of an epoch"
    )
    parser.add_argument("--skip-epoch", action="store_true")
    parser.add_argument(
        "--run", action="store_true", help="run the full pipeline first"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.env)
    beats, windows = bench_ingestion(args.source, params)
    if not args.skip_epoch:
        bench_epoch(beats, windows, params, args.epoch_fraction)
    if args.run:
        run_pipeline(args.env)
    print_metrics()


if __name__ == "__main__":
    main()
