"""Adam and gradient clipping for dicts of NumPy arrays."""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]


def global_norm(grads: Params) -> float:
    """L2 norm of all arrays taken together."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_grad_norm(grads: Params, max_norm: float) -> float:
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    The direction of the update is kept; only its length is bounded, which is
    what keeps an exploding gradient from throwing the weights far away.

    Returns:
        The global norm before clipping.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    norm = global_norm(grads)
    if not np.isfinite(norm):
        raise FloatingPointError(f"gradient norm is {norm}; cannot clip")
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


class Adam:
    """Adam with bias-corrected moments (Kingma & Ba, 2015), updating in place.

    Args:
        params: The arrays to update (a model's ``params`` dict).
        lr: Step size.
        betas: Decay rates of the first and second moment estimates.
        eps: Added to the root of the second moment.
        weight_decay: L2 penalty added to the gradient (0 disables it).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.params, self.lr, self.betas = params, lr, betas
        self.eps, self.weight_decay = eps, weight_decay
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: Params) -> None:
        """Apply one update from ``grads`` (extra keys such as ``x`` are ignored)."""
        self.t += 1
        beta1, beta2 = self.betas
        correct1, correct2 = 1 - beta1**self.t, 1 - beta2**self.t
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            m, v = self.m[name], self.v[name]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= self.lr * (m / correct1) / (np.sqrt(v / correct2) + self.eps)
