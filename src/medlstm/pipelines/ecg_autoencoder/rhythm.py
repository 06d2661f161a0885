"""The rhythm model: every beat of a recording labelled with the beats around it.

Beats are read in their real order, one record at a time: training sequences are runs
of ``sequence_length`` consecutive beats of one training record (every beat of the
training records, not the undersampled set the one-beat models see), never shuffled
across records or reordered; at prediction every record is covered by overlapping
runs and each beat's probabilities are the average of the runs that hold it,
weighted towards the run where it sits most central, so every beat is labelled with
context on both sides where the recording has it. A record shorter than one run is
one shorter run.

Besides its window, each beat brings the RR features of the one-beat models
(`features.rr_columns`). Per-recording summaries of the rhythm and of the morphology,
and the linear baseline's probabilities (stacking), were tried as extra inputs on
validation and measured no gain (docs/experiments/2026-12-ecg_rhythm.md): the LSTM
reads the RR intervals around each beat itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from medlstm.core.params import check_known_keys
from medlstm.core.training import predict
from medlstm.models.rhythm_bilstm import RhythmBiLSTM
from medlstm.pipelines.ecg_autoencoder.losses import rhythm_loss
from medlstm.pipelines.ecg_autoencoder.training import (
    check_aligned,
    fit_block,
    label_indices,
    prediction_table,
    rr_matrix,
    training_scale,
)

logger = logging.getLogger(__name__)

WHERE = "ecg_autoencoder.rhythm"
TRAINING_SPLITS = ("train", "train_unused")  # every beat of the training records
PARAM_KEYS = (
    "sequence_length",
    "training_stride",
    "prediction_stride",
    "model",
    "loss",
    "training",
    "checkpoint_path",
    "noisy_copies",  # read by noisy_copies.noisy_training_copies
)


def check_rhythm_params(params: dict[str, Any]) -> dict[str, Any]:
    """The ``rhythm`` block with its run geometry checked; errors name the key."""
    check_known_keys(params, PARAM_KEYS, WHERE)
    for key in ("sequence_length", "training_stride", "prediction_stride"):
        value = params.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Parameter '{WHERE}.{key}' must be an integer >= 1.")
    if (params.get("training") or {}).get("weighted_sampling"):
        raise ValueError(
            f"Parameter '{WHERE}.training.weighted_sampling' cannot be true: the "
            "rhythm model trains on runs of consecutive beats, which cannot be drawn "
            "by class; use training.class_weighting."
        )
    for key in ("training_stride", "prediction_stride"):
        if params[key] > params["sequence_length"]:
            raise ValueError(
                f"Parameter '{WHERE}.{key}' ({params[key]}) must not exceed "
                f"sequence_length ({params['sequence_length']}): beats would be skipped."
            )
    return params


def record_runs(beats: pd.DataFrame, rows: np.ndarray) -> list[np.ndarray]:
    """``rows`` of ``beats`` grouped by record, each group in sample order."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return []
    records = beats["record"].to_numpy(dtype=str)[rows]
    order = np.lexsort((beats["sample"].to_numpy(dtype=np.int64)[rows], records))
    rows, records = rows[order], records[order]
    return np.split(rows, np.flatnonzero(records[1:] != records[:-1]) + 1)


def context_matrix(
    beats: pd.DataFrame, runs: Sequence[np.ndarray], inputs: dict[str, Any]
) -> np.ndarray:
    """The RR features of every beat of ``runs`` (n_beats, R), rows in ``runs``' order.

    Args:
        beats: The beat table (RR columns).
        runs: Row positions of ``beats``, one array per record (`record_runs`).
        inputs: ``features`` (RR columns, clip), as the model stores them.
    """
    rows = np.concatenate(runs) if runs else np.zeros(0, np.int64)
    return rr_matrix(beats.iloc[rows], inputs["features"])


