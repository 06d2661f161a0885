"""Peak memory of ECG ingestion and of one training epoch, in memory vs in shards.

Takes ``--records`` full-length records (half MIT-BIH, half SVDB, from
``../shared/data``) and repeats them under new ids 1, 2 and 4 times (``--scales``),
then measures, each in a fresh child process, the high-water resident memory
(``ru_maxrss``) of:

- ingestion: ``segment_databases`` and saving its windows, either as the default run
  does (records read eagerly by the catalog, windows held and saved to one ``.npz``)
  or out of core (records read lazily, ``ingestion.spill_windows: true``, windows
  saved through ``WindowShardsDataset``);
- one training epoch of the CNN node (``train_cnn``), from the ``.npz`` loaded whole
  or from the shards read lazily (``split_tensors`` gives a dataset that reads each
  batch from them). One record in ten trains and one validates (the others are
  marked ``train_unused``), so that the epoch stays short on a small machine; every
  window is still stored, and loaded by the in-memory path.

Each child's memory after its imports (torch, pandas, kedro) is printed apart; the
growth with the number of records is what matters. Prints the machine line first.

Usage (from the project root)::

    python benchmarks/bench_ingestion_memory.py [--records 10] [--scales 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def rss_mib() -> float:
    """Current resident memory of this process (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    """High-water resident memory of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Repeated(Mapping):
    """``times`` copies of lazily read records, the k-th under ids ``<id>x<k>``."""

    def __init__(self, records, times: int) -> None:
        self._records = records
        self._ids = [f"{rid}x{k}" for k in range(times) for rid in records]

    def loader(self, rid: str):
        return self._records.loader(rid.rsplit("x", 1)[0])

    def __getitem__(self, rid: str):
        return self.loader(rid)()

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def databases(n_records: int, times: int, lazy: bool) -> tuple[Any, Any]:
    """MIT-BIH and SVDB, ``n_records`` in all, repeated ``times``: lazily read, or
    read into dicts as the eager catalog dataset does."""
    from medlstm.datasets.wfdb_records import LazyWfdbRecords, WfdbRecordsDataset

    out = []
    for name, n in (("mitdb", n_records - n_records // 2), ("svdb", n_records // 2)):
        full = WfdbRecordsDataset(path=str(DATA / name), lazy=True).load()
        ids = sorted(full)[:n]
        repeated = Repeated(
            LazyWfdbRecords(DATA / name, ids, "atr"),
            times,
        )
        out.append(repeated if lazy else {rid: repeated[rid] for rid in repeated})
    return out[0], out[1]


def child(stage: str, mode: str, n_records: int, times: int, folder: Path) -> dict:
    """One measurement, in this (fresh) process."""
    from medlstm.datasets import NumpyDataset
    from medlstm.datasets.window_shards import WindowShardsDataset
    from medlstm.pipelines.ecg_autoencoder.ingestion import (
        segment_databases,
    )
    from medlstm.pipelines.ecg_autoencoder.training import train_cnn

    params = yaml.safe_load(
        (ROOT / "conf/base/parameters_ecg_autoencoder.yml").read_text()
    )["ecg_autoencoder"]
    store = (
        WindowShardsDataset(path=str(folder / "shards"))
        if mode == "shards"
        else NumpyDataset(filepath=str(folder / "windows.npz"))
    )
    base = rss_mib()
    start = time.perf_counter()
    if stage == "ingestion":
        mitdb, svdb = databases(n_records, times, lazy=mode == "shards")
        ingestion = {**params["ingestion"], "spill_windows": mode == "shards"}
        beats, windows, _ = segment_databases(
            mitdb, svdb, ingestion, params["databases"]
        )
        store.save(windows)
        # One record in ten trains, one validates, the rest are left unused: the
        # epoch stays short, while every window is still stored and loaded.
        records = sorted(set(beats["record"]))
        role = {
            rid: ("train", "val", *["train_unused"] * 8)[i % 10]
            for i, rid in enumerate(records)
        }
        beats["split"] = beats["record"].map(role)
        beats.to_parquet(folder / f"beats_{mode}.parquet")
        n_beats = len(beats)
    else:
        beats = pd.read_parquet(folder / f"beats_{mode}.parquet")
        windows = store.load()
        cnn = {
            **params["cnn"],
            "training": {
                **params["cnn"]["training"],
                "epochs": 1,
                "monitor_max_samples": 2000,
            },
        }
        train_cnn(
            beats,
            windows,
            cnn,
            params["features"],
            params["ingestion"]["label_mapping"],
        )
        n_beats = len(beats)
    return {
        "after_imports_mib": base,
        "peak_mib": peak_mib(),
        "seconds": time.perf_counter() - start,
        "beats": n_beats,
    }


def measure(stage: str, mode: str, n_records: int, times: int, folder: Path) -> dict:
    command = [
        sys.executable, __file__, "--child", stage, mode,
        str(n_records), str(times), str(folder),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{stage} {mode} x{times} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, mode, n, times, folder = args.child
        print(json.dumps(child(stage, mode, int(n), int(times), Path(folder))))
        return

    from medlstm.core.machine import machine_line

    print(machine_line())
    scales = [int(s) for s in args.scales.split(",")]
    print(
        f"{args.records} full-length records (MIT-BIH and SVDB) repeated "
        f"{'/'.join(map(str, scales))} times; peak RSS (ru_maxrss) of a fresh process "
        "per cell, MiB; CNN epoch of the default cnn block"
    )
    rows = []
    for times in scales:
        for mode in ("memory", "shards"):
            with tempfile.TemporaryDirectory(prefix="medlstm-bench-") as tmp:
                ingest = measure("ingestion", mode, args.records, times, Path(tmp))
                train = measure("training", mode, args.records, times, Path(tmp))
            rows.append((times, mode, ingest, train))
            print(f"  done x{times} {mode}", file=sys.stderr)
    print(
        "| records | beats | windows | ingestion peak | after imports | "
        "epoch peak | after imports | ingestion s | epoch s |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for times, mode, ingest, train in rows:
        print(
            f"| {args.records * times} | {ingest['beats']} | {mode} | "
            f"{ingest['peak_mib']:.0f} | {ingest['after_imports_mib']:.0f} | "
            f"{train['peak_mib']:.0f} | {train['after_imports_mib']:.0f} | "
            f"{ingest['seconds']:.0f} | {train['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
