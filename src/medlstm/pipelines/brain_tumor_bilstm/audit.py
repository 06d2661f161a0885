"""Duplicate audit: exact copies and near-duplicates inside and across the splits.

Exact duplicates share the content hash of their full-resolution grayscale pixels.
Near-duplicates are pairs whose downsampled slices correlate (Pearson) at or above a
threshold, optionally after mirroring one of them: the published brain-tumour MRI
split holds left-right mirrored copies of training images in its test set.

Duplicates are joined transitively into groups (connected components). A group never
straddles train and validation, and the deduplicated test set keeps only test images
whose group holds no image of the published Training split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)


def similarity_embedding(images: np.ndarray, size: int) -> np.ndarray:
    """Area-downsampled, zero-mean, unit-norm rows, so a dot product is a correlation.

    Args:
        images: (N, H, W) float32.
        size: side of the downsampled slice; small sizes ignore JPEG noise and
            slight resampling differences.

    Returns:
        (N, size * size) float32. A constant image gives a zero row (similar to
        nothing; exact copies of it are still found by hash).
    """
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    small = torch.nn.functional.adaptive_avg_pool2d(tensor[:, None], size)
    rows = small.reshape(len(images), -1)
    rows = rows - rows.mean(dim=1, keepdim=True)
    norms = rows.norm(dim=1, keepdim=True)
    return (rows / torch.where(norms > 1e-6, norms, torch.inf)).numpy()


def near_duplicate_pairs(
    images: np.ndarray,
    threshold: float,
    size: int = 32,
    match_mirrored: bool = True,
    block: int = 1024,
    reference: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` whose correlation reaches ``threshold``.

    Args:
        images: (N, H, W).
        threshold: Pearson correlation in (0, 1].
        size: embedding side, see `similarity_embedding`.
        match_mirrored: also compare each image with the left-right mirror of others.
        block: rows per matrix product, bounding memory to ``block * N`` floats.
        reference: boolean (N,) mask; for every image, the best correlation with
            any *other* reference image is returned as well.

    Returns:
        Pairs (``a``, ``b``, ``similarity``, ``mirrored``: the match needs the
        mirror), and per image the best reference correlation and its index
        (-1.0 and -1 when there is no other reference image).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"Near-duplicate threshold must be in (0, 1], got {threshold}."
        )
    n = len(images)
    plain = torch.from_numpy(similarity_embedding(images, size))
    mirror = (
        torch.from_numpy(similarity_embedding(images[:, :, ::-1], size))
        if match_mirrored
        else None
    )
    ref = np.zeros(n, bool) if reference is None else np.array(reference, bool)
    best_ref = np.full(n, -1.0, dtype=np.float32)
    best_ref_index = np.full(n, -1, dtype=np.int64)
    found: list[tuple[np.ndarray, ...]] = []
    for start in range(0, n, block):
        rows = plain[start : start + block]
        direct = rows @ plain.T  # (b, N)
        sims = torch.maximum(direct, rows @ mirror.T) if mirror is not None else direct
        local = torch.arange(len(rows))
        sims[local, local + start] = -torch.inf  # an image is not its own duplicate
        if ref.any():
            masked = sims[:, torch.from_numpy(ref)]
            values, where = masked.max(dim=1)
            best_ref[start : start + len(rows)] = values.numpy()
            best_ref_index[start : start + len(rows)] = np.flatnonzero(ref)[
                where.numpy()
            ]
        a, b = torch.nonzero(sims >= threshold, as_tuple=True)
        keep = b > a + start
        a, b = a[keep], b[keep]
        found.append(
            (
                (a + start).numpy(),
                b.numpy(),
                sims[a, b].numpy(),
                (direct[a, b] < threshold).numpy(),
            )
        )
    alone = ~np.isfinite(best_ref)  # the only reference image was the image itself
    best_ref[alone], best_ref_index[alone] = -1.0, -1
    columns = [np.concatenate(parts) for parts in zip(*found, strict=True)]
    pairs = pd.DataFrame(
        {
            "a": columns[0],
            "b": columns[1],
            "similarity": columns[2],
            "mirrored": columns[3],
        }
    )
    return pairs, best_ref, best_ref_index


def _exact_pairs(hashes: pd.Series) -> pd.DataFrame:
    """Each image of an exact-duplicate set paired with the set's first image."""
    positions = pd.Series(np.arange(len(hashes)), index=hashes.index)
    first = positions.groupby(hashes.values).transform("min").to_numpy()
    a = np.flatnonzero(first != np.arange(len(hashes)))
    return pd.DataFrame({"a": first[a], "b": a})