def run_starts(n_beats: int, length: int, stride: int) -> list[int]:
    """Starts of the runs of ``length`` beats, ``stride`` apart, that cover
    ``n_beats`` beats; the last run ends at the last beat."""
    if n_beats <= length:
        return [0]
    starts = list(range(0, n_beats - length + 1, stride))
    if starts[-1] != n_beats - length:
        starts.append(n_beats - length)
    return starts


def run_index(run_lengths: Sequence[int], length: int, stride: int) -> np.ndarray:
    """(n_runs, length) positions into the concatenated records, -1 for padding
    (only at the end of a run, in a record shorter than ``length``)."""
    index, offset = [], 0
    for n in run_lengths:
        for start in run_starts(n, length, stride):
            row = np.full(length, -1, np.int64)
            take = np.arange(start, min(start + length, n))
            row[: len(take)] = offset + take
            index.append(row)
        offset += n
    return np.stack(index) if index else np.zeros((0, length), np.int64)


class BeatRuns(Dataset):
    """Runs of consecutive beats: items ``(x (L, T), context (L, K), mask (L,), y (L,))``,
    ``y`` -100 on padding; without labels, items stop at ``mask``.

    ``labels`` holds the label of every beat of every run, for the core's class weights.
    """

    def __init__(
        self,
        windows: np.ndarray,
        context: np.ndarray,
        index: np.ndarray,
        targets: np.ndarray | None = None,
    ) -> None:
        self.windows = torch.from_numpy(np.ascontiguousarray(windows, np.float32))
        self.context = torch.from_numpy(np.ascontiguousarray(context, np.float32))
        self.index = torch.from_numpy(index)
        self.targets = None if targets is None else torch.from_numpy(targets)
        if targets is not None:
            self.labels = targets[index[index >= 0]]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        rows = self.index[i]
        mask = rows >= 0
        rows = rows.clamp_min(0)
        x = self.windows[rows] * mask[:, None]
        context = self.context[rows] * mask[:, None]
        if self.targets is None:
            return x, context, mask
        return x, context, mask, torch.where(mask, self.targets[rows], -100)


