"""Turn a source into the tidy series table every downstream node reads.

The table has one row per observation and the columns ``series_id`` (str), ``time``
(float seconds or datetime64, strictly increasing within a series) and ``value``
(finite float). Two sources feed it: RR tachograms from WFDB beat annotations, and a
user CSV with a time and a value column. Each source also returns an ingestion report
(JSON-able dict) that counts every value it replaced.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from medlstm.datasets.wfdb_records import WfdbRecord

logger = logging.getLogger(__name__)


def build_tachograms(
    records: dict[str, WfdbRecord], params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """RR interval tachogram of each record, from its reference beat annotations.

    Only annotations whose symbol is in ``beat_symbols`` count as beats (rhythm, noise
    and flutter-wave annotations do not). An RR interval is an artefact, replaced by
    linear interpolation in time between its valid neighbours, when it lies outside
    ``[rr_min_ms, rr_max_ms]`` or spans an annotation in ``gap_symbols`` (a ventricular
    flutter episode has no beats, so the interval across it is no beat-to-beat
    interval). With ``replace_ectopic`` the intervals that start or end at a beat whose
    symbol is not in ``normal_symbols`` are replaced the same way (an NN series); by
    default they are kept, because ectopy is part of the rhythm to forecast. Every
    replacement is counted per record in the report.

    Args:
        records: ``{record_id: WfdbRecord}``.
        params: ``beat_symbols``, ``normal_symbols``, ``gap_symbols``, ``rr_min_ms``,
            ``rr_max_ms``, ``replace_ectopic`` and ``resample_hz``: ``null`` gives one
            value per beat (RR in ms, time = the closing beat in s); a number gives
            heart rate in bpm interpolated onto a regular grid of that rate.

    Returns:
        The tidy series table and the ingestion report.
    """
    if not records:
        raise ValueError("build_tachograms: the WFDB records dataset is empty.")
    frames, per_series = [], {}
    for record_id, record in records.items():
        time, value, stats = _tachogram(record, params)
        frames.append(
            pd.DataFrame({"series_id": record_id, "time": time, "value": value})
        )
        per_series[record_id] = stats
        replaced = {k: v for k, v in stats.items() if k.endswith("interpolated") and v}
        if replaced:
            logger.info("Record %s: RR intervals interpolated %s.", record_id, replaced)
    report = {
        "source": "wfdb_tachogram",
        "unit": "bpm" if params.get("resample_hz") else "ms",
        "policy": {k: params.get(k) for k in sorted(params)},
        "totals": _totals(per_series),
        "per_series": per_series,
    }
    return pd.concat(frames, ignore_index=True), report


def _tachogram(
    record: WfdbRecord, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One record's (time, value, counts); see `build_tachograms`."""
    symbols = np.asarray(record.ann_symbols, dtype=str)
    samples = np.asarray(record.ann_samples, dtype=np.int64)
    is_beat = np.isin(symbols, params["beat_symbols"])
    beats, beat_symbols = samples[is_beat], symbols[is_beat]
    if beats.size < 3:
        raise ValueError(
            f"{record.source}: only {beats.size} beat annotations; an RR series needs 3."
        )
    if np.any(np.diff(beats) <= 0):
        raise ValueError(
            f"{record.source}: beat annotations are not strictly increasing."
        )

    time = beats[1:] / record.fs
    rr = np.diff(beats) / record.fs * 1000.0
    out_of_range = (rr < params["rr_min_ms"]) | (rr > params["rr_max_ms"])
    # Interval k runs from beat k to beat k + 1: searchsorted finds each mark's interval.
    marks = samples[np.isin(symbols, params.get("gap_symbols") or [])]
    spanning = np.searchsorted(beats, marks, side="right") - 1
    gap = np.zeros_like(out_of_range)
    gap[spanning[(spanning >= 0) & (spanning < rr.size)]] = True
    gap &= ~out_of_range
    ectopic = np.zeros_like(out_of_range)
    if params.get("replace_ectopic", False):
        normal = np.isin(beat_symbols, params["normal_symbols"])
        ectopic = ~(normal[1:] & normal[:-1]) & ~out_of_range & ~gap
    replace = out_of_range | gap | ectopic
    if replace.all():
        raise ValueError(
            f"{record.source}: no valid RR interval is left to interpolate from."
        )
    rr[replace] = np.interp(time[replace], time[~replace], rr[~replace])

    if params.get("resample_hz"):
        grid = np.arange(time[0], time[-1], 1.0 / float(params["resample_hz"]))
        time, rr = grid, 60_000.0 / np.interp(grid, time, rr)
    stats = {
        "source": record.source,
        "n_annotations": int(symbols.size),
        "n_beats": int(beats.size),
        "n_non_beat_annotations": int((~is_beat).sum()),
        "n_rr_intervals": int(beats.size - 1),
        "n_out_of_range_rr_interpolated": int(out_of_range.sum()),
        "n_gap_rr_interpolated": int(gap.sum()),
        "n_ectopic_rr_interpolated": int(ectopic.sum()),
        "n_values": int(len(rr)),
    }
    return time, rr, stats


