"""ECG ingestion in one process against a local Dask cluster, on the full databases.

Runs ``segment_databases`` (read every record, cut its labelled beats, compute the RR
features) over MIT-BIH Arrhythmia and MIT-BIH Supraventricular
(``../shared/data/mitdb``, ``svdb``) three times: ``ingestion.parallel.backend``
``sequential``; ``dask`` (a local cluster of ``--workers`` processes, started and
closed inside the timing, as in a run); and ``dask`` with ``spill_windows`` (the
workers write each record's windows to a shard and send back only its path). It
checks that all three give the same beats and windows, and prints the wall and CPU
time of each (CPU of this process and of its finished children, the Dask workers),
the speed-up measured in this one run, the cost per record, and what a larger corpus
would take at that cost: sequential, the measured cost per record; dask, the cost
per record without the cluster's start and stop (timed apart), plus that start.

The machine may be shared: the load average is printed beside the numbers.

Usage (from the project root)::

    python benchmarks/bench_ingestion_parallel.py [--records N] [--workers 2]
        [--corpus 10000] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medlstm.core.machine import machine_line
from medlstm.core.parallel import ParallelParams, dask_client
from medlstm.datasets.wfdb_records import LazyWfdbRecords, WfdbRecordsDataset
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_databases,
)

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have finished."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def first(records: LazyWfdbRecords, n: int | None) -> dict[str, Any] | LazyWfdbRecords:
    """The first ``n`` records (all with None), still read lazily."""
    if n is None:
        return records
    ids = sorted(records)[:n]
    return LazyWfdbRecords(records._folder, ids, records._annotation)  # noqa: SLF001


def timed(fn) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=None, help="per database")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    print(machine_line())
    params = yaml.safe_load(
        (ROOT / "conf/base/parameters_ecg_autoencoder.yml").read_text()
    )["ecg_autoencoder"]
    mitdb, svdb = (
        first(
            WfdbRecordsDataset(path=str(args.data / name), lazy=True).load(),
            args.records,
        )
        for name in ("mitdb", "svdb")
    )
    n = len(mitdb) + len(svdb)
    print(
        f"records: {len(mitdb)} MIT-BIH + {len(svdb)} SVDB = {n}; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
        "(shared machine: other jobs run beside this one)"
    )

    def run(backend: str, spill: bool = False):
        ingestion = {
            **params["ingestion"],
            "parallel": {
                **params["ingestion"]["parallel"],
                "backend": backend,
                "n_workers": args.workers,
            },
            "spill_windows": spill,
        }
        return segment_databases(
            mitdb, svdb, ingestion, params["databases"], params["detection"]
        )

    (beats, windows, _), seq_wall, seq_cpu = timed(lambda: run("sequential"))
    (beats_d, windows_d, _), dask_wall, dask_cpu = timed(lambda: run("dask"))
    pd.testing.assert_frame_equal(beats, beats_d)
    assert np.array_equal(windows["windows"], windows_d["windows"])
    del beats_d, windows_d
    # Workers write each record's windows to a shard and send back only its path.
    (beats_s, windows_s, _), spill_wall, spill_cpu = timed(lambda: run("dask", True))
    pd.testing.assert_frame_equal(beats, beats_s)
    assert np.array_equal(windows["windows"], np.asarray(windows_s["windows"]))
    del beats_s, windows_s

    def start_and_stop():
        with dask_client(ParallelParams("dask", args.workers, None)):
            pass

    _, overhead, _ = timed(start_and_stop)
    per_record = seq_wall / n
    print(f"beats: {len(beats)} (identical beat table and windows in all three runs)")
    print("| backend | wall s | CPU s | wall s / record |")
    print("|---|---:|---:|---:|")
    print(f"| sequential | {seq_wall:.1f} | {seq_cpu:.1f} | {per_record:.3f} |")
    for label, wall, cpu in (
        (f"dask, {args.workers} workers", dask_wall, dask_cpu),
        (f"dask, {args.workers} workers, windows spilled", spill_wall, spill_cpu),
    ):
        print(f"| {label} | {wall:.1f} | {cpu:.1f} | {wall / n:.3f} |")
    print(f"local cluster start + stop alone: {overhead:.1f} s")
    print(f"expected for {args.corpus} records of this length:")
    print(f"  sequential: {args.corpus * per_record / 60:.0f} min")
    for label, wall in (("dask", dask_wall), ("dask, spilled", spill_wall)):
        cost = max(wall - overhead, 0.0) / n
        print(
            f"  {label}: speed-up {seq_wall / wall:.2f}x in this run; "
            f"{cost:.3f} s / record without the cluster start -> "
            f"{(overhead + args.corpus * cost) / 60:.0f} min"
        )


if __name__ == "__main__":
    main()
