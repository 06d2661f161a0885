"""Nodes of lstm_scratch: two synthetic tasks, the NumPy LSTM and its torch twin.

Both implementations get the same data, the same initial weights, the same
optimiser settings (one ``training`` block) and the same number of CPU threads,
so that metrics, learning curves and wall time compare like for like.

Layouts: sequences are ``(N, T, 1)`` (batch, time, features); regression targets
``(N, 1)``, class labels ``(N,)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from torch.utils.data import TensorDataset

from medlstm.core import evaluation
from medlstm.core.reporting import markdown_table
from medlstm.core.threads import thread_limits
from medlstm.core.training import (
    StepOutput,
    TrainingParams,
    fit,
    predict,
    seed_everything,
)
from medlstm.models.lstm_twin import TorchTwinLSTM
from medlstm.scratch import LSTMModel, TrainConfig, train
from medlstm.scratch import predict as numpy_predict

SPLITS = ("train", "val", "test")
PATTERNS = ("rising", "falling", "periodic", "noise")
MIN_CLASSES = 2
BACKENDS = ("numpy", "torch")


@dataclasses.dataclass
class TaskArrays:
    """Model-ready arrays of one task, per split.

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        x: Split -> normalised sequences ``(N, T, 1)``.
        y: Split -> scaled targets ``(N, 1)`` or labels ``(N,)``.
        output_size: Outputs of the model (1, or the number of classes).
        class_names: Class names by label (classification).
        last: Split -> last observed value ``(N,)`` (regression: the shift).
        scale: Split -> per-sequence scale ``(N,)`` (regression).
    """

    task: str
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    output_size: int
    class_names: list[str] = dataclasses.field(default_factory=list)
    last: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    scale: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- data


def _range(params: dict, key: str, where: str) -> tuple[float, float]:
    """``params[key]`` as ``(low, high)`` with ``low < high``, or a ValueError naming it."""
    try:
        low, high = (float(v) for v in params.get(key))
    except (TypeError, ValueError):
        low = high = float("nan")
    if not low < high:
        raise ValueError(
            f"Parameter '{where}.{key}' must be [low, high] with low < high, "
            f"got {params.get(key)!r}."
        )
    return low, high


def _noise(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"Parameter '{where}' must be a number >= 0, got {value!r}.")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Parameter '{where}' must be a positive integer, got {value!r}."
        )
    return value


def _split_rngs(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per split: resizing one split leaves the others alone."""
    children = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {
        split: np.random.default_rng(child)
        for split, child in zip(SPLITS, children, strict=True)
    }


def _value_columns(length: int) -> list[str]:
    return [f"x_{k}" for k in range(length)]


def make_arithmetic_sequences(params: dict[str, Any]) -> pd.DataFrame:
    """Arithmetic sequences ``start + step * k`` (k < length) and their next value.

    Each split draws ``start`` and ``|step|`` uniformly from its own ranges and the
    sign of ``step`` at random. Observed values get Gaussian noise of standard
    deviation ``noise * |step|``; the target is always the noise-free next value.
    The test ranges must lie outside the training ranges (held-out extrapolation).

    Args:
        params: ``length``, ``seed`` and ``splits.{train,val,test}`` with ``n``,
            ``start``, ``abs_step`` (``[low, high]``) and ``noise``.

    Returns:
        One row per sequence: ``split, start, step, x_0 .. x_{L-1}, target``.
    """
    where = "lstm_scratch.regression.data"
    length = _count(params.get("length"), f"{where}.length")
    if length < 3:  # noqa: PLR2004 - a step needs two values, a trend three
        raise ValueError(f"Parameter '{where}.length' must be >= 3, got {length}.")
    splits = params.get("splits", {})
    if set(splits) != set(SPLITS):
        raise ValueError(
            f"Parameter '{where}.splits' must define {SPLITS}, got {sorted(splits)}."
        )
    for key in ("start", "abs_step"):
        train_low, train_high = _range(splits["train"], key, f"{where}.splits.train")
        test_low, test_high = _range(splits["test"], key, f"{where}.splits.test")
        if test_low < train_high and train_low < test_high:
            raise ValueError(
                f"Parameter '{where}.splits.test.{key}' [{test_low}, {test_high}] overlaps the "
                f"training range [{train_low}, {train_high}]; held-out sequences must lie outside it."
            )
    frames = []
    for split, rng in _split_rngs(params.get("seed", 0)).items():
        spec, at = splits[split], f"{where}.splits.{split}"
        n = _count(spec.get("n"), f"{at}.n")
        noise = _noise(spec.get("noise", 0.0), f"{at}.noise")
        start = rng.uniform(*_range(spec, "start", at), size=n)
        abs_step = rng.uniform(*_range(spec, "abs_step", at), size=n)
        step = abs_step * rng.choice([-1.0, 1.0], size=n)
        clean = start[:, None] + step[:, None] * np.arange(length)
        noisy = clean + noise * abs_step[:, None] * rng.normal(size=clean.shape)
        frame = pd.DataFrame(noisy, columns=_value_columns(length))
        frame.insert(0, "split", split)
        frame.insert(1, "start", start)
        frame.insert(2, "step", step)
        frame["target"] = start + step * length
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _pattern(
    name: str, t: np.ndarray, rng: np.random.Generator, cycles: tuple[float, float]
) -> np.ndarray:
    """One noise-free pattern of unit size on ``t`` in [0, 1], ``(T,)``."""
    if name == "rising":
        return t
    if name == "falling":
        return 1.0 - t
    if name == "periodic":
        return 0.5 * np.sin(
            2 * np.pi * rng.uniform(*cycles) * t + rng.uniform(0, 2 * np.pi)
        )
    return np.zeros_like(t)  # "noise": the noise alone


