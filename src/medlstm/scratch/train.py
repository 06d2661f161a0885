"""Mini-batch training of :class:`LSTMModel` on many-to-one tasks.

The model reads a whole sequence and is scored on its output at the last
timestep: regression (mean squared error against ``(N, O)`` targets) or
classification (softmax cross-entropy against ``(N,)`` integer labels).

The loop follows ``medlstm.core.training.fit`` so that the two can be compared
like for like: Adam, clipping by global norm, the learning rate halved on a
validation plateau, early stopping that restores the best weights, and the same
history keys (``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``,
``val_accuracy``, ``lr``, ``epoch_seconds``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .losses import mse_loss, softmax_cross_entropy
from .lstm import LSTMModel
from .optim import Adam, clip_grad_norm, global_norm

TASKS = ("regression", "classification")
_PLATEAU_THRESHOLD = 1e-4  # relative, as torch's ReduceLROnPlateau


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Knobs of :func:`train` (names as in ``medlstm.core.training.TrainingParams``)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip_norm: float | None = 1.0
    early_stopping_patience: int | None = 5
    lr_plateau_patience: int | None = 3
    lr_plateau_factor: float = 0.5
    min_lr: float = 1e-6
    seed: int = 42

    def __post_init__(self):
        for name in ("epochs", "batch_size", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.lr_plateau_factor < 1:
            raise ValueError(
                f"lr_plateau_factor must be in (0, 1), got {self.lr_plateau_factor}"
            )


@dataclasses.dataclass
class TrainResult:
    """The model (best weights restored), its per-epoch history and best epoch."""

    model: LSTMModel
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool


def _loss(task: str, out: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    if task == "regression":
        return mse_loss(out, target)
    return softmax_cross_entropy(out, target)


def _check_data(model: LSTMModel, task: str, x: np.ndarray, y: np.ndarray, name: str):
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} sequences but {len(y)} targets")
    want = (len(x), model.output_size) if task == "regression" else (len(x),)
    if np.shape(y) != want:
        raise ValueError(
            f"{name}: expected {task} targets of shape {want}, got {np.shape(y)}"
        )
    if len(x) == 0:
        raise ValueError(f"{name}: empty set, expected shape (batch, time, features)")
    if task == "regression" and not np.isfinite(y).all():
        raise ValueError(
            f"{name}: targets of shape {np.shape(y)} contain NaN or infinity"
        )


def predict(model: LSTMModel, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Last-timestep outputs ``(N, O)`` for sequences ``x`` ``(N, T, F)``, in batches."""
    return np.concatenate(
        [model(x[k : k + batch_size])[:, -1] for k in range(0, len(x), batch_size)]
    )


def evaluate(
    model: LSTMModel, task: str, x: np.ndarray, y: np.ndarray, batch_size: int = 1024
) -> dict[str, float]:
    """Loss (and accuracy for classification) of ``model`` on a whole set."""
    out = predict(model, x, batch_size)
    result = {"loss": _loss(task, out, y)[0]}
    if task == "classification":
        result["accuracy"] = float((out.argmax(axis=1) == y).mean())
    return result


class _Plateau:
    """Lower the learning rate when the validation loss stalls.

    The rule of torch's ``ReduceLROnPlateau`` (mode min, relative threshold 1e-4):
    after more than ``patience`` epochs without improvement, multiply the rate
    by ``factor``, never going below ``min_lr``.
    """

    def __init__(self, optimizer: Adam, config: TrainConfig):
        self.optimizer, self.config = optimizer, config
        self.best, self.bad_epochs = np.inf, 0

    def step(self, val_loss: float) -> None:
        if self.config.lr_plateau_patience is None:
            return
        if val_loss < self.best * (1 - _PLATEAU_THRESHOLD):
            self.best, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.config.lr_plateau_patience:
            lowered = max(
                self.optimizer.lr * self.config.lr_plateau_factor, self.config.min_lr
            )
            self.optimizer.lr = min(
                lowered, self.optimizer.lr
            )  # never raised to min_lr
            self.bad_epochs = 0


def _train_epoch(  # noqa: PLR0913
    model: LSTMModel,
    optimizer: Adam,
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    batches: list[np.ndarray],
    clip_norm: float | None,
) -> dict[str, float]:
    """One pass over ``batches`` (index arrays); returns the training statistics."""
    loss_sum, correct, norm_sum = 0.0, 0, 0.0
    for batch in batches:
        y_seq, _, cache = model.forward(x[batch])
        out = y_seq[:, -1]  # many-to-one: only the last timestep is scored
        loss, d_out = _loss(task, out, y[batch])
        dy = np.zeros_like(y_seq)
        dy[:, -1] = d_out
        grads = model.backward(cache, dy)
        norm_sum += (
            clip_grad_norm(grads, clip_norm) if clip_norm else global_norm(grads)
        )
        optimizer.step(grads)
        loss_sum += loss * len(batch)
        if task == "classification":
            correct += int((out.argmax(axis=1) == y[batch]).sum())
    stats = {"train_loss": loss_sum / len(x)}
    if task == "classification":
        stats["train_accuracy"] = correct / len(x)
    stats["grad_norm"] = norm_sum / len(batches)  # mean norm before clipping
    return stats


def train(  # noqa: PLR0913 - the data and the config, nothing more
    model: LSTMModel,
    task: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig = TrainConfig(),
) -> TrainResult:
    """Train ``model`` in place, keeping the weights of the best validation epoch.

    Args:
        model: The network; its output at the last timestep is the prediction.
        task: ``"regression"`` or ``"classification"``.
        x_train: Training sequences, ``(N, T, F)``.
        y_train: Targets, ``(N, O)`` floats or ``(N,)`` integer labels.
        x_val: Validation sequences, ``(M, T, F)``, used to pick the best epoch.
        y_val: Validation targets.
        config: Optimiser and schedule settings; ``config.seed`` drives the shuffling.

    Returns:
        A :class:`TrainResult`.
    """
    _check_data(model, task, x_train, y_train, "training set")
    _check_data(model, task, x_val, y_val, "validation set")
    rng = np.random.default_rng(config.seed)
    optimizer = Adam(model.params, lr=config.lr, weight_decay=config.weight_decay)
    plateau = _Plateau(optimizer, config)
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_params, stale = np.inf, 0, None, 0
    n_batches = int(np.ceil(len(x_train) / config.batch_size))
    for epoch in range(1, config.epochs + 1):
        patience = config.early_stopping_patience
        if patience is not None and stale >= patience:
            break
        started = time.perf_counter()
        batches = np.array_split(rng.permutation(len(x_train)), n_batches)
        record = {"epoch": epoch}
        record |= _train_epoch(
            model, optimizer, task, x_train, y_train, batches, config.grad_clip_norm
        )
        record |= {
            f"val_{k}": v for k, v in evaluate(model, task, x_val, y_val).items()
        }
        record["lr"] = optimizer.lr
        record["epoch_seconds"] = time.perf_counter() - started
        history.append(record)

        if not np.isfinite(record["val_loss"]):
            raise FloatingPointError(
                f"epoch {epoch}: validation loss is {record['val_loss']}; "
                "lower lr or set grad_clip_norm"
            )
        if record["val_loss"] < best_loss:
            best_loss, best_epoch, stale = record["val_loss"], epoch, 0
            best_params = {k: v.copy() for k, v in model.params.items()}
        else:
            stale += 1
        plateau.step(record["val_loss"])

    for name, value in best_params.items():
        model.params[name][...] = value  # in place: the optimiser holds these arrays
    stopped_early = len(history) < config.epochs
    return TrainResult(model, history, best_epoch, stopped_early)
