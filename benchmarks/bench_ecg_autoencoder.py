"""Benchmark of ecg_autoencoder on the full MIT-BIH database.

Prints, after the machine line (CPU, threads, instruction sets, versions):
1. ingestion: reading and segmenting all 48 records (target <= 15 s on 2 cores);
2. epoch: one training epoch of the LSTM autoencoder over all DS1 beats (~51k;
   target <= 180 s in fp32 on 2 cores), through the pipeline's own training path
   (tensors, loss, the core's `fit` with its metrics) with the settings of
   conf/<env>; and the fraction of the machine's limit it reaches: the model's
   training FLOPs per beat over the fp32 matmul peak measured here;
3. metrics: DS2 test accuracy and S / V Se and +P of both models, against the
   floor and aim of the issue. ``--run`` first runs
   ``kedro run --pipeline=ecg_autoencoder --env full`` (long); without it the
   figures come from the last run's data/08_reporting/*_test_metrics.json.

Usage (from the project root; the allocator settings are worth up to 2x for LSTMs,
see docs/ecg_autoencoder.md)::

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        python benchmarks/bench_ecg_autoencoder.py --threads 2 [--run] [--skip-epoch]
        [--precision fp32|bf16|auto] [--scheme inter_patient|inter_patient_svdb]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Subset

from medlstm.core.machine import machine_line
from medlstm.core.params import nest_dotted, project_config
from medlstm.core.threads import limit_threads
from medlstm.core.training import TrainingParams, fit, seed_everything
from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.models.ecg_autoencoder import LSTMAutoencoderClassifier
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.losses import autoencoder_loss
from medlstm.pipelines.ecg_autoencoder.reporting import (
    DS2_AIM,
    DS2_FLOOR,
    by_test_set,
)
from medlstm.pipelines.ecg_autoencoder.training import split_tensors

ROOT = Path(__file__).resolve().parents[1]


def load_params(env: str) -> dict:
    """The parameters of ``env`` merged over base, as ``kedro run --env`` merges them."""
    return project_config(ROOT, env)[0]


def load_run_inputs(root: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The beat table and windows a finished ``kedro run --pipeline=ecg_autoencoder``
    left under ``root`` (data/02_intermediate, data/05_model_input)."""
    beats = pd.read_parquet(root / "data/02_intermediate/ecg_beats.parquet")
    with np.load(root / "data/05_model_input/ecg_windows.npz") as npz:
        return beats, {key: npz[key] for key in npz.files}


def matmul_peak_gflops(size: int = 1024, repeats: int = 20) -> float:
    """The best fp32 GFLOP/s of a square matmul here: the machine's practical ceiling."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def lstm_training_flops_per_beat(model: nn.Module) -> float:
    """Matmul FLOPs of one training step per beat: forward 8H(I + H) per LSTM layer
    and step, backward twice that; the small linear layers are left out."""
    steps = model.seq_len // model.input_stride
    forward = 0
    for lstm in (m for m in model.modules() if isinstance(m, nn.LSTM)):
        hidden = lstm.hidden_size
        inputs = [lstm.input_size] + [hidden] * (lstm.num_layers - 1)
        forward += sum(8 * hidden * (i + hidden) for i in inputs) * steps
    return 3.0 * forward


def bench_ingestion(
    source: Path, params: dict, database: str = "mitdb", target_s: float = 15.0
) -> tuple:
    """Read and segment every record of one database with its own leads."""
    cfg = params["ecg_autoencoder"]
    started = time.perf_counter()
    records = WfdbRecordsDataset(str(source)).load()
    loaded = time.perf_counter()
    ingestion = {**cfg["ingestion"], "lead": cfg["databases"][database]["leads"]}
    beats, windows, _ = segment_records(records, ingestion)
    done = time.perf_counter()
    fs = sorted({r.fs for r in records.values()})
    print(
        f"ingestion ({database}, {fs} Hz -> {ingestion['target_fs']} Hz): "
        f"{len(records)} records, {len(beats)} beats in {done - started:.1f} s "
        f"(read {loaded - started:.1f} s, segment {done - loaded:.1f} s; "
        f"target <= {target_s:g} s)"
    )
    return beats, windows


def bench_epoch(
    beats, windows, params: dict, fraction: float, precision: str | None
) -> None:
    cfg = params["ecg_autoencoder"]
    ds1 = {str(r) for r in cfg["split"]["inter_patient"]["train"]}
    beats = beats.assign(split=np.where(beats["record"].isin(ds1), "train", "other"))
    classes = list(cfg["ingestion"]["label_mapping"])
    train = split_tensors(beats, windows, "train", cfg["features"], classes)
    n = int(round(fraction * len(train)))
    train = Subset(train, range(n)) if n < len(train) else train
    val = Subset(train, range(256))
    block = cfg["autoencoder"]
    overrides = {"epochs": 1, "show_progress": False, "resume": False}
    if precision:
        overrides["precision"] = precision
    training = TrainingParams.from_dict({**block["training"], **overrides})
    seed_everything(training.seed)
    model = LSTMAutoencoderClassifier(
        seq_len=windows["windows"].shape[1],
        n_classes=len(classes),
        n_rr_features=len(cfg["features"]["rr_columns"]),
        **block["model"],
    )
    loss = autoencoder_loss(float(params["alpha"]), float(params["beta"]))
    peak = matmul_peak_gflops()
    cpu_started = time.process_time()
    result = fit(model, train, val, training, batch_loss=loss)
    cpu = time.process_time() - cpu_started
    seconds = result.history[0]["epoch_seconds"]
    full = len(beats[beats["split"] == "train"])
    scale = full / n
    limit = lstm_training_flops_per_beat(model) * full / (peak * 1e9)
    # CPU time is what the epoch costs with its threads' cores to itself; on a
    # machine shared with other jobs the wall time is longer by the contention.
    print(
        f"epoch: {n} DS1 beats in {seconds:.1f} s wall ({n / seconds:.0f} beats/s), "
        f"{cpu:.1f} s CPU -> full DS1 epoch ({full} beats): "
        f"{seconds * scale:.0f} s wall, {cpu * scale:.0f} s CPU "
        f"(target <= 180 s in fp32); batch {training.batch_size}, "
        f"{result.precision} (asked {training.precision}), "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"limit: {lstm_training_flops_per_beat(model) / 1e6:.0f} MFLOP per beat and "
        f"step, fp32 matmul peak {peak:.0f} GFLOP/s -> {limit:.0f} s per DS1 epoch at "
        f"best; this epoch reaches {limit / (seconds * scale):.0%} of it"
    )


def run_pipeline(env: str, scheme: str | None, precision: str | None) -> None:
    """Times the whole pipeline; ``scheme`` and ``precision`` override the env's."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    overrides = {}
    if scheme:
        overrides["ecg_autoencoder.split.scheme"] = scheme
    if precision:
        overrides["ecg_autoencoder.autoencoder.training.precision"] = precision
    started = time.perf_counter()
    with KedroSession.create(
        project_path=ROOT, env=env, runtime_params=nest_dotted(overrides)
    ) as session:
        session.run(pipeline_names=["ecg_autoencoder"])
    command = f"kedro run --pipeline=ecg_autoencoder --env {env}"
    if overrides:
        command += " --params " + ",".join(f"{k}={v}" for k, v in overrides.items())
    print(f"{command}: {time.perf_counter() - started:.0f} s")


