"""Modelling nodes: patient-level folds, cross-validation, the final model, prediction.

Every split is by patient (or by a patient key shared by several folders, see
``split.group_pattern``) and stratified by grade; ``check_folds`` refuses any
split in which one patient is on two sides.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn
from torch.utils.data import TensorDataset

from medlstm.core.evaluation import (
    classification_metrics,
    history_to_mlflow,
    summary_to_mlflow,
)
from medlstm.core.params import parsed
from medlstm.core.training import (
    TrainingParams,
    class_probabilities,
    fit,
    seed_everything,
)
from medlstm.models.cnn3d_lstm import CNN3DLSTM
from medlstm.pipelines.smri_cnn_lstm.ingestion import GRADE_NAMES

logger = logging.getLogger(__name__)

SUMMARY_METRICS = ("accuracy", "roc_auc", "sensitivity", "specificity")


def patient_groups(patient_ids: np.ndarray, group_pattern: str | None) -> np.ndarray:
    """The patient key of each folder: the regex's first group, else the whole id.

    BraTS 2015 stores time points of one patient as ``brats_tcia_pat123_0001``,
    ``..._0002``: ``group_pattern: "^(.*)_\\d+$"`` keeps them on one side of a split.
    """
    if not group_pattern:
        return np.asarray(patient_ids)
    regex = re.compile(group_pattern)
    keys = []
    for patient_id in patient_ids:
        match = regex.search(str(patient_id))
        keys.append(match.group(1) if match and match.groups() else str(patient_id))
    return np.array(keys)


def _stratified_group_split(
    y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    smallest = int(np.bincount(y, minlength=len(GRADE_NAMES)).min())
    if smallest < n_splits:
        logger.warning(
            "smri split: the smaller grade has %d patients; %d folds instead of %d",
            smallest,
            max(2, smallest),
            n_splits,
        )
        n_splits = max(2, smallest)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def check_folds(
    folds: dict[str, Any], patient_ids: np.ndarray, groups: np.ndarray
) -> None:
    """Raise if a patient key sits on two sides of any split, or a test set overlaps.

    Raises:
        ValueError: Naming the split and the patients involved.
    """
    group_of = dict(zip(patient_ids.tolist(), groups.tolist(), strict=True))
    splits = [*folds["folds"], {"fold": "final", **folds["final"]}]
    for split in splits:
        sides = [side for side in ("train", "val", "test") if side in split]
        for i, a in enumerate(sides):
            for b in sides[i + 1 :]:
                shared = {group_of[p] for p in split[a]} & {
                    group_of[p] for p in split[b]
                }
                if shared:
                    raise ValueError(
                        f"patient leakage in split {split['fold']}: {sorted(shared)[:5]} "
                        f"in both {a} and {b}"
                    )
    tested = [p for fold in folds["folds"] for p in fold["test"]]
    if len(tested) != len(set(tested)):
        raise ValueError("a patient is in the test set of two folds")


def make_folds(
    model_input: dict[str, np.ndarray], split: dict[str, Any]
) -> dict[str, Any]:
    """Patient-level stratified folds: k-fold CV for few patients, else one hold-out.

    Args:
        model_input: ``smri_model_input`` (uses ``y`` and ``patient_id``).
        split: ``smri_cnn_lstm.split``: ``strategy`` (auto, kfold, holdout),
            ``n_folds``, ``holdout_min_patients`` (auto picks hold-out from this
            many patients), ``test_fraction``, ``val_fraction`` (of the training
            part, for early stopping), ``group_pattern`` and ``seed``.

    Returns:
        ``{"strategy", "folds": [{"fold", "train", "val", "test"}], "final":
        {"train", "val"}}`` with patient ids; ``final`` uses every patient.
    """
    y, ids = model_input["y"], model_input["patient_id"]
    counts = np.bincount(y, minlength=len(GRADE_NAMES))
    if counts.min() < 2:
        raise ValueError(
            f"patient-level splits need at least 2 patients of each grade, got "
            f"{dict(zip(GRADE_NAMES, counts.tolist(), strict=True))}"
        )
    groups = patient_groups(ids, split.get("group_pattern"))
    strategy = split["strategy"]
    if strategy == "auto":
        strategy = "holdout" if len(ids) >= split["holdout_min_patients"] else "kfold"
    if strategy not in ("kfold", "holdout"):
        raise ValueError(
            f"smri_cnn_lstm.split.strategy must be auto, kfold or holdout, got {strategy!r}"
        )
    seed = split["seed"]
    val_splits = round(1 / split["val_fraction"])
    if strategy == "kfold":
        outer = _stratified_group_split(y, groups, split["n_folds"], seed)
    else:
        outer = _stratified_group_split(
            y, groups, round(1 / split["test_fraction"]), seed
        )[:1]

    def train_val(index: np.ndarray, salt: int) -> dict[str, list[str]]:
        inner_train, inner_val = _stratified_group_split(
            y[index], groups[index], val_splits, seed + salt
        )[0]
        return {
            "train": ids[index[inner_train]].tolist(),
            "val": ids[index[inner_val]].tolist(),
        }

    folds = {
        "strategy": strategy,
        "group_pattern": split.get("group_pattern"),
        "folds": [
            {"fold": k, **train_val(rest, k + 1), "test": ids[test].tolist()}
            for k, (rest, test) in enumerate(outer)
        ],
        "final": train_val(np.arange(len(ids)), 0),
    }
    check_folds(folds, ids, groups)
    logger.info(
        "smri split: %s, %d fold(s), test sizes %s",
        strategy,
        len(folds["folds"]),
        [len(f["test"]) for f in folds["folds"]],
    )
    return folds


def training_params(
    training: dict[str, Any] | TrainingParams, overrides: dict[str, Any] | None
) -> TrainingParams:
    """The shared ``training`` block with one architecture's overrides applied.

    A flattened embedding has thousands of inputs per LSTM gate, so CNN-1 needs a
    smaller learning rate than CNN-2/3: each architecture may override keys.
    ``training`` is the mapping or the `TrainingParams` preflight built from it; an
    override is validated with the block, as if written in it.
    """
    where = "smri_cnn_lstm.training"
    shared = parsed(TrainingParams, training, where)
    if not overrides:
        return shared
    return TrainingParams.from_dict(
        {**dataclasses.asdict(shared), **overrides}, where=where
    )


def build_model(model: dict[str, Any], model_input: dict[str, np.ndarray]) -> CNN3DLSTM:
    """A fresh ``CNN3DLSTM`` for this input's modality count and volume shape."""
    _, n_modalities, *shape = model_input["x"].shape
    return CNN3DLSTM(input_shape=shape, n_modalities=n_modalities, **model)


