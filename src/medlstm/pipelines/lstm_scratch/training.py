"""lstm_scratch training: the NumPy LSTM and its torch twin, trained alike.

Both get the same arrays, the same initial weights, the same optimiser settings (one
``training`` block) and the same number of CPU threads, so that metrics, learning
curves and wall time compare like for like.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from medlstm.core.params import parsed
from medlstm.core.threads import thread_limits
from medlstm.core.training import StepOutput, TrainingParams, fit, seed_everything
from medlstm.models.lstm_twin import TorchTwinLSTM
from medlstm.pipelines.lstm_scratch.ingestion import TaskArrays, positive_count
from medlstm.scratch import LSTMModel, TrainConfig, train

BACKENDS = ("numpy", "torch")


# TrainingParams settings the NumPy trainer does not have, with the only value it supports.
_NUMPY_FIXED = {
    "optimizer": "adam",
    "monitor": "val_loss",
    "monitor_mode": "min",
    "label_smoothing": 0.0,
    "class_weighting": "none",
    "weighted_sampling": False,
    "precision": "fp32",
}


def _training_params(values: dict[str, Any], task: str) -> TrainingParams:
    where = f"lstm_scratch.{task}.training"
    params = parsed(TrainingParams, values, where)
    for key, supported in _NUMPY_FIXED.items():
        if getattr(params, key) != supported:
            raise ValueError(
                f"Parameter '{where}.{key}' is {getattr(params, key)!r}; both implementations "
                f"are trained alike and the NumPy one supports only {supported!r}."
            )
    return params


def _numpy_model(arrays: TaskArrays, model_params: dict[str, Any]) -> LSTMModel:
    return LSTMModel(
        input_size=arrays.x["train"].shape[2],
        hidden_size=model_params["hidden_size"],
        output_size=arrays.output_size,
        num_layers=model_params.get("num_layers", 1),
        forget_bias=model_params.get("forget_bias", 1.0),
        dtype=model_params.get("dtype", "float64"),
        seed=model_params.get("seed", 0),
    )


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Limit BLAS (NumPy) and torch to ``count`` threads, restoring both afterwards."""
    positive_count(count, "lstm_scratch.compute.threads")
    with thread_limits(count):
        yield


def _summary(result: Any, seconds: float, **extra) -> dict[str, Any]:
    """Wall time, epochs and the best epoch of either trainer's ``result``."""
    history = result.history
    return {
        "fit_seconds": seconds,
        "median_epoch_seconds": statistics.median(r["epoch_seconds"] for r in history),
        "epochs_run": len(history),
        "best_epoch": result.best_epoch,
        "best_val_loss": min(r["val_loss"] for r in history),
        "stopped_early": result.stopped_early,
        **extra,
    }


def train_numpy(
    arrays: TaskArrays,
    model_params: dict[str, Any],
    training_params: dict[str, Any],
    compute_params: dict[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train the NumPy LSTM on the training split, choosing the epoch on validation.

    Returns:
        The model's ``state_dict`` (arrays) and its log ``{"history", "summary"}``.
    """
    params = _training_params(training_params, arrays.task)
    config = TrainConfig(
        **{f.name: getattr(params, f.name) for f in dataclasses.fields(TrainConfig)}
    )
    model = _numpy_model(arrays, model_params)
    threads = compute_params["threads"]
    with _threads(threads):
        started = time.perf_counter()
        result = train(
            model,
            arrays.task,
            arrays.x["train"],
            arrays.y["train"],
            arrays.x["val"],
            arrays.y["val"],
            config,
        )
        seconds = time.perf_counter() - started
    summary = _summary(
        result,
        seconds,
        n_parameters=model.num_parameters(),
        threads=threads,
        dtype=model.dtype.name,
    )
    return model.state_dict(), {"history": result.history, "summary": summary}


def _mse_batch_loss(model: torch.nn.Module, batch: list[torch.Tensor]) -> StepOutput:
    x, target = batch
    return StepOutput(torch.nn.functional.mse_loss(model(x), target))


def _tensor_set(arrays: TaskArrays, split: str, dtype: torch.dtype) -> TensorDataset:
    x = torch.from_numpy(arrays.x[split]).to(dtype)
    y = torch.from_numpy(arrays.y[split])
    return TensorDataset(x, y.to(dtype) if arrays.task == "regression" else y)


def train_torch(
    arrays: TaskArrays,
    model_params: dict[str, Any],
    training_params: dict[str, Any],
    compute_params: dict[str, Any],
) -> tuple[TorchTwinLSTM, dict[str, Any]]:
    """Train the ``torch.nn.LSTM`` twin with ``medlstm.core.training.fit``.

    It starts from the NumPy model's initial weights (same seed), in the same dtype.

    Returns:
        The model (best epoch's weights) and its log ``{"history", "summary"}``.
    """
    params = _training_params(training_params, arrays.task)
    seed_everything(params.seed)
    model = TorchTwinLSTM.from_numpy_model(_numpy_model(arrays, model_params))
    dtype = next(model.parameters()).dtype
    batch_loss = _mse_batch_loss if arrays.task == "regression" else None
    threads = compute_params["threads"]
    with _threads(threads):
        started = time.perf_counter()
        result = fit(
            model,
            _tensor_set(arrays, "train", dtype),
            _tensor_set(arrays, "val", dtype),
            params,
            batch_loss=batch_loss,
        )
        seconds = time.perf_counter() - started
    summary = _summary(
        result,
        seconds,
        n_parameters=sum(p.numel() for p in model.parameters()),
        threads=threads,
        dtype=str(dtype).removeprefix("torch."),
    )
    return result.model, {"history": result.history, "summary": summary}
