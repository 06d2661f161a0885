"""The textbook univariate LSTM forecaster: one LSTM layer and a Dense head.

With ``horizon=H`` the head emits all H steps at once (the *direct* strategy); with
``horizon=1`` `forecast` feeds each prediction back as the newest input (the
*recursive* strategy). Inputs and outputs are in the scaled units the model was
trained on; scaling lives in the pipeline, fitted on training data only.
"""

from __future__ import annotations

import torch
from torch import nn

from medlstm.core.persistence import register_architecture


@register_architecture("lstm_forecaster")
class LSTMForecaster(nn.Module):
    """LSTM(1 -> hidden_size) x num_layers, last hidden state -> Linear(hidden_size -> horizon)."""

    def __init__(
        self,
        hidden_size: int = 50,
        num_layers: int = 1,
        horizon: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if min(hidden_size, num_layers, horizon) < 1:
            raise ValueError(
                "LSTMForecaster needs hidden_size, num_layers and horizon >= 1, got "
                f"{hidden_size}, {num_layers}, {horizon}."
            )
        self.config = {
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "horizon": horizon,
            "dropout": dropout,
        }
        self.horizon = horizon
        # torch warns about (and ignores) dropout between layers of a single-layer LSTM.
        self.lstm = nn.LSTM(
            1,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, lookback) -> next ``horizon`` values (B, horizon)."""
        out, _ = self.lstm(x.unsqueeze(-1))  # (B, lookback, hidden_size)
        return self.head(out[:, -1])

    @torch.no_grad()
    def forecast(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """x (B, lookback) -> (B, steps), rolling the window forward when steps > horizon."""
        window, chunks, produced = x, [], 0
        while produced < steps:
            step = self(window)  # (B, horizon)
            chunks.append(step)
            produced += self.horizon
            window = torch.cat([window, step], dim=1)[:, -x.shape[1] :]
        return torch.cat(chunks, dim=1)[:, :steps]
