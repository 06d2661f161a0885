"""A from-scratch LSTM in NumPy: reference implementation for teaching and tests.

Public tensors are batch-first, ``(batch, time, features)``. float64 by default,
float32 on request. No torch import anywhere in this package.

Example:
    >>> import numpy as np
    >>> from medlstm.scratch import LSTMModel, mse_loss
    >>> model = LSTMModel(input_size=1, hidden_size=8, output_size=1, seed=0)
    >>> x = np.zeros((4, 10, 1))
    >>> y, (h_n, c_n), cache = model.forward(x)
    >>> loss, d_y = mse_loss(y, np.ones_like(y))
    >>> grads = model.backward(cache, d_y)
    >>> sorted(grads)[:3]
    ['c0', 'h0', 'head.b']
"""

from .losses import log_softmax, mse_loss, softmax_cross_entropy
from .lstm import Cache, LayerCache, LSTMModel, lstm_layer_backward, lstm_layer_forward
from .optim import Adam, clip_grad_norm, global_norm
from .train import TrainConfig, TrainResult, evaluate, predict, train

__all__ = [
    "Adam",
    "Cache",
    "LSTMModel",
    "LayerCache",
    "TrainConfig",
    "TrainResult",
    "clip_grad_norm",
    "evaluate",
    "global_norm",
    "log_softmax",
    "lstm_layer_backward",
    "lstm_layer_forward",
    "mse_loss",
    "predict",
    "softmax_cross_entropy",
    "train",
]
