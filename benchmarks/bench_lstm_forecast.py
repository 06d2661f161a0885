"""Full-data benchmark of lstm_forecast: the MAE table on all MIT-BIH records, and timings.

Run from the project root (the allocator setting is the Makefile's: up to 2x faster
LSTM training)::

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        nice python benchmarks/bench_lstm_forecast.py --env full

It runs the pipeline's nodes in order, without MLflow, with the parameters and the
``forecast_mitdb_records`` dataset of the given Kedro environment (``full``: the 48
records in ../shared/data/mitdb), and prints the time of each stage, training and
inference throughput, the MAE per method and horizon step, and the run's report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from kedro.framework.project import settings
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog

from medlstm.core.machine import machine_line
from medlstm.core.threads import limit_threads
from medlstm.pipelines.lstm_forecast.baselines import forecast_baselines
from medlstm.pipelines.lstm_forecast.ingestion import build_tachograms
from medlstm.pipelines.lstm_forecast.reporting import evaluate_forecasts, write_report
from medlstm.pipelines.lstm_forecast.training import forecast_lstm, train_forecaster
from medlstm.pipelines.lstm_forecast.windowing import (
    fit_scaler,
    make_windows,
    split_series,
)

ROOT = Path(__file__).resolve().parents[1]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", default="full", help="Kedro environment (default: full)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="override training.epochs"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args()


def _config(env: str) -> tuple[dict, DataCatalog]:
    """The environment's lstm_forecast parameters and a catalog of its records."""
    # Config and one catalog entry only: the benchmark needs no other pipeline's code.
    bootstrap_project(ROOT)
    config = settings.CONFIG_LOADER_CLASS(
        conf_source=str(ROOT / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    params = config["parameters"]["lstm_forecast"]
    entry = {"forecast_mitdb_records": config["catalog"]["forecast_mitdb_records"]}
    return params, DataCatalog.from_config(entry)


def _stages(records: dict, params: dict, training: dict, timings: dict) -> dict:
    """The pipeline's nodes in order, each stage's wall time into ``timings``."""

    def timed(label, func, *func_args):
        start = time.perf_counter()
        result = func(*func_args)
        timings[label] = time.perf_counter() - start
        return result

    series, ingestion = timed(
        "tachograms", build_tachograms, records, params["mitdb"]["tachogram"]
    )
    split, split_summary = timed(
        "split", split_series, series, params["mitdb"]["split"]
    )
    scaler = fit_scaler(split)
    windows = timed("windows", make_windows, split, params["windowing"])
    model, _, _, summary = timed(
        "train",
        train_forecaster,
        windows,
        scaler,
        params["model"],
        params["forecast"],
        training,
    )
    lstm = timed("forecast lstm", forecast_lstm, model, windows, scaler)
    baselines = timed("baselines", forecast_baselines, windows, params["forecast"])
    table, _, predictions = timed(
        "evaluate", evaluate_forecasts, windows, lstm, baselines, split
    )
    report = write_report(table, predictions, ingestion, split_summary, summary, scaler)
    return {"windows": windows, "summary": summary, "report": report}


def main() -> None:
    args = _arguments()
    # One thread: a 50-unit LSTM gains little from two, and on a shared machine two
    # spinning OpenMP threads were measured 40x slower per batch than one.
    limit_threads(args.threads)
    print(machine_line(), flush=True)

    params, catalog = _config(args.env)
    started = time.perf_counter()
    records = catalog.load("forecast_mitdb_records")
    training = dict(params["training"], show_progress=False)
    if args.epochs is not None:
        training["epochs"] = args.epochs
    timings = {"load records": time.perf_counter() - started}
    run = _stages(records, params, training, timings)

    windows, summary = run["windows"], run["summary"]
    seen = (len(windows["train"]) + len(windows["val"])) * summary["epochs_run"]
    lines = [
        f"env {args.env}: {len(records)} records, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "windows: " + ", ".join(f"{k} {len(v)}" for k, v in windows.items()),
        *(f"{label:>14}: {seconds:8.1f} s" for label, seconds in timings.items()),
        f"training: {summary['epochs_run']} epochs, "
        f"{seen / timings['train']:.0f} windows/s (train + val)",
        f"inference: {len(windows['test']) / timings['forecast lstm']:.0f} test windows/s",
        "",
        run["report"],
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
