"""Validation drawn by whole duplicate groups; the deduplicated test set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.brain_tumor_bilstm.splitting import (
    assign_subsets,
    check_no_leakage,
)


def _audited(n_train: int = 80, n_test: int = 20, group_size: int = 2) -> pd.DataFrame:
    n = n_train + n_test
    labels = np.arange(n) % 4
    groups = np.arange(n) // group_size
    frame = pd.DataFrame(
        {
            "image_id": [f"img{i}" for i in range(n)],
            "split": ["Training"] * n_train + ["Testing"] * n_test,
            "label": labels,
            "class_name": [f"c{k}" for k in labels],
            "group": groups,
        }
    )
    train_groups = set(frame.loc[frame["split"] == "Training", "group"])
    frame["group_has_training"] = frame["group"].isin(train_groups) & (
        frame["split"] == "Testing"
    )
    return frame


def test_groups_never_straddle_train_and_validation():
    frame = _audited(group_size=4)
    result = assign_subsets(frame, {"validation_fraction": 0.2, "seed": 1})
    train = set(result.loc[result["subset"] == "train", "group"])
    val = set(result.loc[result["subset"] == "val", "group"])
    assert not train & val
    assert 0.1 <= (result["subset"] == "val").sum() / 80 <= 0.3
    assert set(result.loc[result["split"] == "Testing", "subset"]) == {"test"}


def test_deduplicated_test_set_drops_images_grouped_with_training():
    frame = _audited(n_train=80, n_test=20, group_size=2)
    frame.loc[frame["image_id"] == "img80", "group"] = 0  # test image 80 copies train 0
    frame["group_has_training"] = frame["image_id"] == "img80"
    result = assign_subsets(frame, {"validation_fraction": 0.2, "seed": 1})
    dedup = result.loc[result["deduplicated_test"], "image_id"]
    assert "img80" not in set(dedup)
    assert len(dedup) == 19


def test_same_seed_same_split_other_seed_other_split():
    frame = _audited()
    a = assign_subsets(frame, {"validation_fraction": 0.2, "seed": 1})["subset"]
    b = assign_subsets(frame, {"validation_fraction": 0.2, "seed": 1})["subset"]
    c = assign_subsets(frame, {"validation_fraction": 0.2, "seed": 2})["subset"]
    assert a.equals(b) and not a.equals(c)


def test_leakage_check_catches_a_straddling_group():
    frame = _audited()
    frame["subset"] = np.where(frame["split"] == "Training", "train", "test")
    frame["deduplicated_test"] = frame["subset"] == "test"
    frame.loc[1, "subset"] = "val"  # group 0 now in train (img0) and val (img1)
    with pytest.raises(AssertionError, match="straddle"):
        check_no_leakage(frame)


def test_leakage_check_catches_a_leaked_deduplicated_test_image():
    frame = _audited()
    frame["subset"] = np.where(frame["split"] == "Training", "train", "test")
    frame["deduplicated_test"] = frame["subset"] == "test"
    frame.loc[80, "group"] = 0
    with pytest.raises(AssertionError, match="deduplicated test set"):
        check_no_leakage(frame)


def test_bad_fraction_and_too_few_images_are_errors():
    with pytest.raises(ValueError, match="validation_fraction"):
        assign_subsets(_audited(), {"validation_fraction": 0.9, "seed": 1})
    with pytest.raises(ValueError, match="Cannot draw a validation set of 20% from 8"):
        assign_subsets(
            _audited(n_train=8, group_size=1), {"validation_fraction": 0.2, "seed": 1}
        )


def test_a_class_missing_from_validation_is_an_error():
    frame = _audited(n_train=80, group_size=1)
    whole_class = (frame["class_name"] == "c3") & (frame["split"] == "Training")
    frame.loc[whole_class, "group"] = 999  # the whole class is one group
    with pytest.raises(ValueError, match=r"no image of class\(es\) \['c3'\]"):
        assign_subsets(frame, {"validation_fraction": 0.2, "seed": 1})