def _subset(
    model_input: dict[str, np.ndarray], patient_ids: list[str]
) -> TensorDataset:
    index = {p: i for i, p in enumerate(model_input["patient_id"].tolist())}
    rows = np.array([index[p] for p in patient_ids])
    return TensorDataset(
        torch.from_numpy(np.ascontiguousarray(model_input["x"][rows])),
        torch.from_numpy(model_input["y"][rows].astype(np.int64)),
    )


def _train(
    model_input: dict[str, np.ndarray],
    split: dict[str, list[str]],
    model: dict[str, Any],
    params: TrainingParams,
) -> tuple[nn.Module, Any]:
    seed_everything(params.seed)
    network = build_model(model, model_input)
    result = fit(
        network,
        _subset(model_input, split["train"]),
        _subset(model_input, split["val"]),
        params,
        n_classes=len(GRADE_NAMES),
    )
    return result.model, result


def hgg_probability(
    network: nn.Module, x: np.ndarray, batch_size: int = 8
) -> np.ndarray:
    """P(HGG) for volumes (N, M, D, H, W), in eval mode: shape (N,)."""
    probabilities = class_probabilities(network, x, batch_size=batch_size)
    return probabilities[:, GRADE_NAMES.index("HGG")]


def _binary_metrics(y: np.ndarray, p_hgg: np.ndarray) -> dict[str, Any]:
    scores = np.stack([1 - p_hgg, p_hgg], axis=1)
    metrics = classification_metrics(y, (p_hgg >= 0.5).astype(int), GRADE_NAMES, scores)
    hgg = metrics["per_class"]["HGG"]
    metrics["sensitivity"], metrics["specificity"] = hgg["recall"], hgg["specificity"]
    return metrics


