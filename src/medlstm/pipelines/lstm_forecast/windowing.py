"""Honest splits, a scaler fitted on training data only, and forecast windows.

Splits are by series (record) and, within a series, by time: each series is cut into
consecutive ``train | val | test`` segments, and windows never cross a segment
boundary, so no target of one segment is an input or a target of another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SEGMENTS = ("train", "val", "test")


@dataclass(frozen=True)
class Windows:
    """Forecast windows of one segment, in the series' own units.

    Attributes:
        x: inputs, (n, lookback).
        y: targets, the next values, (n, horizon).
        series_id: the series of each window, (n,).
        target_time: the time of each target, (n, horizon).
    """

    x: np.ndarray
    y: np.ndarray
    series_id: np.ndarray
    target_time: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def check_series_table(series: pd.DataFrame, where: str) -> None:
    """Raise unless ``series`` is a valid tidy table: finite values, increasing times."""
    absent = [c for c in ("series_id", "time", "value") if c not in series.columns]
    if absent:
        raise ValueError(
            f"{where}: missing column(s) {absent}; has {list(series.columns)}."
        )
    if series.empty:
        raise ValueError(f"{where}: the series table is empty.")
    values = pd.to_numeric(series["value"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(
            f"{where}: {int((~np.isfinite(values)).sum())} missing or non-finite value(s)."
        )
    for sid, group in series.groupby("series_id", sort=False):
        if not _strictly_increasing(group["time"]):
            raise ValueError(
                f"{where}: times of series {sid!r} are not strictly increasing."
            )


def _strictly_increasing(time: pd.Series) -> bool:
    return bool(time.is_monotonic_increasing and time.is_unique)


def split_series(
    series: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Label every observation ``train``, ``val`` or ``test``.

    Test data: the series listed in ``test_series``, in full (by record); with no list
    (``[]``, e.g. a single CSV series) the last ``test_fraction`` of every series (by
    time). Validation data, for early stopping: the series listed in ``val_series``, in
    full; with no list the last ``val_fraction`` of every series' non-test part. What
    remains, the start of each series, is training data.

    Returns:
        The table with a ``segment`` column, and a JSON-able split summary.

    Raises:
        ValueError: for unknown or overlapping series lists, fractions outside (0, 1),
            or a split that leaves no training series.
    """
    check_series_table(series, "forecast_series")
    series = series.assign(series_id=series["series_id"].astype(str))
    series = series.reset_index(drop=True)
    ids = sorted(series["series_id"].unique())
    test_ids = _series_list(params, "test_series", ids)
    val_ids = _series_list(params, "val_series", ids)
    if set(test_ids) & set(val_ids):
        raise ValueError(
            f"split.test_series and split.val_series share {sorted(set(test_ids) & set(val_ids))}."
        )
    if len(test_ids) + len(val_ids) == len(ids):
        raise ValueError(
            "split.test_series and val_series leave no series for training."
        )
    test_fraction = None if test_ids else _fraction(params, "test_fraction")
    val_fraction = None if val_ids else _fraction(params, "val_fraction")

    segment = np.empty(len(series), dtype=object)
    for sid, index in series.groupby("series_id", sort=True).indices.items():
        n = len(index)
        if sid in test_ids or sid in val_ids:
            segment[index] = "test" if sid in test_ids else "val"
            continue
        n_test = round(test_fraction * n) if test_fraction else 0
        n_val = round(val_fraction * (n - n_test)) if val_fraction else 0
        segment[index] = (
            ["train"] * (n - n_test - n_val) + ["val"] * n_val + ["test"] * n_test
        )
    split = series.assign(segment=segment.astype(str))
    assert_honest_split(split, whole_series={"test": test_ids, "val": val_ids})

    counts = split.groupby(["series_id", "segment"]).size().unstack(fill_value=0)
    summary = {
        "test": "by_record" if test_ids else f"by_time (last {test_fraction:.0%})",
        "validation": "by_record" if val_ids else f"by_time (last {val_fraction:.0%})",
        "series": {
            s: sorted(split.loc[split["segment"] == s, "series_id"].unique())
            for s in SEGMENTS
        },
        "n_values": {s: int((split["segment"] == s).sum()) for s in SEGMENTS},
        "per_series": {
            str(sid): {s: int(row.get(s, 0)) for s in SEGMENTS}
            for sid, row in counts.iterrows()
        },
    }
    logger.info("Split (test %s): %s values.", summary["test"], summary["n_values"])
    return split, summary


def _series_list(params: dict[str, Any], key: str, known: list[str]) -> list[str]:
    listed = sorted(str(s) for s in (params.get(key) or []))
    unknown = sorted(set(listed) - set(known))
    if unknown:
        raise ValueError(
            f"split.{key} names series not in the data: {unknown}; known: {known}."
        )
    return listed


