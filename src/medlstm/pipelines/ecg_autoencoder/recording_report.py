"""What a classified recording gives its reader: the per-beat table, the per-recording
summary (beats per class, heart rate, ectopic burden) and a strip of the ECG."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medlstm.datasets.wfdb_records import WfdbRecord

logger = logging.getLogger(__name__)

NOISE_CLASS = "noise"
ECTOPIC_CLASSES = ("S", "V")
STRIP_WIDTH_IN = 16.0
STRIP_ROW_HEIGHT_IN = 1.6
STRIP_ROWS_PER_MINUTE = 4  # 15 s per row: beats stay a few millimetres apart
CLASS_COLOURS = {
    "N": "tab:green",
    "S": "tab:orange",
    "V": "tab:red",
    "F": "tab:purple",
    "Q": "tab:brown",
    NOISE_CLASS: "0.6",
}


def beat_table(
    predictions: pd.DataFrame, beats: pd.DataFrame, report: dict[str, Any]
) -> pd.DataFrame:
    """One row per classified beat, in the recording's own time and samples.

    Args:
        predictions: `classify_beats` output, row ``i`` for beat ``i`` of ``beats``.
        beats: The segmented beats (``input_sample`` and ``noise`` when detected,
            ``label`` when annotated).
        report: The segmentation report (per-record ``fs``, ``target_fs``).

    Returns:
        record, ``time_s``, ``sample`` (at the recording's rate), ``class`` (the
        predicted class, or ``noise`` for beats the detector flagged as noise),
        ``noise``, ``p_<class>``, ``recon_error`` (autoencoder only) and the
        reference ``label`` when the beats came from annotations.
    """
    keys = ["record", "sample"]
    if (
        len(predictions) != len(beats)
        or not (
            predictions[keys].astype(str).to_numpy()
            == beats[keys].astype(str).to_numpy()
        ).all()
    ):
        raise ValueError("The predictions are not aligned with the beats.")
    fs = beats["record"].map(lambda rid: report["records"][rid]["fs"]).to_numpy(float)
    if "input_sample" in beats:
        sample = beats["input_sample"].to_numpy(np.int64)
    else:  # annotated beats moved to the target rate: move them back
        ratio = fs / float(report["target_fs"])
        sample = np.round(beats["sample"].to_numpy() * ratio).astype(np.int64)
    noise = (
        beats["noise"].to_numpy(bool)
        if "noise" in beats
        else np.zeros(len(beats), bool)
    )
    out = pd.DataFrame(
        {
            "record": beats["record"].to_numpy(),
            "time_s": sample / fs,
            "sample": sample,
            "class": np.where(noise, NOISE_CLASS, predictions["predicted"].to_numpy()),
            "noise": noise,
        }
    )
    scores = [c for c in predictions.columns if c.startswith("p_")]
    if "recon_error" in predictions:
        scores.append("recon_error")
    out[scores] = predictions[scores].to_numpy()
    if "label" in beats:
        out["label"] = beats["label"].to_numpy()
    return out


def recording_summary(
    table: pd.DataFrame,
    report: dict[str, Any],
    label_mapping: dict[str, list[str]],
) -> tuple[dict[str, Any], str]:
    """Per recording: beats per class, mean heart rate and ectopic burden.

    The burden (% S, % V) counts classified beats only: beats flagged as noise are
    listed apart and left out, so a noisy stretch cannot inflate it.
    ``analysable_min`` is the signal not marked unreadable by the detector's quality
    check, in minutes (None for annotated beats, where no check runs).

    Returns:
        ``(summary, markdown)``: ``{"records": {record_id: {...}}}`` and its Markdown
        rendering.
    """
    classes = list(label_mapping)
    records = {}
    for rid, rows in table.groupby("record", sort=True):
        rec = report["records"][str(rid)]
        counts = rows["class"].value_counts()
        classified = int((~rows["noise"]).sum())
        if classified == 0:
            logger.warning(
                "Record %s: every beat is flagged as noise; no ectopic burden.", rid
            )
        burden = {
            c: (
                round(100.0 * int(counts.get(c, 0)) / classified, 2)
                if classified
                else None
            )
            for c in ECTOPIC_CLASSES
            if c in classes
        }
        records[str(rid)] = {
            "source": rec["source"],
            "lead": rec["lead"],
            "sampling_rate_hz": rec["fs"],
            "duration_s": round(float(rec.get("duration_s", np.nan)), 3),
            "analysable_min": (
                None
                if rec.get("analysable_s") is None
                else round(float(rec["analysable_s"]) / 60, 2)
            ),
            "beats": {
                "found": int(rec.get("detected_beats", rec.get("labelled_beats", 0))),
                "classified": classified,
                "noise": int(rows["noise"].sum()),
                "not_windowed": int(
                    rec.get("dropped_edge", 0)
                    + rec.get("dropped_no_rr", 0)
                    + rec.get("dropped_nan", 0)
                ),
            },
            "beats_per_class": {
                c: int(counts.get(c, 0)) for c in [*classes, NOISE_CLASS]
            },
            "mean_heart_rate_bpm": (
                None
                if rec.get("mean_heart_rate_bpm") is None
                else round(float(rec["mean_heart_rate_bpm"]), 1)
            ),
            "ectopic_burden_pct": burden,
        }
    summary = {"records": records}
    return summary, summary_markdown(summary)


def summary_markdown(summary: dict[str, Any]) -> str:
    """The Markdown rendering of `recording_summary`'s dict."""
    lines = ["# ECG recording summary", ""]
    for rid, rec in summary["records"].items():
        beats = rec["beats"]
        hr = rec["mean_heart_rate_bpm"]
        lines += [
            f"## Record {rid}",
            "",
            f"- source: `{rec['source']}`, lead {rec['lead']}, "
            f"{rec['sampling_rate_hz']:g} Hz, {rec['duration_s']:.1f} s",
            "- analysable signal: "
            + (
                "n/a (annotated beats)"
                if rec.get("analysable_min") is None
                else f"{rec['analysable_min']:.1f} of {rec['duration_s'] / 60:.1f} min "
                "(stretches too noisy to read left out)"
            ),
            f"- beats: {beats['found']} found, {beats['classified']} classified, "
            f"{beats['noise']} flagged as noise, {beats['not_windowed']} not windowed "
            "(edges, missing neighbours, invalid samples)",
            f"- mean heart rate: {'n/a' if hr is None else f'{hr:.0f} bpm'}",
            "- ectopic burden (of classified beats): "
            + ", ".join(
                f"{c} {'n/a' if v is None else f'{v:.1f} %'}"
                for c, v in rec["ectopic_burden_pct"].items()
            ),
            "",
            "| class | beats |",
            "|---|---:|",
            *(f"| {c} | {n} |" for c, n in rec["beats_per_class"].items()),
            "",
        ]
    return "\n".join(lines)


