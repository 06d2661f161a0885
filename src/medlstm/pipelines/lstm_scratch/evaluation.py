"""lstm_scratch evaluation: both models on validation and the held-out test split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from medlstm.core import evaluation
from medlstm.core.training import predict
from medlstm.models.lstm_twin import TorchTwinLSTM
from medlstm.pipelines.lstm_scratch.ingestion import (
    TaskArrays,
    shift_and_scale,
    split_values,
)
from medlstm.pipelines.lstm_scratch.training import BACKENDS
from medlstm.scratch import LSTMModel
from medlstm.scratch import predict as numpy_predict


def _outputs(
    x: np.ndarray, numpy_state: dict[str, np.ndarray], torch_model: TorchTwinLSTM
) -> dict[str, np.ndarray]:
    """Last-timestep outputs ``(N, O)`` of both models for inputs ``x`` ``(N, T, 1)``."""
    dtype = next(torch_model.parameters()).dtype
    inputs = TensorDataset(torch.from_numpy(x).to(dtype))
    (torch_out,) = predict(torch_model, inputs, device="cpu")
    numpy_out = numpy_predict(LSTMModel.from_state_dict(numpy_state), x)
    return {
        "numpy": numpy_out.astype(np.float64),
        "torch": torch_out.astype(np.float64),
    }


def evaluate_regression(
    arrays: TaskArrays,
    sequences: pd.DataFrame,
    numpy_state: dict[str, np.ndarray],
    torch_model: TorchTwinLSTM,
    examples: list[list[float]],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Errors in data units on validation (in range) and test (held out, outside it).

    The naive extrapolation ``x_last + (x_last - x_0) / (L - 1)`` is reported beside
    the models: it is exact on noise-free arithmetic sequences, which makes it the
    honest yardstick of this demo.

    Args:
        examples: ``[start, step]`` pairs shown in the report, e.g. ``[0, 1]`` is
            0, 1, ..., 9 whose next value is 10.

    Returns:
        Test predictions (one row per test sequence) and metrics per model and split,
        plus the worked examples.
    """
    metrics: dict[str, Any] = {name: {} for name in (*BACKENDS, "naive_extrapolation")}
    for split in ("val", "test"):
        values = split_values(sequences, split)
        rows = sequences[sequences["split"] == split]
        last, scale = arrays.last[split], arrays.scale[split]
        outputs = _outputs(arrays.x[split], numpy_state, torch_model)
        predictions = {name: last + scale * out[:, 0] for name, out in outputs.items()}
        mean_step = (last - values[:, 0]) / (values.shape[1] - 1)
        predictions["naive_extrapolation"] = last + mean_step
        for name, prediction in predictions.items():
            target = rows["target"].to_numpy()
            metrics[name][split] = evaluation.regression_metrics(target, prediction)
    table = rows[["start", "step", "target"]].reset_index(drop=True)  # the test rows
    table = table.assign(**{f"{name}_prediction": p for name, p in predictions.items()})

    pairs = np.asarray(examples, dtype=np.float64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:  # noqa: PLR2004
        raise ValueError(
            "Parameter 'lstm_scratch.regression.examples' must be a list of [start, step] "
            f"pairs, got {examples!r}."
        )
    windows = pairs[:, :1] + pairs[:, 1:] * np.arange(values.shape[1])
    x, last, scale = shift_and_scale(windows)
    outputs = _outputs(x, numpy_state, torch_model)
    metrics["examples"] = [
        {
            "sequence": f"{w[0]:g}, {w[1]:g}, ..., {w[-1]:g}",
            "next": float(2 * w[-1] - w[-2]),
            **{b: float(last[k] + scale[k] * outputs[b][k, 0]) for b in BACKENDS},
        }
        for k, w in enumerate(windows)
    ]
    return table, metrics


def evaluate_classification(
    arrays: TaskArrays, numpy_state: dict[str, np.ndarray], torch_model: TorchTwinLSTM
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Accuracy, per-class metrics and confusion matrices on the held-out test split.

    Returns:
        Test predictions (true and predicted label per model) and metrics per model.
    """
    outputs = _outputs(arrays.x["test"], numpy_state, torch_model)
    truth = arrays.y["test"]
    table = pd.DataFrame(
        {"label": truth, "label_name": np.asarray(arrays.class_names)[truth]}
    )
    metrics = {}
    for name, logits in outputs.items():
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        predicted = logits.argmax(axis=1)
        table[f"{name}_prediction"] = predicted
        metrics[name] = evaluation.classification_metrics(
            truth, predicted, arrays.class_names, probabilities
        )
    return table, metrics
