"""A recording from file to report: the time of each stage of
``kedro run --pipeline=ecg_autoencoder_inference``, node by node.

Runs the inference pipeline's node functions in its order on one recording (default
MIT-BIH record 208, 30 minutes, read as a new recording: no annotations), with the
project's parameters and the trained models, and writes what the pipeline writes
(predictions CSV, summary JSON and Markdown, strip PNG) to ``--out``. Kedro's
session and MLflow's logging are not included (they do not grow with the
recording). ``--repeat`` runs it several times in this process; the first run also
pays for the first calls of torch and matplotlib.

Prints the machine line, then per stage the minimum and median seconds over the
runs (detection, inside segmentation, on its own line) and the total.

Usage (from the project root, after a training run)::

    python benchmarks/bench_recording.py [--record ../shared/data/mitdb/208]
        [--models data/06_models] [--repeat 3] [--out DIR] [--env base] [--threads 1]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - the imports are timed as a stage
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from medlstm.core.machine import machine_line  # noqa: E402
from medlstm.core.params import project_config  # noqa: E402
from medlstm.core.persistence import load_model  # noqa: E402
from medlstm.core.threads import limit_threads  # noqa: E402
from medlstm.pipelines.ecg_autoencoder import recording  # noqa: E402
from medlstm.pipelines.ecg_autoencoder.inference import (  # noqa: E402
    classifier_input,
    classify_beats,
)
from medlstm.pipelines.ecg_autoencoder.recording_report import (  # noqa: E402
    beat_table,
    recording_summary,
    strip_figure,
)

IMPORTS_S = time.perf_counter() - STARTED
ROOT = Path(__file__).resolve().parents[1]
MODELS = {"autoencoder": "ecg_autoencoder_model", "rhythm": "ecg_rhythm_model"}


def model_paths(models: Path, catalog: dict) -> dict[str, Path]:
    """The autoencoder and rhythm model files, by the catalog's file names."""
    paths = {}
    for name, entry in MODELS.items():
        path = models / Path(catalog[entry]["dataset"]["filepath"]).name
        if not path.is_file():
            raise SystemExit(
                f"{path}: model file not found; train first (make run) or give "
                "--models DIR."
            )
        paths[name] = path
    return paths


def run_once(
    path: str, params: dict, paths: dict[str, Path], out: Path
) -> dict[str, float]:
    """One pass from file to report; seconds per stage."""
    times: dict[str, float] = {}
    detect = recording.detect

    def timed_detect(*args, **kwargs):
        started = time.perf_counter()
        try:
            return detect(*args, **kwargs)
        finally:
            times["  of which detection"] = time.perf_counter() - started

    def stage(name, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        times[name] = time.perf_counter() - started
        return result

    ecg = params["ecg_autoencoder"]
    inference = ecg["inference"]
    labels = ecg["ingestion"]["label_mapping"]
    records = stage("read the file", recording.load_recording, path, inference)
    recording.detect = timed_detect
    try:
        beats, windows, report = stage(
            "check, detect, segment",
            recording.segment_recording,
            records,
            ecg["ingestion"],
            ecg["detection"],
            inference,
        )
    finally:
        recording.detect = detect
    table = stage("classifier input", classifier_input, beats, windows, ecg["features"])
    autoencoder, rhythm = stage(
        "load the models", lambda: [load_model(p) for p in paths.values()]
    )
    classified = stage(
        "classify",
        classify_beats,
        autoencoder,
        rhythm,
        table,
        ecg["features"],
        labels,
        inference["classifier"],
    )
    predictions = stage("beat table", beat_table, classified, beats, report)
    summary, markdown = stage("summary", recording_summary, predictions, report, labels)

    def write() -> None:
        predictions.to_csv(out / "ecg_inference_predictions.csv", index=False)
        (out / "ecg_inference_ingestion_report.json").write_text(
            json.dumps(report, default=str)
        )
        (out / "ecg_inference_summary.json").write_text(json.dumps(summary))
        (out / "ecg_inference_summary.md").write_text(markdown)

    stage("write the tables", write)

    def strip() -> None:
        figure = strip_figure(records, predictions, report)
        figure.savefig(out / "ecg_inference_strip.png", dpi=100)
        plt.close(figure)

    stage("strip figure (PNG)", strip)
    times["beats"] = len(predictions)
    times["minutes"] = report["records"][next(iter(records))]["duration_s"] / 60
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--record", default=str(ROOT.parent / "shared" / "data" / "mitdb" / "208")
    )
    parser.add_argument("--models", default=str(ROOT / "data" / "06_models"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", help="folder for the outputs (default: a temporary)")
    parser.add_argument("--env", default="base", help="Kedro config environment")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch and BLAS threads (default: torch's, one per core); on cores "
        "shared with other jobs 1 is far faster (docs/ecg_autoencoder.md, Speed)",
    )
    args = parser.parse_args()

    if args.threads:
        limit_threads(args.threads)
    print(machine_line())
    params, catalog = project_config(ROOT, args.env)
    paths = model_paths(Path(args.models), catalog)
    inference = params["ecg_autoencoder"]["inference"]
    print(
        f"recording {args.record}, beats {inference['beats']}, classifier "
        f"{inference['classifier']}, models {args.models}; imports {IMPORTS_S:.1f} s"
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for _ in range(max(args.repeat, 1)):
            runs.append(run_once(args.record, params, paths, out))
    print(f"{runs[0]['minutes']:.1f} min, {runs[0]['beats']:.0f} beats")
    columns = defaultdict(list)
    for times in runs:
        for name, seconds in times.items():
            if name not in ("beats", "minutes"):
                columns[name].append(seconds)
        columns["total"].append(
            sum(s for n, s in times.items() if n not in ("beats", "minutes")
                and not n.startswith(" "))
        )  # fmt: skip
    print(f"{'stage':<26} {'min s':>7} {'median s':>9}   ({len(runs)} runs)")
    for name, values in columns.items():
        print(f"{name:<26} {min(values):>7.2f} {statistics.median(values):>9.2f}")


if __name__ == "__main__":
    main()