def strip_minutes(times_s: np.ndarray, classes: np.ndarray) -> list[int]:
    """The minutes to draw: the first, and the one with the most ectopic (S, V)
    beats when that is another (the earliest of ties)."""
    ectopic = np.isin(classes, ECTOPIC_CLASSES)
    if not ectopic.any():
        return [0]
    minutes = (times_s[ectopic] // 60).astype(int)
    values, counts = np.unique(minutes, return_counts=True)
    busiest = int(values[np.argmax(counts)])
    return [0] if busiest == 0 else [0, busiest]


def strip_figure(
    records: dict[str, WfdbRecord], table: pd.DataFrame, report: dict[str, Any]
) -> plt.Figure:
    """The ECG of the first recording with every classified beat marked in its
    class's colour: the first minute and the minute with the most ectopic beats
    (`strip_minutes`), 15 s per row, in the recording's own units and rate."""
    rid = sorted(records)[0]
    record = records[rid]
    lead = report["records"][rid]["lead"]
    x = record.signals[lead]
    t = np.arange(len(x)) / record.fs
    rows = table[table["record"].astype(str) == rid]
    times = rows["time_s"].to_numpy(float)
    classes = rows["class"].to_numpy(str)
    minutes = strip_minutes(times, classes)
    n_rows = STRIP_ROWS_PER_MINUTE * len(minutes)
    fig, axes = plt.subplots(
        n_rows,
        1,
        figsize=(STRIP_WIDTH_IN, STRIP_ROW_HEIGHT_IN * n_rows),
        squeeze=False,
    )
    row_s = 60.0 / STRIP_ROWS_PER_MINUTE
    legend = {}
    for panel, minute in enumerate(minutes):
        n_ectopic = int(
            (np.isin(classes, ECTOPIC_CLASSES) & (times // 60 == minute)).sum()
        )
        title = (
            f"Record {rid}, lead {lead}: minute {minute + 1}"
            + ("" if panel == 0 else " (most ectopic beats)")
            + f", {n_ectopic} S/V beats"
        )
        for r in range(STRIP_ROWS_PER_MINUTE):
            ax = axes[panel * STRIP_ROWS_PER_MINUTE + r, 0]
            start = 60.0 * minute + r * row_s
            part = (t >= start) & (t < start + row_s)
            ax.plot(t[part], x[part], color="black", linewidth=0.6)
            shown = (times >= start) & (times < start + row_s)
            for name in np.unique(classes[shown]):
                at = shown & (classes == name)
                legend[name] = ax.scatter(
                    times[at],
                    np.full(int(at.sum()), 0.9),
                    transform=ax.get_xaxis_transform(),
                    color=CLASS_COLOURS.get(name, "tab:blue"),
                    marker="x" if name == NOISE_CLASS else "v",
                    s=28,
                    label=name,
                    zorder=3,
                )
            ax.set_xlim(start, start + row_s)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(title, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    # One legend above the rows, where it hides no beat.
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="upper right",
        ncol=max(len(legend), 1),
        fontsize=8,
        frameon=False,
    )
    _strip_margins(fig, n_rows)
    return fig


# Margins of the strip in inches: tick labels at 7 pt, titles at 9 pt, the legend
# above the rows. Fixed rather than tight_layout, which draws every row's ticks once
# more to measure them (half the figure's time for a 30-minute recording).
STRIP_MARGINS_IN = {
    "left": 0.45,
    "right": 0.25,
    "top": 0.5,
    "bottom": 0.45,
    "gap": 0.45,
}


def _strip_margins(fig: plt.Figure, n_rows: int) -> None:
    width, height = fig.get_figwidth(), fig.get_figheight()
    m = STRIP_MARGINS_IN
    row = (height - m["top"] - m["bottom"] - (n_rows - 1) * m["gap"]) / n_rows
    fig.subplots_adjust(
        left=m["left"] / width,
        right=1 - m["right"] / width,
        top=1 - m["top"] / height,
        bottom=m["bottom"] / height,
        hspace=m["gap"] / row,
    )