def duplicate_groups(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """Connected components of the duplicate graph: (n,) group ids, 0..k-1."""
    graph = coo_matrix(
        (np.ones(len(pairs)), (pairs["a"].to_numpy(), pairs["b"].to_numpy())),
        shape=(n, n),
    )
    return connected_components(graph, directed=False)[1]


def audit_duplicates(
    images: Mapping[str, np.ndarray],
    index: pd.DataFrame,
    audit_params: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Find exact and near-duplicates and group them.

    Args:
        images: ``{"images": (N, S, S)}`` row-aligned with ``index``.
        index: from `ingest_images`.
        audit_params: ``threshold``, ``embedding_size``, ``match_mirrored``,
            ``sensitivity_thresholds``, ``max_listed``.

    Returns:
        The index with ``group``, ``group_size``, ``nearest_training_similarity``,
        ``nearest_training_image`` and ``group_has_training`` columns; the duplicate
        pairs (one row per pair, exact or near); the audit report.
    """
    array = images["images"]
    if len(array) != len(index):
        raise ValueError(
            f"{len(array)} images but {len(index)} index rows; they must align."
        )
    threshold = float(audit_params["threshold"])
    training = (index["split"] == "Training").to_numpy()
    near, best_ref, best_ref_index = near_duplicate_pairs(
        array,
        threshold,
        size=int(audit_params["embedding_size"]),
        match_mirrored=bool(audit_params["match_mirrored"]),
        reference=training,
    )
    exact = _exact_pairs(index["sha256"])
    pairs = pd.concat(
        [
            near.assign(exact=False),
            exact.assign(similarity=1.0, mirrored=False, exact=True),
        ]
    )
    # One row per image pair: an exact pair is usually also a near pair.
    pairs = (
        pairs.assign(a=pairs[["a", "b"]].min(axis=1), b=pairs[["a", "b"]].max(axis=1))
        .sort_values("exact")
        .drop_duplicates(["a", "b"], keep="last")
        .sort_values(["a", "b"])
        .reset_index(drop=True)
    )
    groups = duplicate_groups(len(index), pairs)
    audited = index.copy()
    audited["group"] = groups
    audited["group_size"] = audited.groupby("group")["image_id"].transform("size")
    audited["group_has_training"] = (
        pd.Series(training).groupby(groups).transform("sum").to_numpy()
        - training.astype(int)
        > 0
    )
    audited["nearest_training_similarity"] = best_ref
    audited["nearest_training_image"] = np.where(
        best_ref_index >= 0, index["image_id"].to_numpy()[best_ref_index.clip(0)], ""
    )
    table = _pairs_table(pairs, index)
    report = _audit_report(audited, table, audit_params)
    logger.info(
        "Duplicate audit: %d pairs (%d exact); %d of %d test images share a group "
        "with a training image.",
        len(table),
        int(table["exact"].sum()),
        report["testing_with_training_duplicate"]["total"],
        int((~training).sum()),
    )
    return audited, table, report


def _pairs_table(pairs: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    a, b = (
        index.iloc[pairs["a"]].reset_index(drop=True),
        index.iloc[pairs["b"]].reset_index(drop=True),
    )
    scope = np.where(
        a["split"] == b["split"], "within " + a["split"], "across Training/Testing"
    )
    return pd.DataFrame(
        {
            "image_a": a["image_id"],
            "image_b": b["image_id"],
            "scope": scope,
            "class_a": a["class_name"],
            "class_b": b["class_name"],
            "similarity": pairs["similarity"].round(5).to_numpy(),
            "exact": pairs["exact"].to_numpy(),
            "mirrored": pairs["mirrored"].to_numpy(),
        }
    )


def _per_class(audited: pd.DataFrame, table: pd.DataFrame) -> dict[str, dict]:
    """Per class: images per split, in duplicate groups, and Testing images with a
    Training duplicate (exact or mirrored copies counted apart)."""
    testing = audited[audited["split"] == "Testing"]
    training = audited[audited["split"] == "Training"]
    across = table[table["scope"] == "across Training/Testing"]
    test_ids = set(testing["image_id"])
    linked_exact = (
        set(across.loc[across["exact"], ["image_a", "image_b"]].stack()) & test_ids
    )
    linked_mirror = (
        set(across.loc[across["mirrored"], ["image_a", "image_b"]].stack()) & test_ids
    )
    per_class = {}
    for name in sorted(audited["class_name"].unique()):
        tr = training[training["class_name"] == name]
        te = testing[testing["class_name"] == name]
        leaked = te["group_has_training"]
        per_class[name] = {
            "training_images": len(tr),
            "training_in_duplicate_group": int((tr["group_size"] > 1).sum()),
            "testing_images": len(te),
            "testing_in_duplicate_group": int((te["group_size"] > 1).sum()),
            "testing_with_training_duplicate": int(leaked.sum()),
            "testing_exact_copy_of_training": int(
                te["image_id"].isin(linked_exact).sum()
            ),
            "testing_mirrored_copy_of_training": int(
                te["image_id"].isin(linked_mirror).sum()
            ),
            "deduplicated_testing_images": int((~leaked).sum()),
        }
    return per_class


def _audit_report(
    audited: pd.DataFrame, table: pd.DataFrame, audit_params: Mapping[str, Any]
) -> dict[str, Any]:
    """The audit's JSON report: settings, pair counts, groups, per class, label
    conflicts, and how many Testing images each similarity threshold would flag."""
    testing = audited[audited["split"] == "Testing"]
    per_class = _per_class(audited, table)
    conflicts = table[table["class_a"] != table["class_b"]]
    max_listed = int(audit_params.get("max_listed", 50))
    sensitivity = {
        f"{t:g}": int((testing["nearest_training_similarity"] >= t).sum())
        for t in audit_params.get("sensitivity_thresholds", [])
    }
    return {
        "threshold": float(audit_params["threshold"]),
        "embedding_size": int(audit_params["embedding_size"]),
        "match_mirrored": bool(audit_params["match_mirrored"]),
        "pairs": {
            scope: {
                "total": int(len(group)),
                "exact": int(group["exact"].sum()),
                "mirrored": int(group["mirrored"].sum()),
            }
            for scope, group in table.groupby("scope")
        },
        "groups_with_duplicates": int((audited.groupby("group").size() > 1).sum()),
        "largest_group": int(audited["group_size"].max()),
        "testing_with_training_duplicate": {
            "total": int(testing["group_has_training"].sum()),
            "of": len(testing),
        },
        "per_class": per_class,
        "label_conflicts": {
            "count": len(conflicts),
            "pairs": conflicts.head(max_listed).to_dict(orient="records"),
        },
        "sensitivity": {
            "description": "Testing images whose most similar Training image (mirror "
            "included when match_mirrored) correlates at or above each threshold.",
            "testing_images_at_or_above": sensitivity,
        },
    }
