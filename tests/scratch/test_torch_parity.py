"""Equality with torch.nn.LSTM + nn.Linear given the same weights, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlstm.scratch import Adam, LSTMModel, clip_grad_norm
from tests.scratch.helpers import analytic_grads, random_problem

TOLERANCE = 1e-10


def torch_twin(
    model: LSTMModel, bias_split: float = 0.3
) -> tuple[torch.nn.LSTM, torch.nn.Linear]:
    """torch modules holding ``model``'s weights (torch keeps W^T and two biases)."""
    lstm = torch.nn.LSTM(
        model.input_size, model.hidden_size, model.num_layers, batch_first=True
    ).double()
    head = torch.nn.Linear(model.hidden_size, model.output_size).double()
    p = {k: torch.from_numpy(v.copy()) for k, v in model.params.items()}
    with torch.no_grad():
        for k in range(model.num_layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(p[f"lstm{k}.w_x"].T)
            getattr(lstm, f"weight_hh_l{k}").copy_(p[f"lstm{k}.w_h"].T)
            # Any split of our single bias into torch's two gives the same network.
            getattr(lstm, f"bias_ih_l{k}").copy_(bias_split * p[f"lstm{k}.b"])
            getattr(lstm, f"bias_hh_l{k}").copy_((1 - bias_split) * p[f"lstm{k}.b"])
        head.weight.copy_(p["head.w"].T)
        head.bias.copy_(p["head.b"])
    return lstm, head


def torch_grads(model: LSTMModel, data: dict[str, np.ndarray]):
    """Outputs, final states and gradients from torch, named like ours."""
    lstm, head = torch_twin(model)
    t = {
        k: torch.from_numpy(v.copy()).requires_grad_(k in ("x", "h0", "c0"))
        for k, v in data.items()
    }
    out, (h_n, c_n) = lstm(t["x"], (t["h0"], t["c0"]))
    y = head(out)
    loss = (y * t["r_y"]).sum() + (h_n * t["r_h"]).sum() + (c_n * t["r_c"]).sum()
    loss.backward()
    grads = {
        "x": t["x"].grad,
        "h0": t["h0"].grad,
        "c0": t["c0"].grad,
        "head.w": head.weight.grad.T,
        "head.b": head.bias.grad,
    }
    for k in range(model.num_layers):
        grads[f"lstm{k}.w_x"] = getattr(lstm, f"weight_ih_l{k}").grad.T
        grads[f"lstm{k}.w_h"] = getattr(lstm, f"weight_hh_l{k}").grad.T
        grads[f"lstm{k}.b"] = getattr(lstm, f"bias_ih_l{k}").grad
        # Both torch biases receive the same gradient, which is ours.
        torch.testing.assert_close(
            grads[f"lstm{k}.b"],
            getattr(lstm, f"bias_hh_l{k}").grad,
            rtol=0,
            atol=TOLERANCE,
        )
    as_np = {k: v.detach().numpy() for k, v in grads.items()}
    return y.detach().numpy(), h_n.detach().numpy(), c_n.detach().numpy(), as_np


@pytest.mark.parametrize("layers", [1, 3])
def test_outputs_states_and_all_gradients_equal_torch(layers):
    model, data = random_problem(
        batch=4, steps=7, features=3, hidden=5, outputs=2, layers=layers
    )
    y, (h_n, c_n), _ = model.forward(data["x"], (data["h0"], data["c0"]))
    ours = analytic_grads(model, data)
    y_t, h_t, c_t, theirs = torch_grads(model, data)

    np.testing.assert_allclose(y, y_t, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(h_n, h_t, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(c_n, c_t, rtol=0, atol=TOLERANCE)
    assert set(ours) == set(theirs)
    worst = max(np.abs(ours[k] - theirs[k]).max() for k in ours)
    print(f"max |ours - torch| over all gradients: {worst:.1e}")  # noqa: T201
    for name in ours:
        np.testing.assert_allclose(
            ours[name], theirs[name], rtol=0, atol=TOLERANCE, err_msg=name
        )


def test_default_zero_state_matches_torch_default():
    model = LSTMModel(2, 3, 1, num_layers=2, seed=3)
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    lstm, head = torch_twin(model)
    out, _ = lstm(torch.from_numpy(x))
    np.testing.assert_allclose(
        model(x), head(out).detach().numpy(), rtol=0, atol=TOLERANCE
    )


def test_adam_follows_torch_step_by_step():
    rng = np.random.default_rng(0)
    params = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    t_params = [torch.tensor(v, requires_grad=True) for v in params.values()]
    ours = Adam(params, lr=0.01, weight_decay=0.1)
    theirs = torch.optim.Adam(t_params, lr=0.01, weight_decay=0.1)
    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        for p, g in zip(t_params, grads.values(), strict=True):
            p.grad = torch.from_numpy(g.copy())
        ours.step(grads)
        theirs.step()
    for p, t_p in zip(params.values(), t_params, strict=True):
        np.testing.assert_allclose(p, t_p.detach().numpy(), rtol=0, atol=TOLERANCE)


def test_clipping_matches_torch():
    rng = np.random.default_rng(1)
    grads = {"a": rng.normal(scale=5.0, size=(3, 4)), "b": rng.normal(size=5)}
    t_grads = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for t_g, g in zip(t_grads, grads.values(), strict=True):
        t_g.grad = torch.from_numpy(g.copy())
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert norm == pytest.approx(
        float(torch.nn.utils.clip_grad_norm_(t_grads, 1.0)), rel=1e-12
    )
    for g, t_g in zip(grads.values(), t_grads, strict=True):
        # torch divides by (norm + 1e-6); we clip to exactly max_norm.
        np.testing.assert_allclose(g, t_g.grad.numpy(), rtol=1e-6)
