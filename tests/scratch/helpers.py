"""Shared helpers for the NumPy LSTM tests."""

from __future__ import annotations

import numpy as np

from medlstm.scratch import LSTMModel


def random_problem(
    batch: int = 3,
    steps: int = 5,
    features: int = 3,
    hidden: int = 4,
    outputs: int = 2,
    layers: int = 2,
    seed: int = 0,
) -> tuple[LSTMModel, dict[str, np.ndarray]]:
    """A small float64 model with random inputs, states and loss weights.

    The loss ``sum(y * r_y) + sum(h_n * r_h) + sum(c_n * r_c)`` has random
    upstream gradients everywhere, so every path through the network is tested.
    """
    rng = np.random.default_rng(seed)
    model = LSTMModel(features, hidden, outputs, layers, seed=seed + 1)
    # Non-zero head bias and non-uniform LSTM biases, so no gradient hides behind a zero.
    for name, value in model.params.items():
        if name.endswith(".b"):
            value += rng.normal(scale=0.5, size=value.shape)
    data = {
        "x": rng.normal(size=(batch, steps, features)),
        "h0": rng.normal(scale=0.5, size=(layers, batch, hidden)),
        "c0": rng.normal(scale=0.5, size=(layers, batch, hidden)),
        "r_y": rng.normal(size=(batch, steps, outputs)),
        "r_h": rng.normal(size=(layers, batch, hidden)),
        "r_c": rng.normal(size=(layers, batch, hidden)),
    }
    return model, data


def weighted_loss(model: LSTMModel, data: dict[str, np.ndarray]) -> float:
    """The scalar loss of :func:`random_problem`."""
    y, (h_n, c_n), _ = model.forward(data["x"], (data["h0"], data["c0"]))
    return float(
        np.sum(y * data["r_y"]) + np.sum(h_n * data["r_h"]) + np.sum(c_n * data["r_c"])
    )


def analytic_grads(
    model: LSTMModel, data: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Backpropagated gradients of :func:`weighted_loss`."""
    _, _, cache = model.forward(data["x"], (data["h0"], data["c0"]))
    return model.backward(cache, data["r_y"], data["r_h"], data["r_c"])