def summarise_folds(fold_metrics: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation and count over folds of each summary metric."""
    summary = {}
    for name in SUMMARY_METRICS:
        values = np.array([m[name] for m in fold_metrics if name in m], dtype=float)
        summary[name] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "n_folds": int(values.size),
        }
    return summary


def _run_fold(
    model_input: dict[str, np.ndarray],
    rows: dict[str, int],
    fold: dict[str, Any],
    model: dict[str, Any],
    params: TrainingParams,
) -> tuple[nn.Module, dict[str, Any], np.ndarray, np.ndarray]:
    """Train on one fold and test on its held-out patients.

    Returns:
        The network, the fold's result (history, best epoch, test metrics and
        predictions), and the test labels and HGG probabilities for pooling.
    """
    network, result = _train(model_input, fold, model, params)
    test_rows = np.array([rows[p] for p in fold["test"]])
    y_test = model_input["y"][test_rows]
    p_hgg = hgg_probability(network, model_input["x"][test_rows])
    metrics = _binary_metrics(y_test, p_hgg)
    logger.info(
        "smri %s fold %d: accuracy %.3f, ROC-AUC %s",
        model["extractor"],
        fold["fold"],
        metrics["accuracy"],
        metrics.get("roc_auc"),
    )
    fold_result = {
        "fold": fold["fold"],
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "history": result.history,
        "metrics": metrics,
        "predictions": [
            {"patient": p, "grade": GRADE_NAMES[t], "p_hgg": float(q)}
            for p, t, q in zip(fold["test"], y_test.tolist(), p_hgg, strict=True)
        ],
    }
    return network, fold_result, y_test, p_hgg


def cross_validate(
    model_input: dict[str, np.ndarray],
    folds: dict[str, Any],
    label: str,
    model: dict[str, Any],
    training: dict[str, Any],
    training_overrides: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, list[dict]], dict[str, dict]]:
    """Train and test one architecture on every fold.

    Args:
        model_input: ``smri_model_input``.
        folds: ``smri_folds`` from ``make_folds``.
        label: The model's name in reports, e.g. ``CNN-2 (GAP)``.
        model: ``CNN3DLSTM`` arguments except the input shape.
        training: ``smri_cnn_lstm.training`` (``TrainingParams``).
        training_overrides: This architecture's changes to ``training``.

    Returns:
        The CV results (per fold: history, best epoch, test metrics and
        predictions; ``summary``: mean and spread over folds; ``pooled``: the
        metrics of all out-of-fold predictions together), the fold histories and
        the summary metrics, both shaped for MLflow.
    """
    params = training_params(training, training_overrides)
    rows = {p: i for i, p in enumerate(model_input["patient_id"].tolist())}
    results, mlflow_history = [], {}
    pooled_y, pooled_p = [], []
    for fold in folds["folds"]:
        fold_params = dataclasses.replace(params, seed=params.seed + fold["fold"])
        network, result, y_test, p_hgg = _run_fold(
            model_input, rows, fold, model, fold_params
        )
        results.append(result)
        mlflow_history.update(
            history_to_mlflow(result["history"], prefix=f"fold{fold['fold']}.")
        )
        pooled_y.append(y_test)
        pooled_p.append(p_hgg)
    cv = {
        "label": label,
        "architecture": model,
        "strategy": folds["strategy"],
        "folds": results,
        "summary": summarise_folds([r["metrics"] for r in results]),
        "pooled": _binary_metrics(np.concatenate(pooled_y), np.concatenate(pooled_p)),
        "n_parameters": sum(p.numel() for p in network.parameters()),
    }
    pooled = {k: cv["pooled"][k] for k in SUMMARY_METRICS if k in cv["pooled"]}
    return (
        cv,
        mlflow_history,
        summary_to_mlflow({"cv": cv["summary"], "pooled": pooled}),
    )


def train_final_model(
    model_input: dict[str, np.ndarray],
    folds: dict[str, Any],
    model: dict[str, Any],
    training: dict[str, Any],
    training_overrides: dict[str, Any] | None,
) -> tuple[nn.Module, dict[str, list[dict]]]:
    """Train on every patient (``folds.final``: train + early-stopping validation).

    This is the model that predicts new patients; its performance is the CV
    estimate, not anything measured on these patients.
    """
    params = training_params(training, training_overrides)
    network, result = _train(model_input, folds["final"], model, params)
    return network.eval(), history_to_mlflow(result.history, prefix="final.")