def make_pattern_sequences(params: dict[str, Any]) -> pd.DataFrame:
    """Sequences labelled by their pattern: rising, falling, periodic or noise.

    ``x = offset + amplitude * (pattern + noise * N(0, 1))`` with a random offset and
    amplitude per sequence, so that only the shape tells the classes apart. Each
    split holds the classes in equal shares (up to one sequence).

    Args:
        params: ``length``, ``seed``, ``classes`` (a subset of rising, falling,
            periodic, noise, in label order), ``n.{train,val,test}``, ``noise``
            (relative to the pattern), ``cycles``, ``amplitude`` and ``offset`` ranges.

    Returns:
        One row per sequence: ``split, label, label_name, x_0 .. x_{L-1}``.
    """
    where = "lstm_scratch.classification.data"
    length = _count(params.get("length"), f"{where}.length")
    classes = list(params.get("classes", []))
    distinct = len(set(classes)) == len(classes) and set(classes) <= set(PATTERNS)
    if len(classes) < MIN_CLASSES or not distinct:
        raise ValueError(
            f"Parameter '{where}.classes' must list {MIN_CLASSES} or more distinct "
            f"patterns of {PATTERNS}, got {classes!r}."
        )
    cycles = _range(params, "cycles", where)
    amplitude = _range(params, "amplitude", where)
    offset = _range(params, "offset", where)
    noise = _noise(params.get("noise", 0.0), f"{where}.noise")
    t = np.linspace(0.0, 1.0, length)
    frames = []
    for split, rng in _split_rngs(params.get("seed", 0)).items():
        n = _count(params.get("n", {}).get(split), f"{where}.n.{split}")
        labels = rng.permutation(np.arange(n) % len(classes))
        shapes = np.stack([_pattern(classes[k], t, rng, cycles) for k in labels])
        shapes += noise * rng.normal(size=shapes.shape)
        scaled = rng.uniform(*amplitude, size=(n, 1)) * shapes
        values = rng.uniform(*offset, size=(n, 1)) + scaled
        frame = pd.DataFrame(values, columns=_value_columns(length))
        frame.insert(0, "split", split)
        frame.insert(1, "label", labels)
        frame.insert(2, "label_name", [classes[k] for k in labels])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _values(sequences: pd.DataFrame, split: str) -> np.ndarray:
    """The windows of one split, ``(N, T)``."""
    rows = sequences[sequences["split"] == split]
    columns = [c for c in sequences.columns if c.startswith("x_")]
    return rows[columns].to_numpy(dtype=np.float64, copy=True)


def _column(sequences: pd.DataFrame, split: str, name: str) -> np.ndarray:
    """One column of one split, ``(N,)``."""
    return sequences.loc[sequences["split"] == split, name].to_numpy(copy=True)


