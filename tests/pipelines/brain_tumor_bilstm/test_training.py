"""Augmentation and the training node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medlstm.models.brain_bilstm import BrainBiLSTM
from medlstm.pipelines.brain_tumor_bilstm import training as training_module
from medlstm.pipelines.brain_tumor_bilstm.training import (
    SliceDataset,
    augment_batch,
    check_augmentation,
    train_classifier,
)
from tests.conftest import requires_bf16
from tests.pipelines.brain_tumor_bilstm.factories import slice_image

NONE = check_augmentation({"enabled": True})


def test_no_transform_is_the_identity():
    images = torch.rand(4, 16, 16)
    assert torch.allclose(augment_batch(images, NONE), images, atol=1e-5)


def test_certain_flip_mirrors_every_image():
    images = torch.rand(4, 16, 16)
    flipped = augment_batch(images, NONE | {"hflip_probability": 1.0})
    assert torch.allclose(flipped, images.flip(-1), atol=1e-5)


def test_rotation_and_zoom_change_images_but_keep_range_and_shape():
    torch.manual_seed(0)
    images = torch.from_numpy(
        np.stack([slice_image(i, 32) for i in range(8)]) / 255.0
    ).float()
    out = augment_batch(
        images,
        NONE
        | {"rotation_degrees": 15, "zoom": 0.2, "brightness": 0.1, "contrast": 0.1},
    )
    assert out.shape == images.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert (out - images).abs().mean(dim=(1, 2)).min() > 1e-3  # each image changed


def test_augmentation_repeats_under_the_same_seed():
    images = torch.rand(4, 16, 16)
    settings = NONE | {"hflip_probability": 0.5, "rotation_degrees": 10, "zoom": 0.1}
    torch.manual_seed(3)
    a = augment_batch(images, settings)
    torch.manual_seed(3)
    assert torch.equal(a, augment_batch(images, settings))


def test_augmentation_parameters_are_checked():
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) brain_tumor_bilstm\.augmentation\.rotate; "
        r"known: brightness, contrast, enabled, ",
    ):
        check_augmentation({"enabled": True, "rotate": 10})
    with pytest.raises(ValueError, match="out of range"):
        check_augmentation({"enabled": True, "zoom": 2.0})


def test_dataset_fetches_whole_batches_and_augments_only_when_enabled():
    images, labels = np.random.rand(6, 8, 8).astype(np.float32), np.arange(6) % 2
    plain = SliceDataset(images, labels, NONE | {"enabled": False})
    batch = plain.__getitems__([4, 1])
    assert [int(y) for _, y in batch] == [0, 1]
    assert torch.equal(batch[0][0], torch.from_numpy(images[4]))
    flips = SliceDataset(images, labels, NONE | {"hflip_probability": 1.0})
    assert torch.allclose(flips[2][0], torch.from_numpy(images[2]).flip(-1), atol=1e-5)


SMALL_MODEL = {"lstm1_units": 8, "dense_units": 8, "lstm2_units": 8, "head_units": 8}


def _toy_subsets(n_per_class: int = 12) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    labels = np.repeat(np.arange(4), n_per_class)
    images = np.stack([slice_image(i, 16, k) for i, k in enumerate(labels)]) / 255.0
    subset = np.where(np.arange(len(labels)) % n_per_class < 3, "val", "train")
    index = pd.DataFrame({"label": labels, "subset": subset})
    return {"images": images.astype(np.float32)}, index


def test_training_node_returns_best_model_history_and_summary(tmp_path, params):
    images, subsets = _toy_subsets()
    training = params["training"] | {"epochs": 2, "show_progress": False}
    small = {"lstm1_units": 8, "dense_units": 8, "lstm2_units": 8, "head_units": 8}
    runtime = {"checkpoint_path": str(tmp_path / "ckpt.pt")}
    before = torch.get_num_threads()
    model, logged, history, summary = train_classifier(
        images,
        subsets,
        params["data"],
        params["model"] | small,
        training,
        params["augmentation"],
        runtime,
    )
    assert isinstance(model, BrainBiLSTM) and model.image_size == 16
    assert [r["epoch"] for r in history] == [1, 2]
    assert [m["step"] for m in logged["val_loss"]] == [1, 2]
    assert summary["n_train"] == 36 and summary["n_val"] == 12
    assert 1 <= summary["best_epoch"] <= 2
    assert 0 < summary["seconds_to_best_epoch"] <= summary["seconds_total"]
    assert summary["torch_threads"] == params["training"]["num_threads"] == 1
    assert torch.get_num_threads() == before  # restored for the nodes after training
    assert summary["best_checkpoint"] == str(tmp_path / "ckpt.best.pt")
    assert Path(summary["best_checkpoint"]).exists()


def test_checkpoint_resumes_only_the_same_model_and_augmentation(
    tmp_path, params, monkeypatch
):
    """Settings the core cannot see (dropout, augmentation) are in the fingerprint."""
    images, subsets = _toy_subsets(4)  # one training batch per epoch
    checkpoint = tmp_path / "ckpt.pt"
    training = params["training"] | {"epochs": 2, "show_progress": False}
    runtime = {"checkpoint_path": str(checkpoint)}

    def killed_in_epoch_2(augmentation, model):
        drawn = []

        def augment(batch, settings):
            drawn.append(1)
            if len(drawn) == 2:
                raise RuntimeError("killed")
            return augment_batch(batch, settings)

        with monkeypatch.context() as patch:
            patch.setattr(training_module, "augment_batch", augment)
            with pytest.raises(RuntimeError, match="killed"):
                train_classifier(
                    images, subsets, params["data"], model, training,
                    augmentation, runtime,
                )  # fmt: skip
        assert checkpoint.exists()

    for augmentation, model, resumes in (
        (params["augmentation"] | {"zoom": 0.2}, SMALL_MODEL, False),
        (params["augmentation"], SMALL_MODEL | {"dropout_head": 0.1}, False),
        (params["augmentation"], SMALL_MODEL, True),
    ):
        killed_in_epoch_2(augmentation, model)
        *_, summary = train_classifier(
            images, subsets, params["data"], SMALL_MODEL, training,
            params["augmentation"], runtime,
        )  # fmt: skip
        assert summary["resumed_from_epoch"] == (1 if resumes else 0)
        assert summary["epochs_run"] == 2 and not checkpoint.exists()


def test_training_rejects_unknown_training_keys(params):
    images, subsets = _toy_subsets(4)
    with pytest.raises(ValueError, match="brain_tumor_bilstm.training.epochz"):
        train_classifier(
            images,
            subsets,
            params["data"],
            params["model"],
            params["training"] | {"epochz": 1},
            params["augmentation"],
            {"checkpoint_path": None},
        )


@requires_bf16
def test_bf16_training_with_class_weighting_reports_its_precision(params):
    images, subsets = _toy_subsets(4)
    model, _, history, summary = train_classifier(
        images,
        subsets,
        params["data"],
        SMALL_MODEL,
        params["training"]
        | {"epochs": 1, "class_weighting": "balanced", "precision": "bf16"},
        params["augmentation"],
        {"checkpoint_path": None},
    )
    assert summary["precision"] == "bf16"
    assert np.isfinite(history[0]["train_loss"])
    assert next(model.parameters()).dtype == torch.float32


def test_auto_precision_falls_back_to_fp32_without_bf16(params, fake_bf16_probe):
    fake_bf16_probe(works=False)
    images, subsets = _toy_subsets(4)
    *_, summary = train_classifier(
        images,
        subsets,
        params["data"],
        SMALL_MODEL,
        params["training"] | {"epochs": 1, "precision": "auto"},
        params["augmentation"],
        {"checkpoint_path": None},
    )
    assert summary["precision"] == "fp32"


def test_balanced_class_weighting_is_applied_to_the_loss(params):
    images, subsets = _toy_subsets()
    # Keep 3 of 9 training meningioma slices: that class is now 3x rarer.
    meningioma_train = subsets.index[
        (subsets["label"] == 1) & (subsets["subset"] == "train")
    ]
    subsets = subsets.drop(meningioma_train[3:])
    images = {"images": images["images"][subsets.index]}
    subsets = subsets.reset_index(drop=True)

    def train(weighting):
        return train_classifier(
            images,
            subsets,
            params["data"],
            SMALL_MODEL,
            params["training"]
            | {"epochs": 1, "class_weighting": weighting, "show_progress": False},
            params["augmentation"],
            {"checkpoint_path": None},
        )

    *_, history, summary = train("balanced")
    *_, plain_history, plain_summary = train("none")
    counts = np.bincount(
        subsets.loc[subsets["subset"] == "train", "label"], minlength=4
    )
    expected = counts.sum() / (4 * counts)
    assert list(summary["class_weights"]) == params["data"]["classes"]
    assert list(summary["class_weights"].values()) == pytest.approx(expected, rel=1e-6)
    assert summary["class_weights"]["meningioma"] == pytest.approx(3 * expected[0])
    assert plain_summary["class_weights"] is None
    assert history[0]["train_loss"] != plain_history[0]["train_loss"]
