"""A small 1D CNN beat classifier: the baseline the LSTM autoencoder is compared with.

beat (B, T) -> [Conv1d -> BatchNorm -> ReLU -> MaxPool(2)] x len(channels)
-> global average pool (B, C_last) -> [., rr features] -> MLP -> logits (B, classes)
rr (B, R) -> (rr - rr_mean) / rr_scale    (statistics of the training beats)

The RR features pass through the same `RRInput` as the autoencoder's, so the two
models compared in the MLflow UI see their inputs prepared alike.
"""

from __future__ import annotations

import torch
from torch import nn

from medlstm.core.persistence import register_architecture
from medlstm.models.rr_input import RRInput, rr_config


def conv_trunk(
    channels: list[int] | tuple[int, ...], kernel_size: int
) -> nn.Sequential:
    """(B, 1, T) -> (B, channels[-1], T / 2**len(channels)): per width in ``channels``,
    Conv1d (same padding) -> BatchNorm -> ReLU -> MaxPool(2)."""
    blocks, width = [], 1
    for out in channels:
        blocks += [
            nn.Conv1d(width, out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(out),
            nn.ReLU(),
            nn.MaxPool1d(2),
        ]
        width = out
    return nn.Sequential(*blocks)


@register_architecture("cnn1d")
class CNN1DClassifier(nn.Module):
    """Convolutional beat classifier taking the same inputs as the autoencoder."""

    def __init__(
        self,
        *,
        n_classes: int = 5,
        n_rr_features: int = 0,
        channels: tuple[int, ...] | list[int] = (16, 32, 64),
        kernel_size: int = 7,
        head_hidden: int = 64,
        dropout: float = 0.2,
        rr_mean: list[float] | None = None,
        rr_scale: list[float] | None = None,
    ) -> None:
        super().__init__()
        if not channels or kernel_size % 2 == 0:
            raise ValueError("CNN1DClassifier needs channels and an odd kernel_size.")
        self.config = {
            "n_classes": n_classes,
            "n_rr_features": n_rr_features,
            "channels": list(channels),
            "kernel_size": kernel_size,
            "head_hidden": head_hidden,
            "dropout": dropout,
            **rr_config(rr_mean, rr_scale),
        }
        self.n_rr_features = n_rr_features
        self.rr_input = RRInput(n_rr_features, rr_mean, rr_scale)
        self.features = conv_trunk(channels, kernel_size)
        width = channels[-1]
        self.head = nn.Sequential(
            nn.Linear(width + n_rr_features, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, n_classes),
        )

    def forward(self, x: torch.Tensor, rr: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T), rr (B, R) -> logits (B, classes)."""
        h = self.features(x.unsqueeze(1)).mean(dim=-1)  # (B, C_last)
        if self.n_rr_features:
            h = torch.cat([h, self.rr_input(rr, h.dtype)], dim=-1)
        return self.head(h)