def _shift_and_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ``(N, T)`` -> model inputs ``(N, T, 1)``, last values ``(N,)``, scales ``(N,)``."""
    last = values[:, -1]
    scale = np.abs(np.diff(values, axis=1)).mean(axis=1)
    scale[scale == 0] = 1.0  # a constant window: nothing to scale
    return ((values - last[:, None]) / scale[:, None])[..., None], last, scale


def regression_arrays(sequences: pd.DataFrame) -> TaskArrays:
    """Shift and scale every sequence by its own last value and mean absolute step.

    ``u_k = (x_k - x_last) / s`` and target ``(y - x_last) / s`` with ``s`` the
    mean of ``|x_{k+1} - x_k|`` over the window (1 for a constant window). The
    map uses the window alone (no target, no statistics of other sequences), so it
    leaks nothing; it makes the task invariant to start and step, which is what
    lets an LSTM with bounded activations predict far outside the training range.
    Predictions go back to data units as ``x_last + s * output``.
    """
    arrays = TaskArrays(task="regression", x={}, y={}, output_size=1)
    for split in SPLITS:
        target = _column(sequences, split, "target").astype(np.float64)
        x, last, scale = _shift_and_scale(_values(sequences, split))
        arrays.x[split], arrays.last[split], arrays.scale[split] = x, last, scale
        arrays.y[split] = ((target - last) / scale)[:, None]
    return arrays


def classification_arrays(
    sequences: pd.DataFrame, data_params: dict[str, Any]
) -> TaskArrays:
    """Standardise every sequence by its own mean and standard deviation (no leakage)."""
    arrays = TaskArrays(
        task="classification",
        x={},
        y={},
        output_size=len(data_params["classes"]),
        class_names=list(data_params["classes"]),
    )
    for split in SPLITS:
        values = _values(sequences, split)
        std = values.std(axis=1, keepdims=True)
        std[std == 0] = 1.0
        standard = (values - values.mean(axis=1, keepdims=True)) / std
        arrays.x[split] = standard[..., None]
        arrays.y[split] = _column(sequences, split, "label").astype(np.int64)
    return arrays


# ----------------------------------------------------------------------- training


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
    params = TrainingParams.from_dict(values, where=where)
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
    _count(count, "lstm_scratch.compute.threads")
    with thread_limits(count):
        yield


def _summary(
    history: list[dict], best_epoch: int, stopped_early: bool, seconds: float, **extra
) -> dict[str, Any]:
    return {
        "fit_seconds": seconds,
        "median_epoch_seconds": statistics.median(r["epoch_seconds"] for r in history),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_loss": min(r["val_loss"] for r in history),
        "stopped_early": stopped_early,
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
        result.history,
        result.best_epoch,
        result.stopped_early,
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
        result.history,
        result.best_epoch,
        result.stopped_early,
        seconds,
        n_parameters=sum(p.numel() for p in model.parameters()),
        threads=threads,
        dtype=str(dtype).removeprefix("torch."),
    )
    return result.model, {"history": result.history, "summary": summary}


# --------------------------------------------------------------------- evaluation


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
        values = _values(sequences, split)
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
    x, last, scale = _shift_and_scale(windows)
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


# ---------------------------------------------------------------------- reporting


def training_histories(**logs: dict[str, Any]) -> dict[str, list[dict]]:
    """Per-epoch histories of all runs for MLflow, e.g. ``regression.numpy.val_loss``.

    Args:
        **logs: ``<task>_<backend>`` -> training log.
    """
    out: dict[str, list[dict]] = {}
    for key, log in logs.items():
        task, backend = key.rsplit("_", 1)
        out |= evaluation.history_to_mlflow(log["history"], prefix=f"{task}.{backend}.")
    return out


def learning_curves_figure(**logs: dict[str, Any]) -> plt.Figure:
    """Loss per epoch of both implementations on both tasks (and validation accuracy).

    Args:
        **logs: ``<task>_<backend>`` -> training log.
    """
    panels = [
        ("regression", "loss", "MSE (scaled units)"),
        ("classification", "loss", "cross-entropy"),
        ("classification", "accuracy", "accuracy"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8))
    colours = {"numpy": "tab:blue", "torch": "tab:orange"}
    for ax, (task, metric, label) in zip(axes, panels, strict=True):
        for backend in BACKENDS:
            history = logs[f"{task}_{backend}"]["history"]
            epochs = [r["epoch"] for r in history]
            for split, style in (("train", "-"), ("val", "--")):
                ax.plot(
                    epochs,
                    [r[f"{split}_{metric}"] for r in history],
                    style,
                    color=colours[backend],
                    label=f"{backend} {split}",
                )
        if metric == "loss":
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{task}: {label}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("NumPy LSTM (medlstm.scratch) vs torch.nn.LSTM, same initial weights")
    fig.tight_layout()
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table of `_fmt` cells."""
    return markdown_table([[_fmt(v) for v in row] for row in rows], header)


def _verdict(name: str, value: float, ok: bool) -> str:
    return f"{name} {value:.4g} ({'meets' if ok else 'MISSES'} the target)"


_SUMMARY_ROWS = {
    "fit_seconds": "wall time of training (s)",
    "median_epoch_seconds": "median epoch (s)",
    "epochs_run": "epochs run",
    "best_epoch": "best epoch",
    "best_val_loss": "best validation loss",
    "n_parameters": "parameters",
    "dtype": "dtype",
    "threads": "CPU threads",
}


