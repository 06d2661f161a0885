"""Mini-batch training of the NumPy LSTM."""

from __future__ import annotations

import numpy as np
import pytest

from medlstm.scratch import LSTMModel, TrainConfig, evaluate, predict, train


def toy_sign_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences whose label is the sign of their sum; regression target is the mean."""
    x = np.random.default_rng(seed).normal(size=(n, 8, 1))
    return x, (x.sum(axis=(1, 2)) > 0).astype(int), x.mean(axis=1)


def test_training_learns_and_keeps_the_best_epoch():
    x, labels, _ = toy_sign_task(256, seed=0)
    x_val, labels_val, _ = toy_sign_task(128, seed=1)
    model = LSTMModel(1, 8, 2, seed=0)
    before = evaluate(model, "classification", x_val, labels_val)
    config = TrainConfig(epochs=15, batch_size=32, lr=0.02, seed=3)
    result = train(model, "classification", x, labels, x_val, labels_val, config)

    after = evaluate(model, "classification", x_val, labels_val)
    assert after["accuracy"] > 0.9 > before["accuracy"]
    best = result.history[result.best_epoch - 1]
    assert after["loss"] == pytest.approx(best["val_loss"])
    assert best["val_loss"] == min(h["val_loss"] for h in result.history)
    assert set(result.history[0]) >= {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "grad_norm",
        "epoch_seconds",
    }


def test_same_seed_same_history_other_seed_other_shuffle():
    x, _, target = toy_sign_task(64, seed=0)
    runs = []
    for seed in (1, 1, 2):
        model = LSTMModel(1, 4, 1, seed=0)
        config = TrainConfig(epochs=2, batch_size=16, seed=seed)
        history = train(model, "regression", x, target, x, target, config).history
        runs.append([h["train_loss"] for h in history])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_plateau_halves_the_rate_and_patience_stops_early():
    x, _, target = toy_sign_task(32, seed=0)
    model = LSTMModel(1, 4, 1, seed=0)
    config = TrainConfig(
        epochs=40, lr=1e-5, early_stopping_patience=3, lr_plateau_patience=0, seed=0
    )
    # lr 1e-5 barely moves: the loss plateaus, the rate drops, patience runs out.
    result = train(
        model, "regression", x, np.full_like(target, 100.0), x, target, config
    )
    assert result.stopped_early
    assert len(result.history) < 40
    lrs = [h["lr"] for h in result.history]
    assert lrs[-1] < lrs[0] == 1e-5
    assert all(b in (a, a * 0.5) for a, b in zip(lrs, lrs[1:], strict=False))


def test_predict_is_the_last_timestep_in_any_batch_size():
    x, _, _ = toy_sign_task(10, seed=0)
    model = LSTMModel(1, 4, 3, seed=0)
    np.testing.assert_allclose(
        predict(model, x, batch_size=3), model(x)[:, -1], atol=1e-12
    )


def test_bad_training_data_is_a_clear_error():
    model = LSTMModel(1, 4, 1)
    x = np.zeros((4, 5, 1))
    with pytest.raises(
        ValueError, match=r"expected regression targets of shape \(4, 1\), got \(4,\)"
    ):
        train(model, "regression", x, np.zeros(4), x, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="validation set: 4 sequences but 3 targets"):
        train(model, "regression", x, np.zeros((4, 1)), x, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="task must be one of"):
        train(model, "ranking", x, np.zeros((4, 1)), x, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="empty set"):
        train(model, "regression", x[:0], np.zeros((0, 1)), x, np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"targets of shape \(4, 1\) contain NaN"):
        train(model, "regression", x, np.full((4, 1), np.nan), x, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        TrainConfig(batch_size=0)
