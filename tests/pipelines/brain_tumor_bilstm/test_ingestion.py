"""Image modes, resizing, and every kind of bad input at ingestion."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medlstm.pipelines.brain_tumor_bilstm.ingestion import (
    grayscale,
    ingest_images,
    preprocess_image,
)
from tests.pipelines.brain_tumor_bilstm.factories import (
    partitions,
    slice_image,
    write_tree,
)


def _ingest(root, params, **ingestion):
    return ingest_images(
        partitions(root, "Training"),
        partitions(root, "Testing"),
        params["data"],
        params["ingestion"] | ingestion,
    )


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "CMYK", "1"])
def test_every_8_bit_mode_becomes_one_channel_in_unit_range(mode):
    image = Image.fromarray(slice_image(0, 96)).convert(mode)
    array, _ = preprocess_image(image, 64)
    assert array.shape == (64, 64)
    assert array.dtype == np.float32
    assert 0.0 <= array.min() and array.max() <= 1.0
    assert array.max() > 0.5  # the bright blob survived


def test_16_bit_images_are_stretched_to_their_own_range():
    values = slice_image(1, 64).astype(np.uint16) * 16  # 12-bit data in 16 bits
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    array, _ = preprocess_image(image, 64)
    assert array.max() == pytest.approx(1.0, abs=0.02)
    assert array.min() == pytest.approx(0.0, abs=0.02)


def test_transparent_pixels_become_black_background():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white, but fully transparent
    gray, _ = grayscale(Image.fromarray(rgba))
    assert np.asarray(gray).max() == 0


def test_same_picture_in_l_and_rgb_hashes_the_same():
    image = Image.fromarray(slice_image(2, 64))
    _, gray_hash = preprocess_image(image, 32)
    _, rgb_hash = preprocess_image(image.convert("RGB"), 32)
    _, other_hash = preprocess_image(Image.fromarray(slice_image(3, 64)), 32)
    assert gray_hash == rgb_hash != other_hash


def test_downsizing_is_anti_aliased():
    # A one-pixel checkerboard averages to mid-grey; nearest-neighbour would alias it
    # to a pattern of black and white.
    board = (np.indices((224, 224)).sum(axis=0) % 2 * 255).astype(np.uint8)
    array, _ = preprocess_image(Image.fromarray(board), 64, reducing_gap=1.5)
    assert np.abs(array - 0.5).max() < 0.1


def test_ingests_both_splits_with_labels_from_folder_names(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=2)
    images, index, report = _ingest(root, params)
    assert images["images"].shape == (16, 64, 64)
    assert list(index["split"].value_counts().sort_index()) == [8, 8]
    assert (
        index["label"] == index["class_name"].map(params["data"]["classes"].index)
    ).all()
    assert index["image_id"].iloc[0] == "Training/glioma/glioma_0.png"
    assert report["n_skipped"] == 0


def test_other_folder_names_map_through_the_parameter(tmp_path, params):
    folders = {
        "glioma_tumor": 0,
        "meningioma_tumor": 1,
        "no_tumor": 2,
        "pituitary_tumor": 3,
    }
    root = write_tree(tmp_path / "mri", per_class=1, folders=folders)
    _, index, _ = _ingest(root, params)
    assert set(index["class_name"]) == set(params["data"]["classes"])
    assert set(index.loc[index["folder"] == "no_tumor", "class_name"]) == {"notumor"}


def test_bad_files_are_counted_and_listed_not_dropped(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=2)
    train = root / "Training"
    (train / "glioma" / "notes.txt").write_text("not an image")
    jpeg = io.BytesIO()
    Image.fromarray(slice_image(5, 64)).save(jpeg, format="JPEG")
    (train / "glioma" / "truncated.jpg").write_bytes(jpeg.getvalue()[:300])
    Image.new("L", (1, 1)).save(train / "meningioma" / "tiny.png")
    (train / "notumor" / ".ipynb_checkpoints").mkdir()
    Image.fromarray(slice_image(6, 64)).save(
        train / "notumor" / ".ipynb_checkpoints" / "c.png"
    )
    Image.fromarray(slice_image(7, 64)).save(train / "loose.png")
    (train / "pituitary" / "empty.jpg").write_bytes(b"")

    images, index, report = _ingest(root, params, max_skipped_fraction=0.5)

    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {
        "Training/glioma/notes.txt",
        "Training/glioma/truncated.jpg",
        "Training/meningioma/tiny.png",
        "Training/notumor/.ipynb_checkpoints/c.png",
        "Training/loose.png",
        "Training/pituitary/empty.jpg",
    }
    assert reasons["Training/glioma/notes.txt"].startswith("unreadable: not an image")
    assert reasons["Training/pituitary/empty.jpg"].startswith(
        "unreadable: not an image"
    )
    assert "truncated" in reasons["Training/glioma/truncated.jpg"].lower()
    assert reasons["Training/meningioma/tiny.png"].startswith("too small: 1x1")
    assert (
        reasons["Training/notumor/.ipynb_checkpoints/c.png"] == "hidden file or folder"
    )
    assert reasons["Training/loose.png"] == "not inside a class folder"
    assert report["n_skipped"] == 6
    assert len(index) == len(images["images"]) == 16
    assert not index["image_id"].isin(list(reasons)).any()


def test_too_many_skipped_files_fail_the_run(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=2)
    for k in range(3):
        (root / "Training" / "glioma" / f"bad{k}.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match="max_skipped_fraction"):
        _ingest(root, params, max_skipped_fraction=0.05)


def test_empty_class_folder_is_a_clear_error(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=2)
    for file in (root / "Testing" / "pituitary").iterdir():
        file.unlink()
    with pytest.raises(
        ValueError, match=r"Testing has no usable image for class\(es\) \['pituitary'\]"
    ):
        _ingest(root, params)


def test_class_missing_from_testing_is_a_clear_error(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=2)
    for file in (root / "Testing" / "meningioma").iterdir():
        file.unlink()
    (root / "Testing" / "meningioma").rmdir()
    with pytest.raises(ValueError, match="meningioma"):
        _ingest(root, params)


def test_unmapped_class_folder_is_an_error_unless_mapped_to_null(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=1)
    (root / "Training" / "metastasis").mkdir()
    Image.fromarray(slice_image(9, 48)).save(root / "Training" / "metastasis" / "m.png")
    with pytest.raises(ValueError, match=r"\['metastasis'\] are not in"):
        _ingest(root, params)

    params["data"]["folder_to_class"]["metastasis"] = None
    _, index, report = _ingest(root, params, max_skipped_fraction=0.5)
    assert "metastasis" not in set(index["folder"])
    assert report["skipped"][0]["file"] == "Training/metastasis/m.png"


def test_mapping_to_an_unknown_class_is_an_error(tmp_path, params):
    root = write_tree(tmp_path / "mri", per_class=1)
    params["data"]["folder_to_class"]["glioma"] = "glioblastoma"
    with pytest.raises(ValueError, match="unknown classes"):
        _ingest(root, params)
