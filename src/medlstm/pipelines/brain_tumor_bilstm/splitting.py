"""Train / validation / test assignment that no duplicate group can leak across."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

logger = logging.getLogger(__name__)


def assign_subsets(
    audited: pd.DataFrame, split_params: Mapping[str, Any]
) -> pd.DataFrame:
    """Draw validation from Training by whole duplicate groups; mark the dedup test set.

    Args:
        audited: index from `audit_duplicates` (needs ``split``, ``label``, ``group``,
            ``group_has_training``).
        split_params: ``validation_fraction`` in (0, 0.5] and ``seed``.

    Returns:
        A copy with ``subset`` ("train", "val" or "test") and ``deduplicated_test``
        (a test image whose duplicate group holds no Training image).

    Raises:
        ValueError: a class ends up missing from train or validation.
        AssertionError: a duplicate group straddles train and validation, or a
            deduplicated test image shares a group with a Training image.
    """
    fraction = float(split_params["validation_fraction"])
    if not 0.0 < fraction <= 0.5:
        raise ValueError(
            f"brain_tumor_bilstm.split.validation_fraction must be in (0, 0.5], got {fraction}."
        )
    result = audited.copy()
    training = np.flatnonzero(result["split"].to_numpy() == "Training")
    # One fold of a stratified group k-fold: class proportions kept, groups whole.
    folds = StratifiedGroupKFold(
        n_splits=round(1.0 / fraction),
        shuffle=True,
        random_state=int(split_params["seed"]),
    )
    try:
        _, val_positions = next(
            folds.split(
                np.zeros(len(training)),
                result["label"].to_numpy()[training],
                result["group"].to_numpy()[training],
            )
        )
    except ValueError as err:
        raise ValueError(
            f"Cannot draw a validation set of {fraction:.0%} from {len(training)} Training "
            f"images by whole duplicate groups: {err}"
        ) from err
    subset = np.full(len(result), "test", dtype=object)
    subset[training] = "train"
    subset[training[val_positions]] = "val"
    result["subset"] = subset
    result["deduplicated_test"] = (result["subset"] == "test") & ~result[
        "group_has_training"
    ]
    check_no_leakage(result)
    for name in ("train", "val"):
        labels = set(result.loc[result["subset"] == name, "class_name"])
        missing = sorted(set(result["class_name"]) - labels)
        if missing:
            raise ValueError(
                f"The {name} subset has no image of class(es) {missing}; the dataset is too "
                "small for brain_tumor_bilstm.split.validation_fraction = "
                f"{fraction}, or one duplicate group holds a whole class."
            )
    counts = result.groupby(["subset", "class_name"]).size().unstack(fill_value=0)
    logger.info("Subsets (images per class):\n%s", counts.to_string())
    return result


def check_no_leakage(assigned: pd.DataFrame) -> None:
    """Assert that no duplicate group is shared by train and validation, and that the
    deduplicated test set shares no group with any Training image."""
    groups = {
        name: set(assigned.loc[assigned["subset"] == name, "group"])
        for name in ("train", "val")
    }
    shared = groups["train"] & groups["val"]
    if shared:
        raise AssertionError(
            f"{len(shared)} duplicate group(s) straddle train and validation."
        )
    dedup = set(assigned.loc[assigned["deduplicated_test"], "group"])
    leaked = dedup & (groups["train"] | groups["val"])
    if leaked:
        raise AssertionError(
            f"{len(leaked)} duplicate group(s) of the deduplicated test set hold "
            "Training images."
        )
