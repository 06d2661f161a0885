"""Synthetic heartbeats and parameters for the ecg_autoencoder tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from medlstm.datasets.wfdb_records import WfdbRecord

PARAMS_FILE = (
    Path(__file__).parents[3] / "conf" / "base" / "parameters_ecg_autoencoder.yml"
)


@pytest.fixture(scope="session")
def base_params() -> dict[str, Any]:
    """The shipped parameters file (so tests exercise the real defaults)."""
    return yaml.safe_load(PARAMS_FILE.read_text())


@pytest.fixture
def params(base_params) -> dict[str, Any]:
    """A private copy of the ``ecg_autoencoder`` block."""
    return copy.deepcopy(base_params["ecg_autoencoder"])


def make_record(
    record_id: str = "900",
    fs: float = 360.0,
    seconds: float = 20.0,
    beat_every_s: float = 0.8,
    symbols: list[str] | None = None,
    leads: tuple[str, ...] = ("MLII", "V1"),
    extra_annotations: list[tuple[float, str]] | None = None,
    beat_times: np.ndarray | None = None,
) -> WfdbRecord:
    """A record with a narrow positive spike per beat in MLII (negative in others).

    ``symbols`` cycles over the beats; ``extra_annotations`` adds (time_s, symbol)
    pairs such as rhythm changes. V beats are drawn twice as wide and tall.
    """
    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    if beat_times is None:
        beat_times = np.arange(0.3, seconds - 0.05, beat_every_s)
    symbols = symbols or ["N"]
    beat_symbols = [symbols[i % len(symbols)] for i in range(len(beat_times))]
    mlii = np.zeros(n)
    for bt, sym in zip(beat_times, beat_symbols, strict=True):
        width, height = (0.04, 2.0) if sym == "V" else (0.015, 1.0)
        mlii += height * np.exp(-0.5 * ((t - bt) / width) ** 2)
    signals = {lead: (mlii if lead == "MLII" else -0.5 * mlii).copy() for lead in leads}
    ann = [
        (int(round(bt * fs)), s) for bt, s in zip(beat_times, beat_symbols, strict=True)
    ]
    ann += [(int(round(ts * fs)), s) for ts, s in extra_annotations or []]
    ann.sort()
    return WfdbRecord(
        record_id=record_id,
        fs=float(fs),
        signals=signals,
        ann_samples=np.array([a[0] for a in ann], dtype=np.int64),
        ann_symbols=np.array([a[1] for a in ann], dtype=str),
        source=f"/synthetic/{record_id}.hea",
    )


def beats_table(records: dict[str, list[str]]) -> pd.DataFrame:
    """A minimal beat table: ``{record: [label, ...]}`` -> record, sample, label rows."""
    rows = [
        {"record": rid, "sample": 100 * (i + 1), "label": label}
        for rid, labels in records.items()
        for i, label in enumerate(labels)
    ]
    return pd.DataFrame(rows)
