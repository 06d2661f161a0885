"""Derive the fixed patient-wise partition of the MIT-BIH Supraventricular Arrhythmia
Database that ``conf/base/parameters_ecg_autoencoder.yml`` holds (``split.svdb``).

Each of the 78 records is one patient. Records are stratified by their burden of
supraventricular (AAMI S) beats, counted from the reference annotations, and dealt
into training, validation and external test parts (2 : 1 : 1 per block of four
records of similar burden, seeded). The parameters hold the resulting lists, so a
partition never changes under a user; this script shows where they came from, and a
test checks that it still gives them.

Usage::

    python -m medlstm.excerpts.svdb_partition --source ../shared/data/svdb
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import wfdb
import yaml

from medlstm.pipelines.ecg_autoencoder.splitting import partition_by_burden

SHARES = {"train": 2, "val": 1, "test": 1}
SEED = 42
PARAMETERS = (
    Path(__file__).resolve().parents[3]
    / "conf"
    / "base"
    / "parameters_ecg_autoencoder.yml"
)


def label_mapping() -> dict[str, list[str]]:
    """The pipeline's AAMI class -> annotation symbols (``ingestion.label_mapping``)."""
    params = yaml.safe_load(PARAMETERS.read_text())
    return params["ecg_autoencoder"]["ingestion"]["label_mapping"]


def s_burden(source: Path, prefix: str = "svdb_") -> pd.Series:
    """Fraction of S beats among the labelled beats of each record, by the
    pipeline's own label mapping."""
    mapping = label_mapping()
    beats = {symbol for symbols in mapping.values() for symbol in symbols}
    s_symbols = set(mapping["S"])
    burden = {}
    for header in sorted(source.glob("*.hea")):
        symbols = wfdb.rdann(str(header.with_suffix("")), "atr").symbol
        labelled = [s for s in symbols if s in beats]
        n_s = sum(s in s_symbols for s in labelled)
        burden[f"{prefix}{header.stem}"] = n_s / max(len(labelled), 1)
    if not burden:
        raise FileNotFoundError(f"{source}: no WFDB headers (*.hea) found.")
    return pd.Series(burden)


def svdb_partition(source: Path, seed: int = SEED) -> dict[str, list[str]]:
    """The partition of the records in ``source``, as the parameters hold it."""
    return partition_by_burden(s_burden(source), SHARES, seed)


def main(argv: list[str] | None = None) -> None:
    """Print the partition as the YAML block of the parameters."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="SVDB folder")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    burden = s_burden(args.source)
    for part, records in svdb_partition(args.source, args.seed).items():
        mean = burden[records].mean()
        print(f"# {part}: {len(records)} records, mean S burden {mean:.3f}")
        print(f"{part}: [{', '.join(records)}]")


if __name__ == "__main__":
    main()
