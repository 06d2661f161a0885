"""lstm_scratch: the NumPy LSTM of medlstm.scratch trained beside torch.nn.LSTM."""

from medlstm.pipelines.lstm_scratch.pipeline import create_pipeline

__all__ = ["create_pipeline"]
