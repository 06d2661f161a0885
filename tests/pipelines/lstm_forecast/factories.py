"""Small constructed inputs for the lstm_forecast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medlstm.datasets.wfdb_records import WfdbRecord


def make_record(
    record_id: str, samples: list[int], symbols: list[str], fs: float = 360.0
) -> WfdbRecord:
    """A WfdbRecord with annotations only (the tachogram reads no signal)."""
    return WfdbRecord(
        record_id=record_id,
        fs=fs,
        signals={},
        ann_samples=np.asarray(samples, dtype=np.int64),
        ann_symbols=np.asarray(symbols, dtype=str),
        source=f"/data/{record_id}.hea",
    )


def make_series(lengths: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Tidy table of noisy sine series, one per id, time in seconds."""
    rng = np.random.default_rng(seed)
    frames = []
    for sid, n in lengths.items():
        t = np.arange(n, dtype=np.float64)
        value = 800 + 50 * np.sin(t / 3) + rng.normal(0, 5, n)
        frames.append(pd.DataFrame({"series_id": sid, "time": t, "value": value}))
    return pd.concat(frames, ignore_index=True)
