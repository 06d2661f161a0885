"""Exact, mirrored and near-duplicates; groups; the audit report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.brain_tumor_bilstm.audit import (
    audit_duplicates,
    duplicate_groups,
    near_duplicate_pairs,
)
from tests.pipelines.brain_tumor_bilstm.factories import slice_image


def _images(n: int, size: int = 64) -> np.ndarray:
    return np.stack([slice_image(seed, size, seed % 4) for seed in range(n)]) / 255.0


def _index(splits, classes, hashes=None) -> pd.DataFrame:
    n = len(splits)
    return pd.DataFrame(
        {
            "image_id": [
                f"{s}/{c}/img{i}.png"
                for i, (s, c) in enumerate(zip(splits, classes, strict=True))
            ],
            "split": splits,
            "class_name": classes,
            "sha256": hashes if hashes is not None else [f"h{i}" for i in range(n)],
        }
    )


def test_unrelated_slices_are_not_near_duplicates():
    pairs, _, _ = near_duplicate_pairs(_images(12), threshold=0.98)
    assert pairs.empty


def test_noisy_copy_is_found_and_a_mirrored_copy_only_when_asked():
    images = _images(6)
    rng = np.random.default_rng(0)
    images[4] = np.clip(images[0] + rng.normal(0, 0.02, images[0].shape), 0, 1)
    images[5] = images[1][:, ::-1]
    pairs, _, _ = near_duplicate_pairs(images, threshold=0.98, match_mirrored=True)
    found = {
        (a, b): m for a, b, m in pairs[["a", "b", "mirrored"]].itertuples(index=False)
    }
    assert found == {(0, 4): False, (1, 5): True}

    plain, _, _ = near_duplicate_pairs(images, threshold=0.98, match_mirrored=False)
    assert set(zip(plain["a"], plain["b"], strict=True)) == {(0, 4)}


def test_blocks_give_the_same_pairs_as_one_matrix():
    images = _images(10)
    images[7] = images[2]
    images[9] = images[3][:, ::-1]
    one, best_one, _ = near_duplicate_pairs(
        images, 0.98, block=1024, reference=np.arange(10) < 5
    )
    many, best_many, _ = near_duplicate_pairs(
        images, 0.98, block=3, reference=np.arange(10) < 5
    )
    pd.testing.assert_frame_equal(one, many)
    np.testing.assert_allclose(best_one, best_many, atol=1e-6)


def test_nearest_reference_excludes_the_image_itself():
    images = _images(4)
    images[3] = images[0]
    _, best, where = near_duplicate_pairs(
        images, 0.98, reference=np.array([1, 0, 0, 0], bool)
    )
    assert where[3] == 0 and best[3] == pytest.approx(1.0, abs=1e-5)
    assert where[0] == -1  # the only reference image is itself


def test_a_constant_image_is_similar_to_nothing():
    images = _images(3)
    images[1] = 0.0
    images[2] = 0.0
    pairs, _, _ = near_duplicate_pairs(images, 0.5)
    assert pairs.empty


def test_groups_join_duplicates_transitively():
    pairs = pd.DataFrame({"a": [0, 1, 4], "b": [1, 2, 5]})
    groups = duplicate_groups(6, pairs)
    assert groups[0] == groups[1] == groups[2]
    assert groups[4] == groups[5] != groups[0]
    assert len({groups[3], groups[0], groups[4]}) == 3


def test_audit_marks_test_images_that_leak_from_training(params):
    images = _images(8)
    images[5] = images[0][:, ::-1]  # test: mirrored copy of training 0
    images[6] = images[1]  # test: exact copy of training 1
    images[7] = images[2]  # test: copy of training 2 with another label
    splits = ["Training"] * 4 + ["Testing"] * 4
    classes = [
        "glioma",
        "meningioma",
        "notumor",
        "pituitary",
        "glioma",
        "glioma",
        "meningioma",
        "pituitary",
    ]
    hashes = ["a", "b", "c", "d", "e", "f", "b", "c"]
    audited, pairs, report = audit_duplicates(
        {"images": images}, _index(splits, classes, hashes), params["audit"]
    )

    leaked = audited.loc[audited["split"] == "Testing", "group_has_training"].tolist()
    assert leaked == [False, True, True, True]
    assert set(pairs["scope"]) == {"across Training/Testing"}
    assert pairs.set_index("image_b").loc["Testing/meningioma/img6.png", "exact"]
    assert pairs.set_index("image_b").loc["Testing/glioma/img5.png", "mirrored"]
    assert report["testing_with_training_duplicate"] == {"total": 3, "of": 4}
    assert report["per_class"]["glioma"]["testing_mirrored_copy_of_training"] == 1
    assert report["per_class"]["meningioma"]["testing_exact_copy_of_training"] == 1
    assert report["per_class"]["glioma"]["deduplicated_testing_images"] == 1
    assert report["label_conflicts"]["count"] == 1
    assert report["label_conflicts"]["pairs"][0]["class_b"] == "pituitary"
    assert audited.loc[5, "nearest_training_image"] == "Training/glioma/img0.png"


def test_audit_refuses_misaligned_inputs(params):
    with pytest.raises(ValueError, match="must align"):
        audit_duplicates(
            {"images": _images(3)},
            _index(["Training"] * 2, ["glioma"] * 2),
            params["audit"],
        )
