"""Inference: classify every beat of a WFDB record, also as an MLflow pyfunc model.

The classifier's input is a table with one row per beat: ``record``, ``sample``, the
RR columns and the window samples ``w000 .. w{T-1}``, the format the pyfunc model
logged by ``kedro run --pipeline=ecg_autoencoder`` takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medlstm.datasets.wfdb_records import WfdbRecord, read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.modelling import check_aligned, predict_beats

WINDOW_PREFIX = "w"


def load_record(path: str, annotation: str = "atr") -> dict[str, WfdbRecord]:
    """Read the record at ``path`` (``.hea`` file or path without extension)."""
    record = read_wfdb_record(path, annotation)
    return {record.record_id: record}


def classifier_input(
    beats: pd.DataFrame, windows: dict[str, np.ndarray], features: dict[str, Any]
) -> pd.DataFrame:
    """One row per beat: record, sample, RR columns and window samples."""
    check_aligned(beats, windows)
    x = windows["windows"]
    meta = ["record", "sample"]
    table = beats[meta + list(features.get("rr_columns", []))].reset_index(drop=True)
    width = len(str(x.shape[1] - 1))
    samples = pd.DataFrame(
        x, columns=[f"{WINDOW_PREFIX}{i:0{max(width, 3)}d}" for i in range(x.shape[1])]
    )
    return pd.concat([table, samples], axis=1)


def example_input(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    n_beats: int,
) -> pd.DataFrame:
    """The first ``n_beats`` test beats in classifier-input form (the pyfunc's example)."""
    rows = np.flatnonzero(beats["split"].to_numpy() == "test")[:n_beats]
    part = {k: v[rows] for k, v in windows.items()}
    return classifier_input(beats.iloc[rows], part, features)


def classify_beats(
    model: nn.Module,
    table: pd.DataFrame,
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> pd.DataFrame:
    """Class, probabilities and reconstruction error of every row of ``table``.

    Returns:
        record, sample, ``predicted``, ``p_<class>`` and ``recon_error``.
    """
    columns = [c for c in table.columns if c.startswith(WINDOW_PREFIX)]
    if not columns:
        raise ValueError(
            f"The classifier input has no window columns ({WINDOW_PREFIX}000 ...)."
        )
    x = table[columns].to_numpy(dtype=np.float32, copy=True)
    predictions, _, _ = predict_beats(model, table, x, features, list(label_mapping))
    return predictions