def print_metrics() -> None:
    for model in ("autoencoder", "cnn", "linear"):
        path = ROOT / f"data/08_reporting/ecg_{model}_test_metrics.json"
        if not path.exists():
            print(f"metrics: {path} not found; run with --run first")
            continue
        metrics = json.loads(path.read_text())
        for database, m in by_test_set(metrics).items():
            print_scores(model, database, m)


def print_scores(model: str, database: str, m: dict) -> None:
    """One line of a model's test scores on one database, against floor and aim."""
    pc = m["per_class"]
    got = {
        "accuracy": m["accuracy"],
        "V_Se": pc["V"]["recall"],
        "V_+P": pc["V"]["precision"],
        "S_Se": pc["S"]["recall"],
        "S_+P": pc["S"]["precision"],
    }
    line = ", ".join(f"{k} {v:.3f}" for k, v in got.items())
    floor = all(got[k] >= v for k, v in DS2_FLOOR.items())
    aim = all(got[k] >= v for k, v in DS2_AIM.items())
    test_set = "DS2" if database == "mitdb" else f"{database} test part"
    print(
        f"metrics ({model}, {test_set}, n={m['n']}): {line}, macro F1 "
        f"{m['macro_f1']:.3f}; floor {'met' if floor else 'NOT met'}, aim "
        f"{'met' if aim else 'not met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, default=ROOT.parent / "shared/data/mitdb"
    )
    parser.add_argument(
        "--svdb", type=Path, default=ROOT.parent / "shared/data/svdb",
        help="MIT-BIH Supraventricular Arrhythmia Database (timed ingestion)",
    )  # fmt: skip
    parser.add_argument(
        "--env", default="full", help="Kedro environment of the settings"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--epoch-fraction", type=float, default=1.0, help="time part of an epoch"
    )
    parser.add_argument("--skip-epoch", action="store_true")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="autoencoder training.precision of the epoch and the --run (default: the env's)",
    )
    parser.add_argument(
        "--run", action="store_true", help="run the full pipeline first"
    )
    parser.add_argument(
        "--scheme",
        choices=("inter_patient", "inter_patient_svdb"),
        default=None,
        help="split.scheme of the --run (default: the env's)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        limit_threads(args.threads)
    print(machine_line(), flush=True)
    params = load_params(args.env)
    beats, windows = bench_ingestion(args.source, params)
    if args.svdb.is_dir():
        bench_ingestion(args.svdb, params, "svdb", target_s=20.0)
    if not args.skip_epoch:
        bench_epoch(beats, windows, params, args.epoch_fraction, args.precision)
    if args.run:
        run_pipeline(args.env, args.scheme, args.precision)
    print_metrics()


if __name__ == "__main__":
    main()
