"""`fit` applies training.class_weighting and weighted sampling from the training labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from medlstm.core.training import (
    TrainingParams,
    balanced_sample_weights,
    class_weights_from_labels,
    classification_loss,
    fit,
    seed_everything,
    training_labels,
)
from tests.core.toy import ToyLSTM, toy_data


def _imbalanced() -> tuple[TensorDataset, TensorDataset]:
    """Toy data keeping one class-1 sample in four: about 4:1 in training."""
    train_set, val_set = toy_data(n=160)
    x, y = train_set.tensors
    keep = (y == 0) | (torch.arange(len(y)) % 4 == 0)
    return TensorDataset(x[keep], y[keep]), val_set


def _fit(weighting: str, n_outputs: int = 2, **kwargs):
    params = TrainingParams.from_dict(
        {
            "epochs": 2,
            "batch_size": 16,
            "lr": 0.01,
            "seed": 5,
            "class_weighting": weighting,
            "show_progress": False,
        }
    )
    seed_everything(params.seed)
    return fit(ToyLSTM(n_classes=n_outputs), *_imbalanced(), params, **kwargs)


def test_balanced_weighting_is_the_weighted_loss_and_changes_it():
    labels = training_labels(_imbalanced()[0])
    expected = class_weights_from_labels(labels, 2, "balanced")
    assert expected[1] > 2 * expected[0]  # the rare class weighs more
    weighted = _fit("balanced")
    # The same run as a caller passing the weighted loss itself (the former path).
    by_hand = _fit("none", batch_loss=classification_loss(expected))
    plain = _fit("none")
    assert weighted.class_weights == pytest.approx(expected.tolist())
    assert plain.class_weights is None
    assert [r["train_loss"] for r in weighted.history] == [
        r["train_loss"] for r in by_hand.history
    ]
    assert weighted.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_sqrt_balanced_is_the_square_root_of_balanced():
    balanced = _fit("balanced", 3, n_classes=3).class_weights
    root = _fit("sqrt_balanced", 3, n_classes=3).class_weights
    assert len(root) == 3 and root[2] == 0.0  # a class absent from training weighs 0
    assert root == pytest.approx(np.sqrt(balanced).tolist())
    # Without n_classes the weights cover the training labels; the loss pads the rest.
    assert len(_fit("balanced", 3).class_weights) == 2


def test_a_custom_objective_receives_fits_class_weights():
    received = []

    def make_loss(weights):
        received.append(weights)
        return classification_loss(weights)

    result = _fit("balanced", make_batch_loss=make_loss)
    assert received[0].tolist() == pytest.approx(result.class_weights)
    with pytest.raises(ValueError, match="not both"):
        _fit("none", make_batch_loss=make_loss, batch_loss=classification_loss())


def test_weighted_sampling_defaults_to_balanced_sample_weights():
    train_set, val_set = _imbalanced()
    params = TrainingParams.from_dict(
        {"epochs": 2, "batch_size": 16, "seed": 5, "weighted_sampling": True}
        | {"show_progress": False}
    )

    def losses(**kwargs):
        seed_everything(params.seed)
        history = fit(ToyLSTM(), train_set, val_set, params, **kwargs).history
        return [(r["train_loss"], r["val_loss"]) for r in history]

    explicit = losses(sample_weights=balanced_sample_weights(train_set.tensors[1]))
    assert losses() == explicit
    assert losses(sample_weights=np.ones(len(train_set))) != explicit


def test_training_labels_come_from_attributes_tensors_and_subsets():
    train_set, _ = _imbalanced()
    y = train_set.tensors[1].numpy()
    assert training_labels(Subset(train_set, [2, 0])).tolist() == [y[2], y[0]]

    class WithLabels(Dataset):
        labels = torch.tensor([1, 0, 1])

    assert training_labels(WithLabels()).tolist() == [1, 0, 1]

    class Opaque(Dataset):
        def __len__(self):
            return 3

    with pytest.raises(TypeError, match="Opaque has no `labels`"):
        training_labels(Opaque())