def _runs_of(
    beats: pd.DataFrame,
    windows: dict[str, Any],
    splits: Sequence[str],
    inputs: dict[str, Any],
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Records of ``splits``: their row runs, windows (n, T) and context (n, K)."""
    rows = np.flatnonzero(beats["split"].isin(list(splits)).to_numpy())
    runs = record_runs(beats, rows)
    ordered = np.concatenate(runs) if runs else np.zeros(0, np.int64)
    x = np.asarray(windows["windows"][ordered], dtype=np.float32)
    return runs, x, context_matrix(beats, runs, inputs)


def train_rhythm(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    params: dict[str, Any],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train the rhythm model on runs of the training records, selected on runs of the
    validation records.

    Args:
        beats: Beat table with ``split``.
        windows: Window arrays aligned with ``beats``.
        params: ``ecg_autoencoder.rhythm``: ``sequence_length``,
            ``training_stride``, ``prediction_stride``,
            ``model``, ``loss``, ``training`` (the core's TrainingParams) and an
            optional ``checkpoint_path``.
        features: ``ecg_autoencoder.features`` (RR columns and clip).
        label_mapping: Class name -> annotation symbols; its keys are the classes.

    Returns:
        The trained `RhythmBiLSTM` (best validation epoch) and its per-epoch history.
    """
    check_aligned(beats, windows)
    params = check_rhythm_params(params)
    classes = list(label_mapping)
    inputs = {
        "features": dict(features),
        "sequence_length": params["sequence_length"],
        "prediction_stride": params["prediction_stride"],
    }
    length = params["sequence_length"]
    runs, x, context = _runs_of(beats, windows, TRAINING_SPLITS, inputs)
    val_runs, val_x, val_context = _runs_of(beats, windows, ("val",), inputs)
    if not runs or not val_runs:
        raise ValueError(
            "The rhythm model needs training and validation records; the split has "
            f"{len(runs)} training and {len(val_runs)} validation records."
        )
    labels = beats["label"]
    train_set = BeatRuns(
        x,
        context,
        run_index([len(r) for r in runs], length, params["training_stride"]),
        label_indices(labels.iloc[np.concatenate(runs)], classes),
    )
    val_set = BeatRuns(
        val_x,
        val_context,
        run_index([len(r) for r in val_runs], length, length),
        label_indices(labels.iloc[np.concatenate(val_runs)], classes),
    )
    logger.info(
        "Rhythm model: %d runs of up to %d beats from %d training records (%d beats); "
        "%d validation runs.",
        len(train_set),
        length,
        len(runs),
        len(x),
        len(val_set),
    )
    train_rows = np.zeros(len(beats), bool)
    train_rows[np.concatenate(runs)] = True
    mean, std = context.mean(axis=0), context.std(axis=0)
    build = partial(
        RhythmBiLSTM,
        seq_len=x.shape[1],
        n_classes=len(classes),
        n_context=context.shape[1],
        input_scale=training_scale(windows["windows"], train_rows),
        context_mean=mean.tolist(),
        context_scale=np.where(std > 1e-6, std, 1.0).tolist(),
        inputs=inputs,
        **params.get("model", {}),
    )
    return fit_block(
        build,
        rhythm_loss,
        train_set,
        val_set,
        params,
        WHERE,
        n_classes=len(classes),
        fingerprint={"inputs": inputs, "classes": classes},
    )


def run_weights(length: int) -> np.ndarray:
    """Weight of each position of a run when runs overlap: highest in the middle,
    where the beat has the most context on both sides."""
    position = np.arange(length)
    return np.minimum(position + 1, length - position).astype(np.float64)


def rhythm_probabilities(
    model: RhythmBiLSTM, beats: pd.DataFrame, windows: np.ndarray
) -> np.ndarray:
    """Class probabilities (n, C) of every beat of ``beats`` (any order, any records),
    each read in its record's runs as the model was trained to."""
    inputs = model.config["inputs"]
    length, stride = inputs["sequence_length"], inputs["prediction_stride"]
    runs = record_runs(beats, np.arange(len(beats)))
    ordered = np.concatenate(runs) if runs else np.zeros(0, np.int64)
    x = np.asarray(windows, dtype=np.float32)[ordered]
    context = context_matrix(beats, runs, inputs)
    index = run_index([len(r) for r in runs], length, stride)
    probs = np.zeros((len(ordered), model.config["n_classes"]))
    if not len(ordered):
        return probs
    (run_probs,) = predict(
        model,
        BeatRuns(x, context, index),
        batch_size=64,
        device="cpu",
        forward=lambda m, b: torch.softmax(m(b[0], b[1], b[2]).float(), dim=-1),
    )
    weights = np.broadcast_to(run_weights(length), index.shape)
    valid = index >= 0
    total = np.zeros(len(ordered))
    np.add.at(probs, index[valid], run_probs[valid] * weights[valid][:, None])
    np.add.at(total, index[valid], weights[valid])
    out = np.empty_like(probs)
    out[ordered] = probs / total[:, None]
    return out


def predict_rhythm(
    model: RhythmBiLSTM,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    label_mapping: dict[str, list[str]],
    split: str,
) -> pd.DataFrame:
    """Predictions for every beat of one split, in the one-beat models' format."""
    check_aligned(beats, windows)
    rows = np.flatnonzero(beats["split"].to_numpy() == split)
    part = beats.iloc[rows].reset_index(drop=True)
    probs = rhythm_probabilities(model, part, windows["windows"][rows])
    return prediction_table(part, probs, list(label_mapping))


def predict_val_rhythm(
    model: RhythmBiLSTM,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    label_mapping: dict[str, list[str]],
) -> pd.DataFrame:
    """Predictions for every validation beat (the only ones to choose on)."""
    return predict_rhythm(model, beats, windows, label_mapping, "val")


def predict_test_rhythm(
    model: RhythmBiLSTM,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    label_mapping: dict[str, list[str]],
) -> pd.DataFrame:
    """Predictions for every test beat."""
    return predict_rhythm(model, beats, windows, label_mapping, "test")
