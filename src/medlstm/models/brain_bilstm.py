"""Stacked bidirectional LSTM that reads an MRI slice row by row.

The published design: a 64x64 grayscale slice is a sequence of 64 timesteps (image
rows) of 64 features (pixels in the row).

    (B, 64, 64) -> BiLSTM(128, all steps)          (B, 64, 256)
                -> Dense(64) + ReLU per timestep   (B, 64, 64)
                -> LayerNorm -> Dropout(0.3)
                -> BiLSTM(64, last output)         (B, 128)
                -> Dropout(0.5) -> Dense(32) + ReLU -> Dropout(0.3)
                -> Dense(n_classes)                (B, n_classes) logits

Parameter count (64x64 input, 4 classes): 286,052. A Keras model with the same layers
has 284,516: a Keras LSTM has one bias vector per gate, a torch LSTM two (``b_ih`` and
``b_hh``), 1,536 more in all (2 directions x 4 gates x (128 + 64) units). Neither is
the ~911K the original reported; that figure cannot come from the layer list it
publishes (see docs/brain_tumor_bilstm.md).

Weights are initialised like Keras (Glorot-uniform input and dense kernels,
orthogonal recurrent kernels, zero biases, forget-gate bias 1) so that the
reproduction starts from the original's initial distribution, not torch's.
"""

from __future__ import annotations

import torch
from torch import nn

from medlstm.core.persistence import register_architecture


@register_architecture("brain_bilstm")
class BrainBiLSTM(nn.Module):
    """Row-sequence BiLSTM classifier for square grayscale slices.

    Args:
        image_size: side of the square input; rows are timesteps, columns features.
        n_classes: number of output logits.
        lstm1_units, dense_units, lstm2_units, head_units: layer widths.
        dropout_seq, dropout_lstm, dropout_head: the three dropout rates, in order.
    """

    def __init__(
        self,
        image_size: int = 64,
        n_classes: int = 4,
        lstm1_units: int = 128,
        dense_units: int = 64,
        lstm2_units: int = 64,
        head_units: int = 32,
        dropout_seq: float = 0.3,
        dropout_lstm: float = 0.5,
        dropout_head: float = 0.3,
    ) -> None:
        super().__init__()
        self.config = {
            "image_size": image_size,
            "n_classes": n_classes,
            "lstm1_units": lstm1_units,
            "dense_units": dense_units,
            "lstm2_units": lstm2_units,
            "head_units": head_units,
            "dropout_seq": dropout_seq,
            "dropout_lstm": dropout_lstm,
            "dropout_head": dropout_head,
        }
        self.image_size = image_size
        self.lstm1 = nn.LSTM(
            image_size, lstm1_units, batch_first=True, bidirectional=True
        )
        self.dense = nn.Linear(2 * lstm1_units, dense_units)
        self.norm = nn.LayerNorm(dense_units)
        self.drop_seq = nn.Dropout(dropout_seq)
        self.lstm2 = nn.LSTM(
            dense_units, lstm2_units, batch_first=True, bidirectional=True
        )
        self.drop_lstm = nn.Dropout(dropout_lstm)
        self.head = nn.Linear(2 * lstm2_units, head_units)
        self.drop_head = nn.Dropout(dropout_head)
        self.out = nn.Linear(head_units, n_classes)
        self._init_like_keras()

    def _init_like_keras(self) -> None:
        for lstm in (self.lstm1, self.lstm2):
            hidden = lstm.hidden_size
            for name, weight in lstm.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(weight)
                elif name.startswith("weight_hh"):
                    # Keras draws one orthogonal (hidden, 4*hidden) matrix; per gate is
                    # the torch-layout equivalent and keeps each gate well conditioned.
                    for gate in weight.data.split(hidden):
                        nn.init.orthogonal_(gate)
                else:
                    nn.init.zeros_(weight)
                    if name.startswith("bias_ih"):
                        # unit_forget_bias: torch gate order is input, forget, cell, output.
                        weight.data[hidden : 2 * hidden] = 1.0
        for linear in (self.dense, self.head, self.out):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            images: (B, H, W) or (B, 1, H, W) with H = W = ``image_size``, in [0, 1].

        Returns:
            (B, n_classes) logits.
        """
        if images.dim() == 4:  # (B, 1, H, W)
            images = images.squeeze(1)
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"BrainBiLSTM expects {self.image_size}x{self.image_size} images, "
                f"got shape {tuple(images.shape)}."
            )
        seq, _ = self.lstm1(images)  # (B, H, 2*lstm1)
        seq = self.drop_seq(self.norm(torch.relu(self.dense(seq))))  # (B, H, dense)
        _, (h_n, _) = self.lstm2(seq)  # h_n: (2, B, lstm2)
        # Keras' Bidirectional(return_sequences=False) output: the forward direction's
        # last step and the backward direction's last step (which is at t = 0).
        last = torch.cat([h_n[0], h_n[1]], dim=1)  # (B, 2*lstm2)
        hidden = self.drop_head(torch.relu(self.head(self.drop_lstm(last))))
        return self.out(hidden)
