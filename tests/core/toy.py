"""A tiny registered model and data set for testing the shared core."""

from __future__ import annotations

import sys
import time

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from medlstm.core.persistence import register_architecture
from medlstm.core.training import TrainingParams, fit, seed_everything


@register_architecture("test_toy_lstm")
class ToyLSTM(nn.Module):
    """(batch, time, features) -> logits (batch, classes)."""

    def __init__(self, n_features: int = 3, hidden: int = 8, n_classes: int = 2):
        super().__init__()
        self.config = {
            "n_features": n_features,
            "hidden": hidden,
            "n_classes": n_classes,
        }
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def toy_data(n: int = 96, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Class 1 when the sequence trends upwards; learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    slope = (y.float() * 2 - 1)[:, None, None] * torch.linspace(0, 1, 10)[None, :, None]
    x = slope + 0.3 * torch.randn(n, 10, 3, generator=g)
    split = n * 3 // 4
    return TensorDataset(x[:split], y[:split]), TensorDataset(x[split:], y[split:])


class FailingDataset(Dataset):
    """Wraps a dataset and raises after ``after`` item reads: a crash mid-training."""

    def __init__(self, inner: Dataset, after: int):
        self.inner, self.after, self.reads = inner, after, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        self.reads += 1
        if self.reads > self.after:
            raise RuntimeError("simulated crash")
        return self.inner[i]


class SlowDataset(Dataset):
    """Wraps a dataset and sleeps per item, so a test can kill training mid-run."""

    def __init__(self, inner: Dataset, delay: float):
        self.inner, self.delay = inner, delay

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        time.sleep(self.delay)
        return self.inner[i]


def train(
    checkpoint: str | None,
    epochs: int,
    delay: float = 0.0,
    fingerprint_extra=None,
    crash_after_reads: int | None = None,
    **overrides,
):
    """Seeded toy training; the same arguments give the same history."""
    params = TrainingParams.from_dict(
        {
            "epochs": epochs,
            "batch_size": 16,
            "lr": 0.01,
            "seed": 7,
            "show_progress": False,
            "early_stopping_patience": None,
            **overrides,
        }
    )
    seed_everything(params.seed)
    model = ToyLSTM()
    train_set, val_set = toy_data()
    if delay:
        train_set = SlowDataset(train_set, delay)
    if crash_after_reads is not None:
        train_set = FailingDataset(train_set, crash_after_reads)
    return fit(
        model,
        train_set,
        val_set,
        params,
        checkpoint_path=checkpoint,
        fingerprint_extra=fingerprint_extra,
    )


if __name__ == "__main__":  # used by test_training.py to run a training it can kill
    train(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
