"""Behaviour of the NumPy LSTM: batching, dtypes, initialisation, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from medlstm.scratch import (
    LSTMModel,
    clip_grad_norm,
    global_norm,
    log_softmax,
    mse_loss,
    softmax_cross_entropy,
)
from tests.scratch.helpers import analytic_grads, random_problem


def test_a_batch_equals_its_sequences_one_at_a_time():
    model, data = random_problem(batch=5, steps=6, layers=2)
    y, (h_n, c_n), _ = model.forward(data["x"], (data["h0"], data["c0"]))
    grads = analytic_grads(model, data)
    param_grad_sum = {k: np.zeros_like(v) for k, v in model.params.items()}
    for b in range(5):
        one = {
            k: v[b : b + 1] if k in ("x", "r_y") else v[:, b : b + 1]
            for k, v in data.items()
        }
        y_b, (h_b, c_b), _ = model.forward(one["x"], (one["h0"], one["c0"]))
        grads_b = analytic_grads(model, one)
        np.testing.assert_allclose(y_b[0], y[b], rtol=0, atol=1e-12)
        np.testing.assert_allclose(h_b[:, 0], h_n[:, b], rtol=0, atol=1e-12)
        np.testing.assert_allclose(c_b[:, 0], c_n[:, b], rtol=0, atol=1e-12)
        np.testing.assert_allclose(grads_b["x"][0], grads["x"][b], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            grads_b["h0"][:, 0], grads["h0"][:, b], rtol=0, atol=1e-12
        )
        for name in param_grad_sum:
            param_grad_sum[name] += grads_b[name]
    # The batch loss is the sum of the per-sequence losses, so are its gradients.
    for name, total in param_grad_sum.items():
        np.testing.assert_allclose(total, grads[name], rtol=0, atol=1e-12, err_msg=name)


def test_float32_on_request_float64_by_default():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    for dtype, expected in ((None, np.float64), ("float32", np.float32)):
        model = LSTMModel(4, 5, 2, num_layers=2, **({"dtype": dtype} if dtype else {}))
        y, (h_n, c_n), cache = model.forward(x)
        grads = model.backward(cache, np.ones_like(y))
        arrays = [y, h_n, c_n, *model.params.values(), *grads.values()]
        assert {a.dtype for a in arrays} == {np.dtype(expected)}
    y32 = LSTMModel(4, 5, 2, dtype="float32", seed=1)(x)
    y64 = LSTMModel(4, 5, 2, seed=1)(x)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


def test_initialisation_is_seeded_glorot_with_forget_bias():
    a, b, c = (LSTMModel(3, 8, 2, num_layers=2, seed=s) for s in (7, 7, 8))
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["lstm0.w_h"], c.params["lstm0.w_h"])
    bias = a.params["lstm1.b"].reshape(4, 8)
    np.testing.assert_array_equal(bias[1], 1.0)  # forget gate
    np.testing.assert_array_equal(bias[[0, 2, 3]], 0.0)
    assert np.abs(a.params["lstm0.w_x"]).max() <= np.sqrt(6 / (3 + 8))
    assert np.abs(a.params["lstm1.w_h"]).max() <= np.sqrt(6 / (8 + 8))
    assert a.params["lstm0.w_h"].std() > 0.5 * np.sqrt(6 / 16) / np.sqrt(3)
    zero = LSTMModel(3, 8, 2, forget_bias=0.0).params["lstm0.b"]
    np.testing.assert_array_equal(zero, 0.0)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((4, 3)), r"expected input of shape \(batch, time, 2\), got \(4, 3\)"),
        (
            np.zeros((4, 3, 5)),
            r"expected input of shape \(batch, time, 2\), got \(4, 3, 5\)",
        ),
        (
            np.zeros((0, 3, 2)),
            r"empty input: expected shape \(batch, time, 2\), got \(0, 3, 2\)",
        ),
        (np.zeros((4, 0, 2)), r"empty input: .* got \(4, 0, 2\)"),
        (np.full((4, 3, 2), np.nan), r"input of shape \(4, 3, 2\) contains NaN"),
        (np.array([[["a", "b"]]]), "numeric"),
    ],
)
def test_bad_input_is_a_clear_value_error(x, message):
    with pytest.raises(ValueError, match=message):
        LSTMModel(2, 3, 1).forward(x)


def test_bad_state_and_gradient_shapes_are_value_errors():
    model = LSTMModel(2, 3, 1, num_layers=2)
    x = np.zeros((4, 5, 2))
    with pytest.raises(
        ValueError, match=r"expected h0 of shape \(2, 4, 3\), got \(1, 4, 3\)"
    ):
        model.forward(x, (np.zeros((1, 4, 3)), np.zeros((2, 4, 3))))
    with pytest.raises(ValueError, match="c0 .* contains NaN"):
        model.forward(x, (np.zeros((2, 4, 3)), np.full((2, 4, 3), np.nan)))
    _, _, cache = model.forward(x)
    with pytest.raises(
        ValueError, match=r"expected dy of shape \(4, 5, 1\), got \(4, 1\)"
    ):
        model.backward(cache, np.zeros((4, 1)))
    with pytest.raises(
        ValueError, match=r"expected dc_n of shape \(2, 4, 3\), got \(4, 3\)"
    ):
        model.backward(cache, np.zeros((4, 5, 1)), dc_n=np.zeros((4, 3)))


@pytest.mark.parametrize(
    "kwargs", [{"hidden_size": 0}, {"num_layers": 1.5}, {"dtype": "int32"}]
)
def test_bad_constructor_arguments(kwargs):
    args = {"input_size": 2, "hidden_size": 3, "output_size": 1} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LSTMModel(**args)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1e300, 0.0, 1e300]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(1e300 / 2)  # row 1: 0, row 2: 1e300 - 0
    np.testing.assert_allclose(np.exp(log_softmax(logits)).sum(axis=1), 1.0)


def test_losses_reject_mismatched_shapes_and_labels():
    with pytest.raises(ValueError, match=r"expected target of shape \(3, 1\)"):
        mse_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must be integers"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"got \(2, 3\) and \(3,\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_clipping_bounds_an_exploding_gradient():
    # Large recurrent weights, long sequences and a far target: gradients explode.
    model = LSTMModel(1, 16, 1, seed=0)
    for name in ("lstm0.w_h", "lstm0.w_x"):
        model.params[name] *= 20.0
    x = np.random.default_rng(0).normal(size=(8, 200, 1))
    y, _, cache = model.forward(x)
    _, d_last = mse_loss(y[:, -1], np.full((8, 1), 1e6))
    dy = np.zeros_like(y)
    dy[:, -1] = d_last
    grads = model.backward(cache, dy)
    direction = {k: v / global_norm(grads) for k, v in grads.items()}

    before = clip_grad_norm(grads, max_norm=1.0)
    assert before > 1e5
    assert global_norm(grads) == pytest.approx(1.0)
    for name, g in grads.items():  # the direction is kept
        np.testing.assert_allclose(g, direction[name], rtol=1e-10, atol=1e-300)
    assert clip_grad_norm(grads, max_norm=10.0) == pytest.approx(
        1.0
    )  # short: untouched
    assert global_norm(grads) == pytest.approx(1.0)


def test_clipping_refuses_a_non_finite_gradient():
    with pytest.raises(FloatingPointError, match="inf"):
        clip_grad_norm({"w": np.array([np.inf, 1.0])}, max_norm=1.0)
    with pytest.raises(ValueError, match="max_norm must be positive"):
        clip_grad_norm({"w": np.ones(2)}, max_norm=0.0)


def test_the_library_does_not_import_torch():
    code = "import sys, medlstm.scratch; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_state_dict_round_trip_and_bad_state():
    model = LSTMModel(2, 3, 4, num_layers=2, dtype="float32", seed=5)
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())  # np.savez-able
    again = LSTMModel.from_state_dict(state)
    x = np.random.default_rng(0).normal(size=(2, 5, 2))
    np.testing.assert_array_equal(again(x), model(x))
    assert again.dtype == np.float32 and again.num_layers == 2
    with pytest.raises(
        ValueError, match=r"expected head.w of shape \(3, 4\), got \(3, 5\)"
    ):
        LSTMModel.from_state_dict(state | {"head.w": np.zeros((3, 5), np.float32)})
    with pytest.raises(ValueError, match="lacks"):
        LSTMModel.from_state_dict(model.params)
