"""LSTM autoencoder with a classifier on its latent code, for single-lead heartbeats.

    beat (B, T) -> encoder LSTM x num_layers -> last hidden (B, H) -> Linear -> z (B, L)
    z repeated over T steps -> decoder LSTM x num_layers -> Linear per step -> recon (B, T)
    [z, rr features] (B, L + R) -> Linear -> ReLU -> Dropout -> Linear -> logits (B, C)

The reconstruction term makes ``z`` a summary of the beat's morphology; the RR
features (prematurity, compensatory pause) give the head what morphology alone
cannot show, which is what separates supraventricular beats.
"""

from __future__ import annotations

import torch
from torch import nn

from medlstm.core.persistence import register_architecture


@register_architecture("ecg_lstm_autoencoder")
class LSTMAutoencoderClassifier(nn.Module):
    """Joint beat autoencoder and classifier; see the module docstring for shapes."""

    def __init__(
        self,
        *,
        seq_len: int = 288,
        n_classes: int = 5,
        n_rr_features: int = 0,
        hidden_size: int = 128,
        num_layers: int = 2,
        latent_size: int = 64,
        head_hidden: int = 64,
        dropout: float = 0.2,
        lstm_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (
            min(seq_len, n_classes, hidden_size, num_layers, latent_size, head_hidden)
            < 1
        ):
            raise ValueError("LSTMAutoencoderClassifier sizes must all be >= 1.")
        if n_rr_features < 0:
            raise ValueError(f"n_rr_features must be >= 0, got {n_rr_features}.")
        self.config = {
            "seq_len": seq_len,
            "n_classes": n_classes,
            "n_rr_features": n_rr_features,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "latent_size": latent_size,
            "head_hidden": head_hidden,
            "dropout": dropout,
            "lstm_dropout": lstm_dropout,
        }
        self.seq_len = seq_len
        self.n_rr_features = n_rr_features
        between = lstm_dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(
            1, hidden_size, num_layers, batch_first=True, dropout=between
        )
        self.to_latent = nn.Linear(hidden_size, latent_size)
        self.decoder = nn.LSTM(
            latent_size, hidden_size, num_layers, batch_first=True, dropout=between
        )
        self.to_signal = nn.Linear(hidden_size, 1)
        self.head = nn.Sequential(
            nn.Linear(latent_size + n_rr_features, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, n_classes),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> latent z (B, L)."""
        _, (h, _) = self.encoder(x.unsqueeze(-1))  # h: (num_layers, B, H)
        return self.to_latent(h[-1])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L) -> reconstructed beat (B, T)."""
        steps = z.unsqueeze(1).expand(-1, self.seq_len, -1)  # (B, T, L), no copy
        out, _ = self.decoder(steps)  # (B, T, H)
        return self.to_signal(out).squeeze(-1)

    def classify(self, z: torch.Tensor, rr: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, L), rr (B, R) -> logits (B, C)."""
        if self.n_rr_features:
            if rr is None or rr.shape[-1] != self.n_rr_features:
                got = None if rr is None else tuple(rr.shape)
                raise ValueError(
                    f"This model takes {self.n_rr_features} RR features, got {got}."
                )
            z = torch.cat([z, rr.to(z.dtype)], dim=-1)
        return self.head(z)

    def forward(
        self,
        x: torch.Tensor,
        rr: torch.Tensor | None = None,
        return_latent: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """x (B, T), rr (B, R) -> (recon (B, T), logits (B, C)[, z (B, L)])."""
        if x.shape[-1] != self.seq_len:
            raise ValueError(
                f"Expected beats of {self.seq_len} samples, got {x.shape[-1]}."
            )
        z = self.encode(x)
        recon, logits = self.decode(z), self.classify(z, rr)
        return (recon, logits, z) if return_latent else (recon, logits)
