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

from medlstm.pipelines.ecg_autoencoder.rhythm import rhythm_probabilities
from medlstm.pipelines.ecg_autoencoder.training import (
    check_aligned,
    predict_beats,
    prediction_table,
)

WINDOW_PREFIX = "w"
CLASSIFIERS = ("rhythm", "autoencoder")


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
    autoencoder: nn.Module,
    rhythm: nn.Module,
    table: pd.DataFrame,
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    classifier: str = "rhythm",
) -> pd.DataFrame:
    """Class, probabilities and reconstruction error of every row of ``table``.

    Args:
        autoencoder: The LSTM autoencoder: the reconstruction error of every beat,
            and the classes when ``classifier`` is ``autoencoder``.
        rhythm: The rhythm model: the classes when ``classifier`` is ``rhythm``,
            each beat read with the beats of its record around it.
        table: `classifier_input` rows (any records, any order).
        features: ``ecg_autoencoder.features``.
        label_mapping: Class name -> symbols; its keys are the classes.
        classifier: ``ecg_autoencoder.inference.classifier``: which model labels.

    Returns:
        record, sample, ``predicted``, ``p_<class>`` and ``recon_error``.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(
            "Parameter 'ecg_autoencoder.inference.classifier' is "
            f"{classifier!r}; expected one of {CLASSIFIERS}."
        )
    columns = [c for c in table.columns if c.startswith(WINDOW_PREFIX)]
    if not columns:
        raise ValueError(
            f"The classifier input has no window columns ({WINDOW_PREFIX}000 ...)."
        )
    x = table[columns].to_numpy(dtype=np.float32, copy=True)
    classes = list(label_mapping)
    predictions, _, _ = predict_beats(autoencoder, table, x, features, classes)
    if classifier == "rhythm" and len(table):
        labelled = prediction_table(
            table, rhythm_probabilities(rhythm, table, x), classes
        )
        for column in ["predicted", *(f"p_{c}" for c in classes)]:
            predictions[column] = labelled[column].to_numpy()
    return predictions
