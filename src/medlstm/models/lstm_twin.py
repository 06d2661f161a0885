"""The torch twin of ``medlstm.scratch.LSTMModel``: ``nn.LSTM`` + ``nn.Linear`` on the last step."""

from __future__ import annotations

import torch
from torch import nn

from medlstm.core.persistence import register_architecture
from medlstm.scratch import LSTMModel


@register_architecture("lstm_scratch_twin")
class TorchTwinLSTM(nn.Module):
    """Stacked ``nn.LSTM`` (batch-first) whose last hidden state feeds a ``nn.Linear``.

    Same network as the NumPy ``LSTMModel`` scored on its last timestep.
    """

    def __init__(  # noqa: PLR0913 - the architecture, nothing else
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 1,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        # dtype is part of the config so that a float64 model loads back as float64.
        self.config = {
            "input_size": input_size,
            "hidden_size": hidden_size,
            "output_size": output_size,
            "num_layers": num_layers,
            "dtype": dtype,
        }
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)
        self.to(getattr(torch, dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) -> outputs at the last timestep (B, O)."""
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

    @classmethod
    def from_numpy_model(cls, model: LSTMModel) -> TorchTwinLSTM:
        """A twin holding ``model``'s weights (and dtype): both start from the same point.

        torch keeps transposed weights and two biases per layer; ours is their sum,
        so it goes to ``bias_ih`` and ``bias_hh`` starts at zero.
        """
        twin = cls(
            model.input_size,
            model.hidden_size,
            model.output_size,
            model.num_layers,
            model.dtype.name,
        )
        p = {k: torch.from_numpy(v.copy()) for k, v in model.params.items()}
        with torch.no_grad():
            for k in range(model.num_layers):
                getattr(twin.lstm, f"weight_ih_l{k}").copy_(p[f"lstm{k}.w_x"].T)
                getattr(twin.lstm, f"weight_hh_l{k}").copy_(p[f"lstm{k}.w_h"].T)
                getattr(twin.lstm, f"bias_ih_l{k}").copy_(p[f"lstm{k}.b"])
                getattr(twin.lstm, f"bias_hh_l{k}").zero_()
            twin.head.weight.copy_(p["head.w"].T)
            twin.head.bias.copy_(p["head.b"])
        return twin