def _fraction(params: dict[str, Any], key: str) -> float:
    value = params.get(key)
    if not isinstance(value, int | float) or not 0.0 < value < 1.0:
        series_key = key.replace("fraction", "series")
        raise ValueError(
            f"split.{key} must be in (0, 1) when split.{series_key} is empty, got {value!r}."
        )
    return float(value)


def assert_honest_split(
    split: pd.DataFrame, whole_series: dict[str, list[str]]
) -> None:
    """Raise AssertionError if any segment could leak into another.

    Every segment is non-empty; within each series the segments follow each other in
    time (train, then val, then test, at strictly increasing times); and a series held
    out whole for a segment (``whole_series[segment]``) holds nothing else.
    """
    order = split["segment"].map({s: i for i, s in enumerate(SEGMENTS)})
    if order.isna().any():
        raise AssertionError(
            f"Unknown segment labels {sorted(set(split['segment']) - set(SEGMENTS))}."
        )
    for segment in SEGMENTS:
        if not (split["segment"] == segment).any():
            raise AssertionError(f"The {segment} segment is empty; adjust the split.")
    held_out = {sid: seg for seg, ids in whole_series.items() for sid in ids}
    for sid, group in split.assign(order=order).groupby("series_id", sort=False):
        if (np.diff(group["order"].to_numpy()) < 0).any():
            raise AssertionError(f"Series {sid!r}: segments are not in time order.")
        if not _strictly_increasing(group["time"]):
            raise AssertionError(f"Series {sid!r}: times are not strictly increasing.")
        if sid in held_out and not (group["segment"] == held_out[sid]).all():
            raise AssertionError(
                f"Series {sid!r} is held out as {held_out[sid]} but holds other segments."
            )


def fit_scaler(split: pd.DataFrame) -> dict[str, Any]:
    """Mean and standard deviation of the training segment only (never val or test)."""
    train = split.loc[split["segment"] == "train", "value"].to_numpy(np.float64)
    std = float(train.std())
    if not std > 0.0:
        raise ValueError(
            "The training segment is constant (std 0); a scaler cannot be fitted."
        )
    return {
        "mean": float(train.mean()),
        "std": std,
        "fitted_on": "train",
        "n": int(train.size),
    }


def make_windows(split: pd.DataFrame, params: dict[str, Any]) -> dict[str, Windows]:
    """Cut each (series, segment) stretch into windows of ``lookback`` inputs and ``horizon`` targets.

    Training and validation windows start every ``train_stride`` values; test windows
    start at every value, so each test origin is scored.

    Raises:
        ValueError: if a stretch is shorter than ``lookback + horizon``, naming it.
    """
    lookback, horizon = int(params["lookback"]), int(params["horizon"])
    stride = int(params.get("train_stride", 1))
    if min(lookback, horizon, stride) < 1:
        raise ValueError(
            f"windowing.lookback, horizon and train_stride must be >= 1, got {lookback}, {horizon}, {stride}."
        )
    width = lookback + horizon
    parts: dict[str, list[Windows]] = {s: [] for s in SEGMENTS}
    for (sid, segment), group in split.groupby(["series_id", "segment"], sort=True):
        if len(group) < width:
            raise ValueError(
                f"Series {sid!r}: its {segment} segment has {len(group)} values, fewer than "
                f"lookback + horizon = {width}; use a longer series, a shorter lookback or horizon, "
                "or other split fractions."
            )
        step = 1 if segment == "test" else stride
        values = np.lib.stride_tricks.sliding_window_view(
            group["value"].to_numpy(np.float64), width
        )
        times = np.lib.stride_tricks.sliding_window_view(
            group["time"].to_numpy(), width
        )
        values, times = values[::step], times[::step]
        parts[segment].append(
            Windows(
                x=values[:, :lookback].copy(),
                y=values[:, lookback:].copy(),
                series_id=np.full(len(values), sid, dtype=object),
                target_time=times[:, lookback:].copy(),
            )
        )
    windows = {s: _concat(parts[s], lookback, horizon) for s in SEGMENTS}
    logger.info("Windows: %s.", {s: len(w) for s, w in windows.items()})
    return windows


def _concat(parts: list[Windows], lookback: int, horizon: int) -> Windows:
    if not parts:
        return Windows(
            np.empty((0, lookback)),
            np.empty((0, horizon)),
            np.empty(0, dtype=object),
            np.empty((0, horizon)),
        )
    return Windows(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("x", "y", "series_id", "target_time")
        )
    )