def csv_to_series(
    table: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate a user table with a time and a value column into the tidy series table.

    Rules: every time must parse (numbers, or dates) and times must be strictly
    increasing within each series in file order; a value that is present but not a
    finite number is an error; a missing value is an error unless ``missing`` is
    ``interpolate``, which fills it linearly in time within its series (the nearest
    value at either end) and counts it.

    Args:
        table: the raw CSV as loaded by the catalog (``forecast_csv_raw``).
        params: ``time_column``, ``value_column``, ``series_column`` (``null``: one
            series named ``series_name``), ``missing`` (``error`` | ``interpolate``).

    Returns:
        The tidy series table and the ingestion report.
    """
    where = "forecast_csv_raw"
    time_col, value_col = params["time_column"], params["value_column"]
    series_col = params.get("series_column")
    policy = _check_table(table, params, where)
    table = table.reset_index(drop=True)
    rows = np.arange(len(table)) + 2  # file line numbers, after the header line
    series_id = (
        table[series_col].astype(str).to_numpy()
        if series_col
        else np.full(len(table), str(params.get("series_name", "series")))
    )
    time = _parse_time(table[time_col], where, time_col, rows)
    value, missing = _parse_values(table[value_col], where, value_col, rows)

    tidy = pd.DataFrame({"series_id": series_id, "time": time, "value": value})
    per_series = {}
    for sid, group in tidy.groupby("series_id", sort=True):
        _check_increasing(group["time"], f"{where}, series {sid!r}", rows[group.index])
        n_missing = _fill_missing(
            tidy, group, missing, rows, policy, f"{where}, series {sid!r}", value_col
        )
        per_series[str(sid)] = {
            "n_values": int(len(group)),
            "n_missing_interpolated": n_missing,
        }

    report = {
        "source": "csv",
        "unit": params.get("unit"),
        "policy": {k: params.get(k) for k in sorted(params)},
        "totals": _totals(per_series),
        "per_series": per_series,
    }
    tidy = tidy.sort_values("series_id", kind="stable").reset_index(drop=True)
    return tidy, report


def _check_table(table: pd.DataFrame, params: dict[str, Any], where: str) -> str:
    """The missing-value policy, once the policy and the named columns are valid."""
    policy = params.get("missing", "error")
    if policy not in ("error", "interpolate"):
        raise ValueError(
            f"lstm_forecast.csv.missing must be 'error' or 'interpolate', got {policy!r}."
        )
    names = (params["time_column"], params["value_column"], params.get("series_column"))
    absent = [c for c in names if c is not None and c not in table.columns]
    if absent:
        raise ValueError(
            f"{where}: no column(s) {absent}; the file has {list(table.columns)}."
        )
    if table.empty:
        raise ValueError(f"{where}: the table has no rows.")
    return policy


def _fill_missing(
    tidy: pd.DataFrame,
    group: pd.DataFrame,
    missing: np.ndarray,
    rows: np.ndarray,
    policy: str,
    where: str,
    value_col: str,
) -> int:
    """Interpolate one series' missing values in ``tidy`` in place (linearly in
    time, the nearest value at either end) where the policy allows; their count."""
    n_missing = int(missing[group.index].sum())
    if n_missing and policy == "error":
        bad = rows[group.index][missing[group.index]]
        raise ValueError(
            f"{where}: {n_missing} missing value(s) in column {value_col!r} "
            f"(lines {_first(bad)}); set lstm_forecast.csv.missing: interpolate to fill them."
        )
    if n_missing == len(group):
        raise ValueError(f"{where}: every value is missing.")
    if n_missing:
        known = ~missing[group.index]
        t = _seconds(group["time"])
        tidy.loc[group.index[~known], "value"] = np.interp(
            t[~known], t[known], group["value"].to_numpy()[known]
        )
        logger.warning("%s: %d missing value(s) interpolated.", where, n_missing)
    return n_missing


def _parse_time(
    column: pd.Series, where: str, name: str, rows: np.ndarray
) -> pd.Series:
    if column.isna().any():
        raise ValueError(
            f"{where}: {int(column.isna().sum())} missing time value(s) in column {name!r} "
            f"(lines {_first(rows[column.isna().to_numpy()])})."
        )
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        return numeric.astype(np.float64)
    parsed = pd.to_datetime(column, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise ValueError(
            f"{where}: column {name!r} holds values that are neither numbers nor dates, "
            f"e.g. {column[bad].iloc[0]!r} (lines {_first(rows[bad])})."
        )
    return parsed


def _parse_values(
    column: pd.Series, where: str, name: str, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    missing = (
        column.isna().to_numpy() | (column.astype(str).str.strip() == "").to_numpy()
    )
    value = pd.to_numeric(column.where(~missing), errors="coerce").to_numpy(
        np.float64, copy=True
    )
    bad = ~missing & ~np.isfinite(value)
    if bad.any():
        raise ValueError(
            f"{where}: column {name!r} holds {int(bad.sum())} non-numeric or infinite value(s), "
            f"e.g. {column[bad].iloc[0]!r} (lines {_first(rows[bad])})."
        )
    return value, missing


def _check_increasing(time: pd.Series, where: str, rows: np.ndarray) -> None:
    steps = np.diff(_seconds(time))
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        kind = "repeats" if steps[i] == 0 else "goes back"
        raise ValueError(
            f"{where}: the time column {kind} at line {rows[i + 1]} ({time.iloc[i + 1]} after "
            f"{time.iloc[i]}); times must be strictly increasing within a series."
        )


def _seconds(time: pd.Series) -> np.ndarray:
    """Times as float seconds (datetimes: since the first), for ordering and interpolation."""
    if pd.api.types.is_datetime64_any_dtype(time):
        return (time - time.iloc[0]).dt.total_seconds().to_numpy(np.float64)
    return time.to_numpy(np.float64)


def _first(rows: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:n])
    return shown + (f", ... {len(rows) - n} more" if len(rows) > n else "")


def _totals(per_series: dict[str, dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {"n_series": len(per_series)}
    for stats in per_series.values():
        for key, value in stats.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals
