"""LSTM autoencoder with a classifier on its latent code, for single-lead heartbeats.

    beat (B, T) / input_scale -> mean over blocks of input_stride samples (B, S = T / k)
        -> encoder LSTM x num_layers -> last hidden (B, H) -> Linear -> z (B, L)
    [z, s / S] at each of S steps -> decoder LSTM x num_layers -> Linear per step
        -> (B, S) -> linear interpolation -> recon (B, T)
    rr (B, R) -> (rr - rr_mean) / rr_scale    (statistics of the training beats)
    logits = MLP(z) (B, C) + Linear(rr) (B, C)

The reconstruction term makes ``z`` a summary of the beat's morphology; the RR
features (prematurity, compensatory pause) give the head what morphology alone
cannot show, which is what separates supraventricular beats. The decoder also gets
the position ``s / S``: fed the same ``z`` at every step it would have to count time
in its state to place the QRS, and in practice it only learned the mean (a flat line).

The RR features add a linear term to the logits, so prematurity moves them by the
same amount whatever the beat looks like: fed into one MLP with ``z``, a beat that
looked typical could veto its RR features (docs/experiments has the measurements).

The LSTMs run at 1 / ``input_stride`` of the sampling rate (3: 96 steps at 120 Hz
for a 288-sample beat): three times faster, and a QRS complex 180 steps before the
end of a 360 Hz window is too far back for the encoder's last state to learn it.
Their forget gates start biased open (Jozefowicz et al. 2015) for the same reason.

Beats enter divided by ``input_scale`` (the training beats' standard deviation), so
the LSTM gates see inputs of order one: template-subtracted beats of about 0.1 mV
barely move them, and the encoder then learns no shape. The reconstruction is in
these standardised units, so alpha weighs a unit-free MSE.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from medlstm.core.persistence import register_architecture
from medlstm.models.rr_input import RRInput, rr_config


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
        input_scale: float = 1.0,
        input_stride: int = 1,
        rr_mean: list[float] | None = None,
        rr_scale: list[float] | None = None,
    ) -> None:
        super().__init__()
        if (
            min(seq_len, n_classes, hidden_size, num_layers, latent_size, head_hidden)
            < 1
        ):
            raise ValueError("LSTMAutoencoderClassifier sizes must all be >= 1.")
        if not input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {input_scale}.")
        if input_stride < 1 or seq_len % input_stride:
            raise ValueError(
                f"input_stride must divide seq_len ({seq_len}), got {input_stride}."
            )
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
            "input_scale": float(input_scale),
            "input_stride": input_stride,
            **rr_config(rr_mean, rr_scale),
        }
        self.seq_len = seq_len
        self.n_rr_features = n_rr_features
        self.input_scale = float(input_scale)
        self.input_stride = input_stride
        self.rr_input = RRInput(n_rr_features, rr_mean, rr_scale)
        between = lstm_dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(
            1, hidden_size, num_layers, batch_first=True, dropout=between
        )
        self.to_latent = nn.Linear(hidden_size, latent_size)
        self.decoder = nn.LSTM(
            latent_size + 1, hidden_size, num_layers, batch_first=True, dropout=between
        )
        self.register_buffer(
            "position",
            torch.linspace(0.0, 1.0, seq_len // input_stride).unsqueeze(-1),
            persistent=False,
        )
        self.to_signal = nn.Linear(hidden_size, 1)
        for lstm in (self.encoder, self.decoder):
            for name, bias in lstm.named_parameters():
                if name.startswith("bias"):  # gates i, f, g, o; b_ih + b_hh = 1 for f
                    nn.init.constant_(bias[hidden_size : 2 * hidden_size], 0.5)
        self.head = nn.Sequential(
            nn.Linear(latent_size, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, n_classes),
        )
        self.rr_logits = nn.Linear(n_rr_features, n_classes) if n_rr_features else None

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Beats (B, T) in input units -> the units of the reconstruction."""
        return x / self.input_scale

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> latent z (B, L)."""
        x = self.standardize(x)
        if self.input_stride > 1:
            x = F.avg_pool1d(x.unsqueeze(1), self.input_stride).squeeze(1)  # (B, S)
        _, (h, _) = self.encoder(x.unsqueeze(-1))  # h: (num_layers, B, H)
        return self.to_latent(h[-1])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L) -> reconstructed beat (B, T), standardised (see `standardize`)."""
        position = self.position.to(z.dtype).expand(z.shape[0], -1, -1)  # (B, S, 1)
        steps = z.unsqueeze(1).expand(-1, position.shape[1], -1)  # (B, S, L), no copy
        out, _ = self.decoder(torch.cat([steps, position], dim=-1))  # (B, S, H)
        recon = self.to_signal(out).transpose(1, 2)  # (B, 1, S)
        if self.input_stride > 1:
            recon = F.interpolate(recon, size=self.seq_len, mode="linear")
        return recon.squeeze(1)

    def classify(self, z: torch.Tensor, rr: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, L), rr (B, R) -> logits (B, C)."""
        if self.rr_logits is None:
            return self.head(z)
        return self.head(z) + self.rr_logits(self.rr_input(rr, z.dtype))

    def forward(
        self,
        x: torch.Tensor,
        rr: torch.Tensor | None = None,
        return_latent: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """x (B, T), rr (B, R) -> (recon (B, T), logits (B, C)[, z (B, L)]).

        ``recon`` approximates ``standardize(x)``.
        """
        if x.shape[-1] != self.seq_len:
            raise ValueError(
                f"Expected beats of {self.seq_len} samples, got {x.shape[-1]}."
            )
        z = self.encode(x)
        recon = self.decode(z)
        logits = self.classify(z, rr)
        return (recon, logits, z) if return_latent else (recon, logits)


@register_architecture("ecg_lstm_autoencoder_ensemble")
class LSTMAutoencoderEnsemble(nn.Module):
    """Members of one configuration trained apart (different seeds), used as one model.

        x (B, T), rr (B, R) -> each member -> recon_k (B, T), logits_k (B, C), z_k (B, L)
        recon = mean_k recon_k                           (B, T)
        logits = log(mean_k softmax(logits_k))           (B, C): softmax gives the mean
        z = [z_1, ..., z_K]                              (B, K * L)

    Probabilities are averaged rather than logits, so one overconfident member cannot
    outvote the others. The members' latent spaces are not aligned, so the ensemble's
    latent is their concatenation, not their mean. Leave-records-out cross-validation
    over DS1 preferred two seeds averaged over either seed alone, for every setting
    measured (docs/ecg_autoencoder.md); it also makes a result less of a draw.
    """

    def __init__(self, *, member_config: dict, n_members: int) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"An ensemble needs at least one member, got {n_members}.")
        self.config = {"member_config": dict(member_config), "n_members": n_members}
        self.members = nn.ModuleList(
            LSTMAutoencoderClassifier(**member_config) for _ in range(n_members)
        )

    @classmethod
    def of(cls, members: list[LSTMAutoencoderClassifier]) -> LSTMAutoencoderEnsemble:
        """The ensemble of trained ``members``, which must share one configuration."""
        configs = [m.config for m in members]
        if any(c != configs[0] for c in configs):
            raise ValueError("Ensemble members must share one configuration.")
        ensemble = cls(member_config=configs[0], n_members=len(members))
        for mine, trained in zip(ensemble.members, members, strict=True):
            mine.load_state_dict(trained.state_dict())
        return ensemble

    @property
    def input_scale(self) -> float:
        return self.members[0].input_scale

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Beats (B, T) in input units -> the units of the reconstruction."""
        return self.members[0].standardize(x)

    def forward(
        self,
        x: torch.Tensor,
        rr: torch.Tensor | None = None,
        return_latent: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """x (B, T), rr (B, R) -> (recon (B, T), logits (B, C)[, z (B, K * L)])."""
        outputs = [member(x, rr, return_latent=True) for member in self.members]
        recon = torch.stack([out[0] for out in outputs]).mean(0)
        log_probs = torch.stack([F.log_softmax(out[1], dim=-1) for out in outputs])
        logits = torch.logsumexp(log_probs, dim=0) - math.log(len(outputs))
        if not return_latent:
            return recon, logits
        return recon, logits, torch.cat([out[2] for out in outputs], dim=-1)
