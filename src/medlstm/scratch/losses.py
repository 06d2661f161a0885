"""Losses that return their value and their gradient w.r.t. the prediction."""

from __future__ import annotations

import numpy as np


def mse_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements.

    Args:
        pred: Predictions, any shape.
        target: Targets, same shape as ``pred``.

    Returns:
        ``(loss, d loss / d pred)``, the gradient shaped like ``pred``.
    """
    if pred.shape != np.shape(target):
        raise ValueError(
            f"expected target of shape {pred.shape} (as pred), got {np.shape(target)}"
        )
    diff = pred - target
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis via log-sum-exp (no overflow for large logits)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over the batch.

    Args:
        logits: Unnormalised scores, ``(B, C)``.
        labels: Integer class indices in ``[0, C)``, ``(B,)``.

    Returns:
        ``(loss, d loss / d logits)``, the gradient ``(B, C)``.
    """
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits (batch, classes) and labels (batch,), "
            f"got {logits.shape} and {labels.shape}"
        )
    n_classes = logits.shape[1]
    if not np.issubdtype(labels.dtype, np.integer) or (
        labels.size and (labels.min() < 0 or labels.max() >= n_classes)
    ):
        raise ValueError(f"labels must be integers in [0, {n_classes}), got {labels}")
    log_p = log_softmax(logits)
    rows = np.arange(len(labels))
    loss = -float(log_p[rows, labels].mean())
    grad = np.exp(log_p)
    grad[rows, labels] -= 1.0
    return loss, grad / len(labels)
