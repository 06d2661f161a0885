"""A bidirectional LSTM over a recording's beats: each beat labelled in its rhythm.

    beats (B, L, T) / input_scale -> mean over blocks of input_stride samples
        -> per beat: [Conv1d -> BatchNorm -> ReLU -> MaxPool(2)] x len(channels)
        -> global average pool -> morphology (B, L, C_last)
    context (B, L, K) -> (context - context_mean) / context_scale   (training beats)
    [morphology, context] -> Linear -> ReLU (B, L, H) -> BiLSTM x num_layers (B, L, 2H)
        -> MLP per beat -> logits (B, L, classes)
    mask (B, L): True where a beat is, a prefix of each run; padding beats are not
        encoded, not read by the LSTM and give no loss.

A one-beat classifier sees a premature beat and a beat in atrial fibrillation alike:
both come early. Read along the recording, the first stands out of a regular rhythm
and the second sits in an irregular one; the LSTM reads the beats in their real order
in both directions, so every label is made with the rhythm on either side.

The beat encoder is the 1D-CNN baseline's trunk, applied to every beat of the
sequence; the context holds per-beat features that need no labels (the RR features
of the one-beat models).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from medlstm.core.persistence import register_architecture
from medlstm.models.cnn1d import conv_trunk
from medlstm.models.rr_input import RRInput


@register_architecture("ecg_rhythm_bilstm")
class RhythmBiLSTM(nn.Module):
    """Sequence-of-beats labeller; see the module docstring for shapes."""

    def __init__(
        self,
        *,
        seq_len: int = 288,
        n_classes: int = 5,
        n_context: int = 0,
        channels: tuple[int, ...] | list[int] = (16, 32, 32),
        kernel_size: int = 7,
        input_stride: int = 3,
        input_scale: float = 1.0,
        hidden_size: int = 64,
        num_layers: int = 1,
        head_hidden: int = 64,
        dropout: float = 0.2,
        context_mean: list[float] | None = None,
        context_scale: list[float] | None = None,
        inputs: dict | None = None,
    ) -> None:
        super().__init__()
        if min(seq_len, n_classes, hidden_size, num_layers, head_hidden) < 1:
            raise ValueError("RhythmBiLSTM sizes must all be >= 1.")
        if not channels or kernel_size % 2 == 0:
            raise ValueError("RhythmBiLSTM needs channels and an odd kernel_size.")
        if not 1 <= input_stride <= seq_len:
            raise ValueError(
                f"input_stride must be in [1, seq_len ({seq_len})], got {input_stride}."
            )
        if not input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {input_scale}.")
        self.config = {
            "seq_len": seq_len,
            "n_classes": n_classes,
            "n_context": n_context,
            "channels": list(channels),
            "kernel_size": kernel_size,
            "input_stride": input_stride,
            "input_scale": float(input_scale),
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "head_hidden": head_hidden,
            "dropout": dropout,
            "context_mean": None if context_mean is None else list(context_mean),
            "context_scale": None if context_scale is None else list(context_scale),
            # How the pipeline builds the runs and the context (names, run length):
            # kept with the weights so that inference rebuilds them alike.
            "inputs": inputs,
        }
        self.n_classes = n_classes
        self.input_stride = input_stride
        self.input_scale = float(input_scale)
        self.context_input = RRInput(n_context, context_mean, context_scale)
        self.beat_encoder = conv_trunk(channels, kernel_size)
        width = channels[-1]
        self.to_lstm = nn.Sequential(
            nn.Linear(width + n_context, hidden_size), nn.ReLU(), nn.Dropout(dropout)
        )
        self.lstm = nn.LSTM(
            hidden_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(
            nn.Linear(2 * hidden_size, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, n_classes),
        )

    def encode_beats(self, x: torch.Tensor) -> torch.Tensor:
        """Beats (N, T) in input units -> morphology vectors (N, C_last)."""
        x = (x / self.input_scale).unsqueeze(1)  # (N, 1, T)
        if self.input_stride > 1:
            x = F.avg_pool1d(x, self.input_stride)  # (N, 1, T / k)
        return self.beat_encoder(x).mean(dim=-1)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """x (B, L, T), context (B, L, K), mask (B, L) bool -> logits (B, L, classes)."""
        batch, length, _ = x.shape
        valid = mask.reshape(-1)
        encoded = self.encode_beats(x.reshape(batch * length, -1)[valid])
        morphology = encoded.new_zeros(batch * length, encoded.shape[-1])
        morphology[valid] = encoded
        morphology = morphology.reshape(batch, length, -1)
        context = self.context_input(context, morphology.dtype)
        h = self.to_lstm(torch.cat([morphology, context], dim=-1))
        lengths = mask.sum(dim=1)
        if bool((lengths == length).all()):
            out, _ = self.lstm(h)  # (B, L, 2H)
        else:  # runs shorter than L (padding at their end) are read to their end only
            packed = nn.utils.rnn.pack_padded_sequence(
                h, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=length
            )
        return self.head(out)
