"""lstm_scratch data: two synthetic tasks and their model-ready arrays.

Arithmetic sequences (regression: the next value, tested outside the training range)
and four patterns (classification: rising, falling, periodic, noise). Layouts:
sequences are ``(N, T, 1)`` (batch, time, features); regression targets ``(N, 1)``,
class labels ``(N,)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
PATTERNS = ("rising", "falling", "periodic", "noise")
MIN_CLASSES = 2


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


def positive_count(value: Any, where: str) -> int:
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
    length = positive_count(params.get("length"), f"{where}.length")
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
        n = positive_count(spec.get("n"), f"{at}.n")
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
    length = positive_count(params.get("length"), f"{where}.length")
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
        n = positive_count(params.get("n", {}).get(split), f"{where}.n.{split}")
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


def split_values(sequences: pd.DataFrame, split: str) -> np.ndarray:
    """The windows of one split, ``(N, T)``."""
    rows = sequences[sequences["split"] == split]
    columns = [c for c in sequences.columns if c.startswith("x_")]
    return rows[columns].to_numpy(dtype=np.float64, copy=True)


def _column(sequences: pd.DataFrame, split: str, name: str) -> np.ndarray:
    """One column of one split, ``(N,)``."""
    return sequences.loc[sequences["split"] == split, name].to_numpy(copy=True)


def shift_and_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        x, last, scale = shift_and_scale(split_values(sequences, split))
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
        values = split_values(sequences, split)
        std = values.std(axis=1, keepdims=True)
        std[std == 0] = 1.0
        standard = (values - values.mean(axis=1, keepdims=True)) / std
        arrays.x[split] = standard[..., None]
        arrays.y[split] = _column(sequences, split, "label").astype(np.int64)
    return arrays
