"""Inference: the classifier's input table and the classification of its beats.

The classifier's input is a table with one row per beat: ``record``, ``sample``, the
RR columns and the window samples ``w000 .. w{T-1}``. Recordings become beats in
`medlstm.pipelines.ecg_autoencoder.recording`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medlstm.pipelines.ecg_autoencoder.modelling import check_aligned, predict_beats

WINDOW_PREFIX = "w"


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