def _training_section(logs: dict[str, dict[str, Any]], task: str) -> str:
    summaries = {b: logs[f"{task}_{b}"]["summary"] for b in BACKENDS}
    rows = [
        [label, *(summaries[b][key] for b in BACKENDS)]
        for key, label in _SUMMARY_ROWS.items()
    ]
    ratio = (
        summaries["numpy"]["median_epoch_seconds"]
        / summaries["torch"]["median_epoch_seconds"]
    )
    table = _table(["", "NumPy", "torch"], rows)
    return f"{table}\n\nNumPy / torch time per epoch: **{ratio:.2f}x**."


def _regression_section(reg: dict[str, Any], mae_target: float) -> str:
    models = (*BACKENDS, "naive_extrapolation")
    splits = {
        "test": "held-out test (outside the training range)",
        "val": "validation (training range, noisy)",
    }
    errors = _table(
        ["", "NumPy", "torch", "naive extrapolation"],
        [
            [f"{label}: {metric.upper()}", *(reg[m][split][metric] for m in models)]
            for split, label in splits.items()
            for metric in ("mae", "rmse")
        ],
    )
    examples = _table(
        ["sequence", "next", "NumPy", "torch"],
        [
            [e["sequence"], f"{e['next']:g}", *(f"{e[b]:.3f}" for b in BACKENDS)]
            for e in reg["examples"]
        ],
    )
    verdicts = ", ".join(
        _verdict(b, reg[b]["test"]["mae"], reg[b]["test"]["mae"] < mae_target)
        for b in BACKENDS
    )
    return f"{errors}\n\n{examples}\n\nTarget: test MAE < {mae_target:g}: {verdicts}."


def _classification_section(cls: dict[str, Any], accuracy_target: float) -> str:
    verdicts = ", ".join(
        _verdict(b, cls[b]["accuracy"], cls[b]["accuracy"] >= accuracy_target)
        for b in BACKENDS
    )
    parts = [f"Target: test accuracy >= {accuracy_target:g}: {verdicts}."]
    for backend in BACKENDS:
        parts += [
            f"**{backend}**",
            evaluation.metrics_table_markdown(cls[backend]),
            evaluation.confusion_matrix_markdown(cls[backend]),
        ]
    return "\n\n".join(parts)


_SETUP = (
    "Both implementations see the same sequences, start from the same initial "
    "weights (the NumPy model's Glorot initialisation, forget-gate bias 1) and train "
    "with the same Adam settings, batch size, clipping, learning-rate plateau and "
    "early stopping on the validation loss, in the same dtype on the same number of "
    "CPU threads. Wall times are whole training loops (torch's includes its "
    "DataLoader). torch counts 4H more parameters per layer: its two biases, of "
    "which only the sum matters."
)


def write_report(
    regression: dict[str, Any],
    classification: dict[str, Any],
    targets: dict[str, float],
    **logs: dict[str, Any],
) -> tuple[str, dict[str, dict]]:
    """The side-by-side report (Markdown) and its headline numbers for MLflow.

    Args:
        regression: Metrics from :func:`evaluate_regression`.
        classification: Metrics from :func:`evaluate_classification`.
        targets: ``regression_mae`` and ``classification_accuracy`` to meet.
        **logs: ``<task>_<backend>`` -> training log.
    """
    headline = {
        "regression.naive_extrapolation.test_mae": (
            regression["naive_extrapolation"]["test"]["mae"]
        )
    }
    for b in BACKENDS:
        headline[f"regression.{b}.test_mae"] = regression[b]["test"]["mae"]
        headline[f"regression.{b}.val_mae"] = regression[b]["val"]["mae"]
        headline[f"classification.{b}.test_accuracy"] = classification[b]["accuracy"]
        headline[f"classification.{b}.test_macro_f1"] = classification[b]["macro_f1"]
        for task in ("regression", "classification"):
            for key in ("fit_seconds", "median_epoch_seconds"):
                headline[f"{task}.{b}.{key}"] = logs[f"{task}_{b}"]["summary"][key]
    sections = [
        ("Setup", _SETUP),
        (
            "Regression: next value of an arithmetic sequence",
            _regression_section(regression, targets["regression_mae"]),
        ),
        ("Regression training", _training_section(logs, "regression")),
        (
            "Classification: rising / falling / periodic / noise",
            _classification_section(classification, targets["classification_accuracy"]),
        ),
        ("Classification training", _training_section(logs, "classification")),
        ("Learning curves", "![learning curves](scratch_learning_curves.png)"),
    ]
    report = evaluation.markdown_report(
        "lstm_scratch: NumPy LSTM vs torch.nn.LSTM", sections
    )
    return report, evaluation.summary_to_mlflow(headline)
