"""The classical anchor: a linear classifier on RR and a few morphology features.

In the manner of de Chazal et al. (2004): RR intervals (pre, post, local and record
average, in seconds, and the same normalised by the record's own average, which
needs no labels) and a few morphology features of the beat window (QRS width and
amplitudes, a downsampled beat), standardised with the training beats' statistics,
into a multinomial logistic regression or a linear discriminant (scikit-learn).
The LSTM has to beat this to be worth its cost.

The fitted model is stored as JSON (feature names, standardisation, coefficients),
not pickled: it is a linear map and a softmax, so loading it runs no code.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from medlstm.pipelines.ecg_autoencoder.training import (
    check_aligned,
    label_indices,
    prediction_table,
)

logger = logging.getLogger(__name__)

RR_FEATURES = (
    "pre_rr",
    "post_rr",
    "local_rr",
    "record_rr",
    "rr_pre_norm",
    "rr_post_norm",
    "rr_local_norm",
    "rr_pre_local",
)
MODELS = ("logistic", "lda")
QRS_HALF_WIDTH_S = 0.1


def morphology_features(
    windows: np.ndarray, samples_before: int, fs: float, downsample_to: int
) -> tuple[np.ndarray, list[str]]:
    """A few shape features per window (n, T) -> (n, F) and their names.

    - ``qrs_max`` / ``qrs_min``: extremes within +-0.1 s of the R peak;
    - ``qrs_width``: seconds around R where |x| exceeds half its QRS maximum;
    - ``energy``: mean square of the whole window;
    - ``beat_<i>``: the window averaged down to ``downsample_to`` values.
    """
    n, length = windows.shape
    half = int(round(QRS_HALF_WIDTH_S * fs))
    qrs = windows[:, max(samples_before - half, 0) : samples_before + half + 1]
    peak = np.abs(qrs).max(axis=1, keepdims=True)
    width = (np.abs(qrs) > 0.5 * np.maximum(peak, 1e-9)).sum(axis=1) / fs
    blocks = np.array_split(np.arange(length), downsample_to)
    beat = np.stack([windows[:, b].mean(axis=1) for b in blocks], axis=1)
    values = np.column_stack(
        [qrs.max(axis=1), qrs.min(axis=1), width, (windows**2).mean(axis=1), beat]
    )
    names = ["qrs_max", "qrs_min", "qrs_width", "energy"] + [
        f"beat_{i}" for i in range(downsample_to)
    ]
    return values.reshape(n, -1), names


def beat_features(
    beats: pd.DataFrame,
    windows: np.ndarray,
    ingestion: dict[str, Any],
    params: dict[str, Any],
) -> tuple[np.ndarray, list[str]]:
    """RR and morphology features of beats (n,) with their windows (n, T)."""
    missing = sorted(set(RR_FEATURES) - set(beats.columns))
    if missing:
        raise ValueError(f"RR columns {missing} are not in the beat table.")
    rr = beats[list(RR_FEATURES)].to_numpy(dtype=np.float64, copy=True)
    shape, names = morphology_features(
        np.asarray(windows, dtype=np.float64),
        int(ingestion["samples_before"]),
        float(ingestion["target_fs"]),
        int(params.get("downsample_to", 12)),
    )
    x = np.column_stack([np.clip(rr, 0.0, float(params.get("rr_clip", 5.0))), shape])
    return x, [*RR_FEATURES, *names]


def train_linear(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    params: dict[str, Any],
    ingestion: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> dict[str, Any]:
    """Fit the linear classifier on the training beats.

    Args:
        beats: Beat table with ``split``.
        windows: Window arrays aligned with ``beats``.
        params: ``ecg_autoencoder.linear``: ``model`` (logistic | lda),
            ``class_weighting`` (balanced | none; logistic only), ``C``,
            ``downsample_to``, ``rr_clip``.
        ingestion: ``ecg_autoencoder.ingestion`` (window geometry and rate).
        label_mapping: Class name -> symbols; its keys are the classes.

    Returns:
        The model as JSON: feature names, mean and scale of the training features,
        coefficients (C, F) and intercepts (C,) of the class scores.
    """
    check_aligned(beats, windows)
    kind = params.get("model", "logistic")
    if kind not in MODELS:
        raise ValueError(
            f"Parameter 'ecg_autoencoder.linear.model' is {kind!r}; expected one of {MODELS}."
        )
    classes = list(label_mapping)
    train = np.flatnonzero(beats["split"].to_numpy() == "train")
    x, names = beat_features(
        beats.iloc[train], windows["windows"][train], ingestion, params
    )
    y = label_indices(beats["label"].iloc[train], classes)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale
    if kind == "lda":
        fitted = LinearDiscriminantAnalysis().fit(z, y)
    else:
        weighting = params.get("class_weighting", "balanced")
        fitted = LogisticRegression(
            C=float(params.get("C", 1.0)),
            class_weight=None if weighting == "none" else "balanced",
            max_iter=int(params.get("max_iter", 2000)),
        ).fit(z, y)
    coef, intercept = _class_scores(fitted, len(classes))
    logger.info("Linear %s fitted on %d beats, %d features.", kind, len(y), len(names))
    return {
        "model": kind,
        "classes": classes,
        "features": names,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "intercept": intercept.tolist(),
        "params": dict(params),
        "ingestion": {k: ingestion[k] for k in ("samples_before", "target_fs")},
    }


def _class_scores(fitted: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (C, F) and intercepts (C,) over all classes; a class absent from
    training gets a score that never wins."""
    coef = np.full((n_classes, fitted.coef_.shape[1]), 0.0)
    intercept = np.full(n_classes, -1e9)
    present = np.asarray(fitted.classes_, dtype=np.int64)
    if len(present) == 2 and fitted.coef_.shape[0] == 1:  # binary: one score column
        coef[present[1]], intercept[present[1]] = fitted.coef_[0], fitted.intercept_[0]
        coef[present[0]], intercept[present[0]] = 0.0, 0.0
    else:
        coef[present], intercept[present] = fitted.coef_, fitted.intercept_
    return coef, intercept


def linear_probabilities(
    model: dict[str, Any], beats: pd.DataFrame, windows: np.ndarray
) -> np.ndarray:
    """Class probabilities (n, C): softmax of the stored linear class scores."""
    x, names = beat_features(beats, windows, model["ingestion"], model["params"])
    if names != model["features"]:
        raise ValueError(
            "The beat features differ from those the linear model was fitted on."
        )
    z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
    scores = z @ np.asarray(model["coef"]).T + np.asarray(model["intercept"])
    return softmax(scores, axis=1)


def predict_linear(
    model: dict[str, Any],
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    split: str,
) -> pd.DataFrame:
    """Predictions of one split in the shape of the neural models' predictions."""
    check_aligned(beats, windows)
    rows = np.flatnonzero(beats["split"].to_numpy() == split)
    part = beats.iloc[rows]
    probs = linear_probabilities(model, part, windows["windows"][rows])
    return prediction_table(part, probs, model["classes"])


def predict_test_linear(
    model: dict[str, Any], beats: pd.DataFrame, windows: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Predictions for every test beat."""
    return predict_linear(model, beats, windows, "test")


def predict_val_linear(
    model: dict[str, Any], beats: pd.DataFrame, windows: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Predictions for every validation beat (the only ones to choose on)."""
    return predict_linear(model, beats, windows, "val")
