"""Backpropagation through time against central differences, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from medlstm.scratch import mse_loss, softmax_cross_entropy
from tests.scratch.helpers import analytic_grads, random_problem, weighted_loss

EPS = 3e-5  # balances truncation error (~EPS**2) against rounding (~1 / EPS)
MAX_RELATIVE_ERROR = 1e-6


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """Elementwise ``|a - n| / max(|a|, |n|)``, the floor only guarding 0 / 0."""
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-12)
    return np.abs(analytic - numeric) / scale


def numeric_grad(loss, array: np.ndarray) -> np.ndarray:
    """Central differences of ``loss()`` w.r.t. every element of ``array`` (in place)."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + EPS
        plus = loss()
        array[idx] = saved - EPS
        minus = loss()
        array[idx] = saved
        grad[idx] = (plus - minus) / (2 * EPS)
    return grad


def test_every_parameter_input_and_initial_state_matches_central_differences():
    model, data = random_problem(batch=3, steps=5, features=3, hidden=4, layers=2)
    grads = analytic_grads(model, data)
    arrays = {**model.params, "x": data["x"], "h0": data["h0"], "c0": data["c0"]}
    assert set(grads) == set(arrays)

    errors = {}
    for name, array in arrays.items():
        numeric = numeric_grad(lambda: weighted_loss(model, data), array)
        assert grads[name].shape == array.shape, name
        errors[name] = relative_error(grads[name], numeric).max()
    worst = max(errors, key=errors.get)
    print(f"max relative error {errors[worst]:.2e} ({worst})")  # noqa: T201 - the reported figure
    assert errors[worst] <= MAX_RELATIVE_ERROR, errors


def test_single_layer_single_step_is_exact_too():
    model, data = random_problem(
        batch=2, steps=1, features=2, hidden=3, layers=1, seed=7
    )
    grads = analytic_grads(model, data)
    for name in ("lstm0.w_x", "lstm0.w_h", "lstm0.b", "x", "h0", "c0"):
        array = model.params.get(name, data.get(name))
        numeric = numeric_grad(lambda: weighted_loss(model, data), array)
        assert relative_error(grads[name], numeric).max() <= MAX_RELATIVE_ERROR, name


@pytest.mark.parametrize(
    "loss_fn, target",
    [
        (mse_loss, np.random.default_rng(1).normal(size=(4, 3))),
        (softmax_cross_entropy, np.array([0, 2, 1, 2])),
    ],
)
def test_loss_gradients_match_central_differences(loss_fn, target):
    pred = np.random.default_rng(2).normal(size=(4, 3))
    _, grad = loss_fn(pred, target)
    numeric = numeric_grad(lambda: loss_fn(pred, target)[0], pred)
    assert relative_error(grad, numeric).max() <= MAX_RELATIVE_ERROR
