"""Detections against reference beats, EC57 style: one-to-one matching within a
tolerance (150 ms), the sensitivity (Se) and positive predictivity (+P) of a detector,
and a classifier's scores over detected beats."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

EC57_TOLERANCE_S = 0.150


def match_beats(
    detected_samples: np.ndarray,
    reference_samples: np.ndarray,
    fs: float,
    tolerance_s: float = EC57_TOLERANCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair detections with reference beats one to one within ``tolerance_s``
    (EC57's beat-by-beat comparison: 150 ms).

    Pairs are taken closest first, so each reference beat gets at most one detection
    and each detection at most one reference beat; a tie in distance goes to the
    earlier reference beat, then the earlier detection.

    Args:
        detected_samples: Detected R peaks (sample indices, any order).
        reference_samples: Reference beat positions (same rate).
        fs: Sampling rate in Hz.
        tolerance_s: Largest allowed distance, inclusive.

    Returns:
        ``(ref_of_det, det_of_ref)``: for each detection the index of its reference
        beat or -1 (a false positive); for each reference beat the index of its
        detection or -1 (a false negative). Indices refer to the inputs' order.
    """
    det = np.asarray(detected_samples, dtype=np.int64).ravel()
    ref = np.asarray(reference_samples, dtype=np.int64).ravel()
    if not (np.isfinite(fs) and fs > 0) or not tolerance_s >= 0:
        raise ValueError(
            f"match_beats: fs ({fs}) must be > 0 and tolerance_s ({tolerance_s}) >= 0."
        )
    tol = tolerance_s * fs
    ref_of_det = np.full(len(det), -1, np.int64)
    det_of_ref = np.full(len(ref), -1, np.int64)
    if len(det) == 0 or len(ref) == 0:
        return ref_of_det, det_of_ref
    ref_order = np.argsort(ref, kind="stable")
    ref_sorted = ref[ref_order]
    lo = np.searchsorted(ref_sorted, det - tol, side="left")
    hi = np.searchsorted(ref_sorted, det + tol, side="right")
    counts = hi - lo
    pair_det = np.repeat(np.arange(len(det)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    pair_ref_sorted = np.arange(len(pair_det)) + starts
    pair_ref = ref_order[pair_ref_sorted]
    dist = np.abs(det[pair_det] - ref[pair_ref])
    # Closest first; ties: earlier reference, then earlier detection.
    order = np.lexsort((det[pair_det], ref[pair_ref], dist))
    for k in order:
        d, r = pair_det[k], pair_ref[k]
        if ref_of_det[d] < 0 and det_of_ref[r] < 0:
            ref_of_det[d] = r
            det_of_ref[r] = d
    return ref_of_det, det_of_ref


def detection_counts(
    detected_samples: np.ndarray,
    reference_samples: np.ndarray,
    fs: float,
    tolerance_s: float = EC57_TOLERANCE_S,
) -> dict[str, float]:
    """TP, FN, FP, Se and +P of detections against reference beats (`match_beats`).
    Se and +P are NaN when undefined (no reference beat / no detection)."""
    ref_of_det, det_of_ref = match_beats(
        detected_samples, reference_samples, fs, tolerance_s
    )
    tp = int((det_of_ref >= 0).sum())
    fn = int((det_of_ref < 0).sum())
    fp = int((ref_of_det < 0).sum())
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "se": tp / (tp + fn) if tp + fn else float("nan"),
        "ppv": tp / (tp + fp) if tp + fp else float("nan"),
    }


def score_detected_beats(
    detected: pd.DataFrame,
    reference: pd.DataFrame,
    classes: list[str],
    fs: float,
    tolerance_s: float = EC57_TOLERANCE_S,
) -> dict[str, Any]:
    """Classification scores over detected beats, EC57 style.

    Per record, detections are matched one to one to reference beats
    (`match_beats`). A matched detection counts as its reference beat classified as
    predicted; an unmatched detection is a false positive of the class predicted; a
    reference beat no detection matches is a false negative of its class.

    Args:
        detected: ``record``, ``sample``, ``predicted`` (one row per classified
            detection).
        reference: ``record``, ``sample``, ``label`` (every labelled reference beat).
        classes: Class names, in order.
        fs: Rate of both ``sample`` columns, Hz.
        tolerance_s: Matching tolerance.

    Returns:
        ``accuracy`` (correct / (reference beats + unmatched detections)),
        ``per_class`` {class: tp, fn, fp, se, ppv}, ``confusion`` (rows: true class
        then ``none`` for unmatched detections; columns: predicted class then
        ``none`` for missed beats), ``labels``, ``n_reference``, ``n_detected``,
        ``unmatched_detections``, ``missed_reference``.
    """
    for name, frame, column in (
        ("detected", detected, "predicted"),
        ("reference", reference, "label"),
    ):
        missing = {"record", "sample", column} - set(frame.columns)
        if missing:
            raise ValueError(f"score_detected_beats: {name} lacks {sorted(missing)}.")
    index = {c: i for i, c in enumerate(classes)}
    none = len(classes)
    for name, values in (
        ("detected.predicted", detected["predicted"]),
        ("reference.label", reference["label"]),
    ):
        unknown = sorted(set(map(str, values)) - set(index))
        if unknown:
            raise ValueError(
                f"score_detected_beats: {name} holds {unknown}, not in {classes}."
            )
    confusion = np.zeros((none + 1, none + 1), np.int64)
    det_groups = dict(tuple(detected.groupby("record", sort=False)))
    ref_groups = dict(tuple(reference.groupby("record", sort=False)))
    for rid in sorted(set(det_groups) | set(ref_groups), key=str):
        det = det_groups.get(rid, detected.iloc[:0])
        ref = ref_groups.get(rid, reference.iloc[:0])
        ref_of_det, det_of_ref = match_beats(
            det["sample"].to_numpy(), ref["sample"].to_numpy(), fs, tolerance_s
        )
        pred = np.array([index[str(c)] for c in det["predicted"]], np.int64)
        true = np.array([index[str(c)] for c in ref["label"]], np.int64)
        rows = np.where(ref_of_det >= 0, true[np.maximum(ref_of_det, 0)], none)
        np.add.at(confusion, (rows, pred), 1)
        np.add.at(confusion, (true[det_of_ref < 0], none), 1)
    per_class = {}
    for c, i in index.items():
        tp = int(confusion[i, i])
        fn = int(confusion[i].sum() - tp)
        fp = int(confusion[:, i].sum() - tp)
        per_class[c] = {
            "tp": tp,
            "fn": fn,
            "fp": fp,
            "se": tp / (tp + fn) if tp + fn else float("nan"),
            "ppv": tp / (tp + fp) if tp + fp else float("nan"),
        }
    total = int(confusion.sum())
    return {
        "accuracy": float(np.trace(confusion[:none, :none]) / total)
        if total
        else float("nan"),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": [*classes, "none"],
        "n_reference": int(confusion[:none].sum()),
        "n_detected": int(confusion[:, :none].sum()),
        "unmatched_detections": int(confusion[none, :none].sum()),
        "missed_reference": int(confusion[:none, none].sum()),
    }
