"""Model inputs, losses, training and prediction for the autoencoder and the CNN.

Both models see the same tensors (beat window, RR features, label) from the same
split and are trained by the shared core, so their metrics compare like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from medlstm.core.params import parsed
from medlstm.core.training import (
    TrainingParams,
    fit,
    predict,
    seed_everything,
)
from medlstm.datasets.window_shards import ShardedTensorDataset, ShardedWindows
from medlstm.models.cnn1d import CNN1DClassifier
from medlstm.models.ecg_autoencoder import (
    LSTMAutoencoderClassifier,
    LSTMAutoencoderEnsemble,
)
from medlstm.pipelines.ecg_autoencoder.losses import (
    AutoencoderLoss,
    LossFactory,
    check_loss_block,
    cnn_loss,
)

logger = logging.getLogger(__name__)


def check_aligned(beats: pd.DataFrame, windows: dict[str, np.ndarray]) -> None:
    """Raise unless row ``i`` of the windows belongs to beat ``i`` of the table."""
    same = (
        len(beats) == len(windows["windows"])
        and np.array_equal(beats["record"].to_numpy(dtype=str), windows["record"])
        and np.array_equal(beats["sample"].to_numpy(dtype=np.int64), windows["sample"])
    )
    if not same:
        raise ValueError(
            f"The beat table ({len(beats)} rows) and the window array "
            f"({len(windows['windows'])} rows) do not describe the same beats; "
            "re-run the ingestion nodes."
        )


def rr_matrix(beats: pd.DataFrame, features: dict[str, Any]) -> np.ndarray:
    """The RR features the classifiers take, (n, R) float32, clipped to ``rr_clip``.

    Clipping keeps a beat after a long unannotated stretch (noise, flutter) from
    dominating the head's input scale.
    """
    columns = list(features.get("rr_columns", []))
    missing = sorted(set(columns) - set(beats.columns))
    if missing:
        raise ValueError(f"RR feature columns {missing} are not in the beat table.")
    values = beats[columns].to_numpy(dtype=np.float32, copy=True)
    clip = features.get("rr_clip")
    return np.clip(values, 0.0, clip) if clip else values


def label_indices(labels: pd.Series, class_names: Sequence[str]) -> np.ndarray:
    """Class indices of string labels; an unknown label is an error."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(
            f"Labels {unknown} are not among the classes {list(class_names)}."
        )
    return labels.map(index).to_numpy(dtype=np.int64, copy=True)


def split_tensors(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    split: str,
    features: dict[str, Any],
    class_names: Sequence[str],
) -> TensorDataset | ShardedTensorDataset:
    """``TensorDataset(x (n, T), rr (n, R), y (n,))`` of one split; for windows
    stored in shards (`ShardedWindows`), a `ShardedTensorDataset` that reads each
    batch's windows from them instead of holding the split in memory."""
    rows = np.flatnonzero(beats["split"].to_numpy() == split)
    part = beats.iloc[rows]
    rr = torch.from_numpy(rr_matrix(part, features))
    y = torch.from_numpy(label_indices(part["label"], class_names))
    if isinstance(windows["windows"], ShardedWindows):
        return ShardedTensorDataset(windows["windows"].take(rows), rr, y)
    return TensorDataset(
        torch.from_numpy(
            np.ascontiguousarray(windows["windows"][rows], dtype=np.float32)
        ),
        rr,
        y,
    )


@dataclass(frozen=True)
class TrainingData:
    """The beats, windows and features both models train on, and their classes."""

    beats: pd.DataFrame
    windows: dict[str, np.ndarray]
    features: dict[str, Any]
    class_names: list[str]

    def split(self, name: str) -> TensorDataset | ShardedTensorDataset:
        """The tensors of one split (see `split_tensors`)."""
        return split_tensors(
            self.beats, self.windows, name, self.features, self.class_names
        )


