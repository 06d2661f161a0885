"""The objectives of the ECG models: the autoencoder's alpha * MSE + beta * CE, the
CNN's cross-entropy and the rhythm model's cross-entropy per beat of a sequence, all
class-weighted by the core and optionally focal.

A `LossFactory` turns a model's ``loss`` block into what the core's ``fit`` takes as
``make_batch_loss``: class weights (from ``training.class_weighting``) -> batch loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from medlstm.core.params import check_known_keys
from medlstm.core.training import StepOutput


def focal_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Class-weighted cross-entropy, down-weighting easy beats by ``(1 - p_t)^gamma``.

    With ``gamma = 0`` this equals ``F.cross_entropy(logits, targets, weight=weight)``.
    """
    ce = F.cross_entropy(logits, targets, reduction="none")
    factor = (1.0 - torch.exp(-ce)).pow(gamma) if gamma else torch.ones_like(ce)
    w = weight[targets] if weight is not None else torch.ones_like(ce)
    return (factor * w * ce).sum() / w.sum().clamp_min(1e-12)


def autoencoder_loss(
    alpha: float,
    beta: float,
    class_weights: torch.Tensor | None = None,
    focal_gamma: float = 0.0,
):
    """``batch_loss`` for the core: alpha * MSE(reconstruction, standardised beat) +
    beta * (focal) CE. The core runs it under ``training.precision``; the MSE is
    taken in float32 either way."""
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(
            f"alpha and beta must be >= 0 and not both 0, got {alpha}, {beta}."
        )

    def batch_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> StepOutput:
        x, rr, y = batch
        recon, logits = model(x, rr)
        recon, logits = recon.float(), logits.float()
        weight = None if class_weights is None else class_weights.to(logits.device)
        mse = F.mse_loss(recon, model.standardize(x))
        loss = alpha * mse + beta * focal_cross_entropy(logits, y, weight, focal_gamma)
        return StepOutput(loss, logits, y)

    return batch_loss


def classifier_loss(
    class_weights: torch.Tensor | None = None,
    focal_gamma: float = 0.0,
):
    """``batch_loss`` for the CNN baseline: (focal) class-weighted cross-entropy."""

    def batch_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> StepOutput:
        x, rr, y = batch
        logits = model(x, rr).float()
        weight = None if class_weights is None else class_weights.to(logits.device)
        return StepOutput(
            focal_cross_entropy(logits, y, weight, focal_gamma), logits, y
        )

    return batch_loss


def sequence_loss(
    class_weights: torch.Tensor | None = None,
    focal_gamma: float = 0.0,
):
    """``batch_loss`` for the rhythm model: (focal) class-weighted CE over the beats of
    a batch of sequences; padding beats (target < 0) give no loss and no score."""

    def batch_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> StepOutput:
        x, context, mask, y = batch
        logits = model(x, context, mask).float()  # (B, L, C)
        beats = y >= 0
        logits, y = logits[beats], y[beats]
        weight = None if class_weights is None else class_weights.to(logits.device)
        return StepOutput(
            focal_cross_entropy(logits, y, weight, focal_gamma), logits, y
        )

    return batch_loss


LOSS_KEYS = ("focal_gamma",)


def check_loss_block(loss: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """The ``loss`` block as a dict; an unknown key is an error naming it."""
    loss = {} if loss is None else loss
    moved = {
        "precision": "precision is now set in the training block: "
        f"'{where}.training.precision'"
    }
    check_known_keys(loss, LOSS_KEYS, f"{where}.loss", hints=moved)
    return dict(loss)


class LossFactory(Protocol):
    """``loss settings -> (class weights -> batch_loss)``: a model's objective, given
    its ``loss`` block, completed by the core with ``training.class_weighting``."""

    def __call__(
        self, loss: dict[str, Any]
    ) -> Callable[[torch.Tensor | None], Callable[..., StepOutput]]: ...


@dataclass(frozen=True)
class AutoencoderLoss:
    """alpha * MSE + beta * (focal) class-weighted CE, as a `LossFactory`."""

    alpha: float
    beta: float

    @property
    def weights(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta}

    def __call__(self, loss: dict[str, Any]):
        gamma = float(loss.get("focal_gamma", 0.0))
        return partial(autoencoder_loss, self.alpha, self.beta, focal_gamma=gamma)


def cnn_loss(loss: dict[str, Any]):
    """The CNN's (focal) class-weighted CE, as a `LossFactory`."""
    return partial(classifier_loss, focal_gamma=float(loss.get("focal_gamma", 0.0)))


def rhythm_loss(loss: dict[str, Any]):
    """The rhythm model's (focal) class-weighted CE per beat, as a `LossFactory`."""
    return partial(sequence_loss, focal_gamma=float(loss.get("focal_gamma", 0.0)))