def _train(
    build_model: Callable[[], nn.Module],
    make_loss: LossFactory,
    data: TrainingData,
    block: dict[str, Any],
    where: str,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """One model built after seeding, trained by the core on ``data``'s train split
    and selected on its val split, as ``block`` (``training``, ``loss``,
    ``checkpoint_path``) says."""
    check_aligned(data.beats, data.windows)
    return fit_block(
        build_model,
        make_loss,
        data.split("train"),
        data.split("val"),
        block,
        where,
        n_classes=len(data.class_names),
        fingerprint={"features": data.features, "classes": list(data.class_names)},
    )


def fit_block(
    build_model: Callable[[], nn.Module],
    make_loss: LossFactory,
    train_set: Dataset,
    val_set: Dataset,
    block: dict[str, Any],
    where: str,
    n_classes: int,
    fingerprint: dict[str, Any],
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A model built after seeding and trained by the core as a model's parameter
    ``block`` (``training``, ``loss``, ``checkpoint_path``) says; ``fingerprint``
    holds what else must match for a checkpoint to resume. The ``training`` block
    arrives inside the model's block, a mapping: preflight validated it before the
    run and hands on only whole inputs, so it is parsed here again."""
    training = parsed(TrainingParams, block.get("training"), f"{where}.training")
    loss = check_loss_block(block.get("loss"), where)
    seed_everything(training.seed)
    model = build_model()
    result = fit(
        model,
        train_set,
        val_set,
        training,
        make_batch_loss=make_loss(loss),
        n_classes=n_classes,
        checkpoint_path=block.get("checkpoint_path"),
        # A checkpoint resumes only the same model, loss and features.
        fingerprint_extra={
            "model": getattr(model, "config", None),
            "loss": loss,
            "loss_weights": getattr(make_loss, "weights", None),
            **fingerprint,
        },
    )
    return result.model, result.history


def training_scale(
    windows: np.ndarray | ShardedWindows, train: np.ndarray, chunk_rows: int = 8192
) -> float:
    """Standard deviation of the training windows (1.0 where it is 0).

    Windows stored in shards are read ``chunk_rows`` rows at a time and the moments
    summed in float64, so the training split never sits in memory at once; in memory
    the array's own ``std`` is used, as it always was.
    """
    if not isinstance(windows, ShardedWindows):
        return float(windows[train].std()) or 1.0
    rows = np.flatnonzero(train)
    total = total_sq = 0.0
    for start in range(0, len(rows), chunk_rows):
        block = np.asarray(windows[rows[start : start + chunk_rows]], np.float64)
        total += float(block.sum())
        total_sq += float(np.square(block).sum())
    count = len(rows) * windows.shape[1]
    variance = max(total_sq / count - (total / count) ** 2, 0.0) if count else 0.0
    return float(np.sqrt(variance)) or 1.0


def train_autoencoder(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    params: dict[str, Any],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    alpha: float,
    beta: float,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train the LSTM autoencoder-classifier on the train split, selected on val.

    Args:
        beats: Beat table with ``split``.
        windows: Window arrays aligned with ``beats``.
        params: ``ecg_autoencoder.autoencoder``: ``model``, ``training`` (the core's
            TrainingParams, ``precision`` and ``class_weighting`` among them),
            ``loss`` (``focal_gamma``) and an optional ``checkpoint_path``.
        features: ``ecg_autoencoder.features`` (RR columns and clip).
        label_mapping: Class name -> annotation symbols; its keys are the classes.
        alpha: Weight of the reconstruction MSE.
        beta: Weight of the cross-entropy.

    Returns:
        The trained model (best validation epoch) and its per-epoch history. With
        ``params["ensemble_seeds"]`` (a list), one member per seed, trained apart
        and returned as one `LSTMAutoencoderEnsemble`; the history then holds every
        member's epochs, each row tagged with its ``member`` index.
    """
    data = TrainingData(beats, windows, features, list(label_mapping))
    train = beats["split"].to_numpy() == "train"
    build = partial(
        LSTMAutoencoderClassifier,
        seq_len=windows["windows"].shape[1],
        n_classes=len(data.class_names),
        n_rr_features=len(features.get("rr_columns", [])),
        # Fitted on the training beats only, and saved in the model's config.
        input_scale=training_scale(windows["windows"], train),
        **rr_statistics(beats, features),
        **params.get("model", {}),
    )
    loss = AutoencoderLoss(float(alpha), float(beta))
    where = "ecg_autoencoder.autoencoder"
    seeds = ensemble_seeds(params, where)
    if not seeds:
        return _train(build, loss, data, params, where)
    members, history = [], []
    for i, seed in enumerate(seeds):
        logger.info(
            "Autoencoder ensemble member %d of %d (seed %d).", i + 1, len(seeds), seed
        )
        model, member_history = _train(
            build, loss, data, member_block(params, seed), where
        )
        members.append(model)
        history += [{**row, "member": i} for row in member_history]
    return LSTMAutoencoderEnsemble.of(members), history


def ensemble_seeds(params: dict[str, Any], where: str) -> list[int]:
    """The block's ``ensemble_seeds``: [] (one model, ``training.seed``) or distinct ints."""
    seeds = params.get("ensemble_seeds") or []
    if not isinstance(seeds, list | tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in seeds
    ):
        raise ValueError(
            f"'{where}.ensemble_seeds' must be a list of integers, got {seeds!r}."
        )
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"'{where}.ensemble_seeds' repeats a seed: {list(seeds)}.")
    return list(seeds)


def member_block(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The block for one ensemble member: its own seed and its own checkpoint file."""
    block = {**params, "training": {**(params.get("training") or {}), "seed": seed}}
    if params.get("checkpoint_path"):
        path = Path(params["checkpoint_path"])
        block["checkpoint_path"] = str(
            path.with_name(f"{path.stem}.seed{seed}{path.suffix}")
        )
    return block


def rr_statistics(beats: pd.DataFrame, features: dict[str, Any]) -> dict[str, Any]:
    """``rr_mean`` / ``rr_scale`` of the training beats' RR features for a model's
    config, or {} unless ``features.rr_standardize`` is on (and there are RR columns).
    """
    if not (features.get("rr_standardize") and features.get("rr_columns")):
        return {}
    rr_train = rr_matrix(beats[beats["split"].to_numpy() == "train"], features)
    std = rr_train.std(0)
    # A feature constant in training keeps its units instead of blowing up.
    return {
        "rr_mean": rr_train.mean(0).tolist(),
        "rr_scale": np.where(std > 1e-6, std, 1.0).tolist(),
    }


def train_cnn(
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    params: dict[str, Any],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train the 1D-CNN baseline on the same split and inputs as the autoencoder."""
    build = partial(
        CNN1DClassifier,
        n_classes=len(label_mapping),
        n_rr_features=len(features.get("rr_columns", [])),
        **rr_statistics(beats, features),
        **params.get("model", {}),
    )
    data = TrainingData(beats, windows, features, list(label_mapping))
    return _train(build, cnn_loss, data, params, "ecg_autoencoder.cnn")


def prediction_table(
    beats: pd.DataFrame, probs: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Every model's prediction format: the beats' record, database, sample, symbol
    and label (those present), ``predicted`` and ``p_<class>`` from ``probs`` (n, C)."""
    keep = [
        c
        for c in ("record", "database", "sample", "symbol", "label")
        if c in beats.columns
    ]
    out = beats[keep].reset_index(drop=True).copy()
    out["predicted"] = np.asarray(class_names)[probs.argmax(axis=1)]
    for i, name in enumerate(class_names):
        out[f"p_{name}"] = probs[:, i]
    return out


def predict_beats(
    model: nn.Module,
    beats: pd.DataFrame,
    x: np.ndarray,
    features: dict[str, Any],
    class_names: Sequence[str],
) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """Class probabilities of every beat, with the autoencoder's reconstruction.

    Args:
        model: The autoencoder or the CNN.
        beats: Beat table rows (record, sample, RR columns; label optional).
        x: Their windows, (n, T).
        features: ``ecg_autoencoder.features``.
        class_names: Class order of the model's logits.

    Returns:
        ``(predictions, reconstructions (n, T) | None, latent (n, L) | None)``;
        predictions hold record, sample, label (if known), ``predicted``,
        ``p_<class>`` and, for the autoencoder, ``recon_error`` (MSE per beat, in
        the standardised units of the reconstruction). Reconstructions are
        returned in the input units.
    """
    data = TensorDataset(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(rr_matrix(beats, features)),
    )
    is_ae = isinstance(model, LSTMAutoencoderClassifier | LSTMAutoencoderEnsemble)
    if is_ae:
        recon, logits, latent = predict(
            model,
            data,
            device="cpu",
            forward=lambda m, b: m(b[0], b[1], return_latent=True),
        )
        recon_error = ((recon - model.standardize(x)) ** 2).mean(axis=1)
        recon = recon * model.input_scale
    else:
        (logits,) = predict(
            model, data, device="cpu", forward=lambda m, b: m(b[0], b[1])
        )
        recon = latent = None
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    out = prediction_table(beats, probs, class_names)
    if recon is not None:
        out["recon_error"] = recon_error
    return out, recon, latent


def predict_split(
    model: nn.Module,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
    split: str,
) -> pd.DataFrame:
    """Predictions for every beat of one split (see `predict_beats`)."""
    check_aligned(beats, windows)
    rows = np.flatnonzero(beats["split"].to_numpy() == split)
    predictions, _, _ = predict_beats(
        model, beats.iloc[rows], windows["windows"][rows], features, list(label_mapping)
    )
    return predictions


def predict_test(
    model: nn.Module,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> pd.DataFrame:
    """Predictions for every test beat."""
    return predict_split(model, beats, windows, features, label_mapping, "test")


def predict_val(
    model: nn.Module,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> pd.DataFrame:
    """Predictions for every validation beat (the only ones to tune on)."""
    return predict_split(model, beats, windows, features, label_mapping, "val")


def predict_test_autoencoder(
    model: LSTMAutoencoderClassifier | LSTMAutoencoderEnsemble,
    beats: pd.DataFrame,
    windows: dict[str, np.ndarray],
    features: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test predictions (see `predict_beats`) and the test beats' latent vectors.

    Returns:
        ``(predictions, latent)``; latent holds record, sample, label, z_0 .. z_{L-1}.
    """
    check_aligned(beats, windows)
    rows = np.flatnonzero(beats["split"].to_numpy() == "test")
    part = beats.iloc[rows]
    predictions, _, latent = predict_beats(
        model, part, windows["windows"][rows], features, list(label_mapping)
    )
    z = pd.DataFrame(latent, columns=[f"z_{i}" for i in range(latent.shape[1])])
    meta = part[["record", "sample", "label"]].reset_index(drop=True)
    return predictions, pd.concat([meta, z], axis=1)
