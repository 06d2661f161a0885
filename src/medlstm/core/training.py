"""The one training loop every torch model in medlstm goes through.

`fit` gives each pipeline the same behaviour: seeded and deterministic on the CPU,
gradient clipping, early stopping that restores the best weights, the learning rate
reduced on a plateau, class weights or weighted sampling, a progress bar per epoch,
a metric history per epoch, and a checkpoint after every epoch from which an
interrupted run resumes exactly where it stopped.

A batch is a tuple of tensors whose last element is the target. Models with their
own objective (an autoencoder's reconstruction + classification loss, a forecaster's
MSE) pass ``batch_loss(model, batch) -> StepOutput``.

Long on purpose (~950 lines): the one training loop of every pipeline, with its
settings, setup, checkpoints and prediction, kept together so that nothing about
training is decided elsewhere; each function in it is small.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import (
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    WeightedRandomSampler,
)
from tqdm.auto import tqdm

from medlstm.core.evaluation import macro_f1
from medlstm.core.params import check_known_keys
from medlstm.core.precision import CHOICES as PRECISIONS
from medlstm.core.precision import autocast, resolve_precision
from medlstm.core.threads import thread_limits

logger = logging.getLogger(__name__)


class StepOutput(NamedTuple):
    """What one batch contributes: the loss and, for classifiers, logits and targets."""

    loss: torch.Tensor
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None


BatchLoss = Callable[[nn.Module, Sequence[torch.Tensor]], StepOutput]
# Called after every epoch with its number and history record (train/val metrics, lr).
EpochCallback = Callable[[int, dict[str, float]], None]
_epoch_callbacks: ContextVar[tuple[EpochCallback, ...]] = ContextVar(
    "medlstm_epoch_callbacks", default=()
)


@contextlib.contextmanager
def epoch_callback(callback: EpochCallback) -> Iterator[None]:
    """Call ``callback(epoch, record)`` after every epoch of every `fit` in the block.

    For code that calls a training function which calls `fit` without exposing its
    arguments (a hyperparameter study pruning the pipeline's own training nodes). An
    exception the callback raises stops the training and propagates.
    """
    token = _epoch_callbacks.set((*_epoch_callbacks.get(), callback))
    try:
        yield
    finally:
        _epoch_callbacks.reset(token)


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    """Every knob of `fit`; built from a ``training:`` block of a parameters file."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    grad_clip_norm: float | None = 1.0
    early_stopping_patience: int | None = 5
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    monitor_max_samples: int | None = None
    lr_plateau_patience: int | None = 3
    lr_plateau_factor: float = 0.5
    min_lr: float = 1e-6
    label_smoothing: float = 0.0
    class_weighting: str = "none"
    weighted_sampling: bool = False
    seed: int = 42
    device: str = "auto"
    precision: str = "fp32"
    num_threads: int | None = None
    resume: bool = True
    show_progress: bool = True

    _CHOICES = {
        "optimizer": ("adam", "adamw", "sgd"),
        "monitor_mode": ("min", "max"),
        "class_weighting": ("none", "balanced", "sqrt_balanced"),
        "device": ("auto", "cpu", "cuda"),
        "precision": PRECISIONS,
    }

    @classmethod
    def from_dict(
        cls, values: dict[str, Any] | None, where: str = "training"
    ) -> TrainingParams:
        """Validate a parameters block; errors name the offending ``where.key``."""
        if values is None:
            values = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        check_known_keys(values, fields, where)
        for key, value in values.items():
            _check_type(f"{where}.{key}", value, fields[key].type)
        params = cls(**values)
        params._check_ranges(where)
        return params

    def _check_ranges(self, where: str) -> None:
        for key, choices in self._CHOICES.items():
            if getattr(self, key) not in choices:
                raise ValueError(
                    f"Parameter '{where}.{key}' is {getattr(self, key)!r}; expected one of {choices}."
                )
        positive = ("epochs", "batch_size", "lr")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(
                    f"Parameter '{where}.{key}' must be > 0, got {getattr(self, key)}."
                )
        if self.num_threads is not None and self.num_threads <= 0:
            raise ValueError(
                f"Parameter '{where}.num_threads' must be > 0 or null, "
                f"got {self.num_threads}."
            )
        if self.monitor_max_samples is not None and self.monitor_max_samples <= 0:
            raise ValueError(
                f"Parameter '{where}.monitor_max_samples' must be > 0 or null, "
                f"got {self.monitor_max_samples}."
            )
        if not 0.0 < self.lr_plateau_factor < 1.0:
            raise ValueError(
                f"Parameter '{where}.lr_plateau_factor' must be in (0, 1)."
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"Parameter '{where}.label_smoothing' must be in [0, 1).")

    def fingerprint(self) -> dict[str, Any]:
        """The settings that define a run; a checkpoint only resumes a run with the same ones."""
        ignored = {"resume", "show_progress", "device", "num_threads"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ignored}


def _check_type(name: str, value: Any, annotation: str) -> None:
    allowed = {
        "int": (int,),
        "float": (int, float),
        "str": (str,),
        "bool": (bool,),
        "float | None": (int, float, type(None)),
        "int | None": (int, type(None)),
    }[annotation]
    # bool is an int in Python; `epochs: true` is a typo, not a number.
    if isinstance(value, bool) and bool not in allowed:
        allowed = ()
    if not isinstance(value, allowed):
        expected = annotation.replace("float", "number")
        raise ValueError(f"Parameter '{name}' must be {expected}, got {value!r}.")


@dataclasses.dataclass
class TrainingResult:
    """The trained model (best weights restored) and what happened on the way."""

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int = 0
    precision: str = "fp32"
    # Loss weight per class index that `training.class_weighting` gave (None: unweighted).
    class_weights: list[float] | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic CPU kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' takes CUDA when present, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "Parameter 'training.device' is 'cuda' but no CUDA device is available."
        )
    if name not in ("cpu", "cuda"):
        raise ValueError(
            f"Parameter 'training.device' must be auto, cpu or cuda, got {name!r}."
        )
    return torch.device(name)


def class_weights_from_labels(
    labels: np.ndarray, n_classes: int, scheme: str
) -> torch.Tensor | None:
    """Loss weight per class for ``scheme`` (none | balanced | sqrt_balanced).

    ``balanced`` is inverse frequency (n / (present classes * count)), so every class
    present contributes equally to the loss; ``sqrt_balanced`` its square root, a
    milder correction. Classes absent from ``labels`` get weight 0 so they cannot blow
    up the loss. `fit` calls this with the training labels; a custom objective gets the
    result through ``fit(make_batch_loss=...)``.
    """
    if scheme == "none":
        return None
    counts = np.bincount(
        np.asarray(labels, dtype=np.int64), minlength=n_classes
    ).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    if scheme == "sqrt_balanced":
        weights = np.sqrt(weights)
    return torch.tensor(weights, dtype=torch.float32)


def training_labels(dataset: Dataset) -> np.ndarray:
    """The class index of every sample of ``dataset``, without drawing a sample.

    Read from a ``labels`` attribute, a ``TensorDataset``'s last tensor, or through
    a ``Subset`` of either; iterating the samples instead could run augmentation and
    move the seeded random streams.
    """
    if isinstance(dataset, Subset):
        return training_labels(dataset.dataset)[np.asarray(dataset.indices)]
    labels = getattr(dataset, "labels", None)
    if labels is None and isinstance(dataset, TensorDataset):
        labels = dataset.tensors[-1]
    if labels is None:
        raise TypeError(
            f"training.class_weighting and training.weighted_sampling need the "
            f"training labels, but a {type(dataset).__name__} has no `labels` "
            "attribute (one class index per sample) and is not a TensorDataset whose "
            "last tensor is the target."
        )
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    return np.asarray(labels, dtype=np.int64)


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights that make each class equally likely under weighted sampling."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    return 1.0 / counts[labels]


def _to_device(
    batch: Sequence[torch.Tensor], device: torch.device
) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


def classification_loss(
    class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> BatchLoss:
    """Cross-entropy on ``model(*inputs)`` for batches ``(*inputs, target)``."""

    def batch_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> StepOutput:
        *inputs, targets = batch
        logits = model(*inputs)
        weight = None if class_weights is None else class_weights.to(logits.device)
        if weight is not None and len(weight) < logits.shape[1]:
            # Classes above the largest training label are absent from training: 0.
            weight = nn.functional.pad(weight, (0, logits.shape[1] - len(weight)))
        loss = nn.functional.cross_entropy(
            logits, targets, weight=weight, label_smoothing=label_smoothing
        )
        return StepOutput(loss, logits, targets)

    return batch_loss


def _make_optimizer(model: nn.Module, params: TrainingParams) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(), lr=params.lr, weight_decay=params.weight_decay
        )
    if params.optimizer == "adamw":
        return torch.optim.AdamW(
            model.parameters(), lr=params.lr, weight_decay=params.weight_decay
        )
    return torch.optim.SGD(
        model.parameters(), lr=params.lr, momentum=0.9, weight_decay=params.weight_decay
    )


class _EpochStats:
    """Running loss and confusion counts over one pass."""

    def __init__(self) -> None:
        self.loss_sum, self.count = 0.0, 0
        self.predictions: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def add(self, out: StepOutput, batch_size: int) -> None:
        self.loss_sum += float(out.loss.detach()) * batch_size
        self.count += batch_size
        if out.logits is not None and out.targets is not None:
            self.predictions.append(out.logits.detach().argmax(dim=1).cpu().numpy())
            self.targets.append(out.targets.detach().cpu().numpy())

    def summary(self, prefix: str) -> dict[str, float]:
        result = {f"{prefix}_loss": self.loss_sum / max(self.count, 1)}
        if self.predictions:
            pred, true = np.concatenate(self.predictions), np.concatenate(self.targets)
            result[f"{prefix}_accuracy"] = float((pred == true).mean())
            result[f"{prefix}_macro_f1"] = macro_f1(true, pred)
        return result


def _run_epoch(
    model: nn.Module,
    loader: DataLoader,
    batch_loss: BatchLoss,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
    grad_clip_norm: float | None,
    description: str,
    show_progress: bool,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> _EpochStats:
    training = optimizer is not None
    model.train(training)
    stats = _EpochStats()
    bar = tqdm(
        loader, desc=description, leave=False, disable=not show_progress, unit="batch"
    )
    with torch.set_grad_enabled(training):
        for raw_batch in bar:
            batch = _to_device(raw_batch, device)
            with autocast(precision, device.type):
                out = batch_loss(model, batch)
            out = _as_float32(out)
            if not torch.isfinite(out.loss):
                raise FloatingPointError(
                    f"{description}: the loss became {float(out.loss)}; lower training.lr "
                    "or set training.grad_clip_norm."
                )
            if training:
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    _scaled_step(model, optimizer, scaler, out.loss, grad_clip_norm)
                else:
                    out.loss.backward()
                    if grad_clip_norm:
                        nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
                    optimizer.step()
            stats.add(out, len(batch[0]))
            bar.set_postfix(loss=f"{stats.loss_sum / stats.count:.4f}", refresh=False)
    return stats


def _scaled_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: torch.Tensor,
    grad_clip_norm: float | None,
) -> None:
    """One fp16 step: small gradients would underflow in fp16, so the loss is scaled
    up for the backward pass and the gradients unscaled before clipping; a step whose
    gradients overflowed is skipped and the scale lowered."""
    scaler.scale(loss).backward()
    if grad_clip_norm:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
    scaler.step(optimizer)
    scaler.update()


def _as_float32(out: StepOutput) -> StepOutput:
    """Loss and logits in float32 whatever precision the forward pass ran in."""
    logits = out.logits.float() if out.logits is not None else None
    return StepOutput(out.loss.float(), logits, out.targets)


def _fingerprint_hash(
    model: nn.Module, params: TrainingParams, sizes: tuple[int, int], extra: Any
) -> str:
    shapes = [(name, tuple(p.shape)) for name, p in model.state_dict().items()]
    payload = json.dumps(
        [params.fingerprint(), shapes, sizes, extra], sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def monitored_subset(val_set: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """The validation samples scored after every epoch: all, or a seeded random subset.

    Scoring a large validation set every epoch can cost as much as the training
    itself; the monitor (early stopping, learning-rate plateaus, best epoch) only
    needs a large enough random sample. Final validation scores use every sample.
    """
    if max_samples is None or len(val_set) <= max_samples:
        return val_set
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(val_set), generator=generator)[:max_samples]
    return Subset(val_set, sorted(rows.tolist()))


def _class_weights(
    train_set: Dataset, params: TrainingParams, n_classes: int | None
) -> torch.Tensor | None:
    if params.class_weighting == "none":
        return None
    labels = training_labels(train_set)
    count = n_classes if n_classes is not None else int(labels.max()) + 1
    weights = class_weights_from_labels(labels, count, params.class_weighting)
    logger.info(
        "training.class_weighting=%s: class weights %s.",
        params.class_weighting,
        [round(w, 4) for w in weights.tolist()],
    )
    return weights


def _is_better(value: float, best: float, mode: str) -> bool:
    return value < best if mode == "min" else value > best


@dataclasses.dataclass
class _Run:
    """What one `fit` call trains with, built once before its first epoch."""

    device: torch.device
    precision: str
    scaler: torch.amp.GradScaler | None
    batch_loss: BatchLoss
    class_weights: torch.Tensor | None
    shuffle_generator: torch.Generator
    train_loader: DataLoader
    val_loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau


@dataclasses.dataclass
class _Progress:
    """The epochs done and the best of them: what early stopping counts and a
    checkpoint carries."""

    best_value: float
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    last_epoch: int = 0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale_epochs: int = 0

    def add(
        self,
        epoch: int,
        record: dict[str, float],
        model: nn.Module,
        params: TrainingParams,
    ) -> None:
        """Record an epoch; a better monitored value makes it the best epoch and keeps
        a copy of its weights, any other counts one more epoch without progress."""
        self.history.append(record)
        self.last_epoch = epoch
        value = record[params.monitor]
        if _is_better(value, self.best_value, params.monitor_mode):
            self.best_value, self.best_epoch, self.stale_epochs = value, epoch, 0
            self.best_state = {
                k: v.detach().clone() for k, v in model.state_dict().items()
            }
        else:
            self.stale_epochs += 1

    def patience_spent(self, params: TrainingParams) -> bool:
        patience = params.early_stopping_patience
        return patience is not None and self.stale_epochs >= patience


def _objective(
    train_set: Dataset,
    params: TrainingParams,
    batch_loss: BatchLoss | None,
    make_batch_loss: Callable[[torch.Tensor | None], BatchLoss] | None,
    n_classes: int | None,
) -> tuple[BatchLoss, torch.Tensor | None]:
    """The batch loss and the class weights it applies; a given ``batch_loss`` applies
    none of fit's, so it gets none."""
    if batch_loss is not None and make_batch_loss is not None:
        raise ValueError("fit takes batch_loss or make_batch_loss, not both.")
    if batch_loss is not None:
        return batch_loss, None
    class_weights = _class_weights(train_set, params, n_classes)
    if make_batch_loss is not None:
        return make_batch_loss(class_weights), class_weights
    return classification_loss(class_weights, params.label_smoothing), class_weights


def _train_loader(
    train_set: Dataset,
    params: TrainingParams,
    sample_weights: np.ndarray | None,
    generator: torch.Generator,
    pin: bool,
) -> DataLoader:
    """Shuffled batches, or with ``weighted_sampling`` batches drawn with replacement
    in proportion to ``sample_weights`` (default: each class equally likely).

    Both draw from ``generator`` alone, so a checkpoint of its state resumes the
    batch order exactly.
    """
    if not params.weighted_sampling:
        return DataLoader(
            train_set,
            batch_size=params.batch_size,
            shuffle=True,
            generator=generator,
            pin_memory=pin,
        )
    if sample_weights is None:
        sample_weights = balanced_sample_weights(training_labels(train_set))
    if len(sample_weights) != len(train_set):
        raise ValueError(
            "training.weighted_sampling needs one sample weight per training sample."
        )
    sampler = WeightedRandomSampler(
        torch.as_tensor(sample_weights, dtype=torch.double),
        num_samples=len(train_set),
        replacement=True,
        generator=generator,
    )
    return DataLoader(
        train_set, batch_size=params.batch_size, sampler=sampler, pin_memory=pin
    )


def _make_scheduler(
    optimizer: torch.optim.Optimizer, params: TrainingParams
) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    # Without a plateau patience the scheduler still runs (checkpoints hold its state)
    # but with a patience no training reaches.
    patience = params.lr_plateau_patience
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=params.monitor_mode,
        factor=params.lr_plateau_factor,
        patience=patience if patience is not None else 10**9,
        min_lr=params.min_lr,
    )


def _prepare(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    params: TrainingParams,
    *,
    batch_loss: BatchLoss | None,
    make_batch_loss: Callable[[torch.Tensor | None], BatchLoss] | None,
    n_classes: int | None,
    sample_weights: np.ndarray | None,
) -> _Run:
    """Check the inputs, move ``model`` to its device and build what trains it."""
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(
            f"Training needs non-empty train and validation sets, got {len(train_set)} and "
            f"{len(val_set)} samples."
        )
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device.type)
    # The scale starts afresh on resume: it settles within a few steps.
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    model.to(device)
    batch_loss, class_weights = _objective(
        train_set, params, batch_loss, make_batch_loss, n_classes
    )
    shuffle_generator = torch.Generator().manual_seed(params.seed)
    # Page-locked batches let the copies to the GPU overlap the computation.
    pin = device.type == "cuda"
    train_loader = _train_loader(
        train_set, params, sample_weights, shuffle_generator, pin
    )
    val_loader = DataLoader(
        monitored_subset(val_set, params.monitor_max_samples, params.seed),
        batch_size=max(params.batch_size, 256),
        shuffle=False,
        pin_memory=pin,
    )
    optimizer = _make_optimizer(model, params)
    scheduler = _make_scheduler(optimizer, params)
    return _Run(
        device,
        precision,
        scaler,
        batch_loss,
        class_weights,
        shuffle_generator,
        train_loader,
        val_loader,
        optimizer,
        scheduler,
    )


@dataclasses.dataclass(frozen=True)
class _Checkpoint:
    """The file an interrupted `fit` resumes from, tied to one run's settings."""

    path: Path
    fingerprint: str

    @classmethod
    def at(cls, path: str | os.PathLike | None, fingerprint: str) -> _Checkpoint | None:
        return cls(Path(path), fingerprint) if path else None

    def resume(self, model: nn.Module, run: _Run) -> _Progress | None:
        """Restore the model, optimizer, scheduler and random streams as they were
        after the checkpoint's epoch and return its progress; None when the file
        belongs to another configuration or dataset."""
        state = torch.load(self.path, map_location=run.device, weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            logger.warning(
                "Checkpoint %s belongs to another configuration or dataset; starting afresh.",
                self.path,
            )
            return None
        model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        # Batch order and dropout masks go on as if the run had never stopped.
        run.shuffle_generator.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        logger.info("Resuming from %s after epoch %d.", self.path, state["epoch"])
        return _Progress(
            best_value=state["best_value"],
            history=state["history"],
            last_epoch=state["epoch"],
            best_epoch=state["best_epoch"],
            best_state=state["best_model"],
            stale_epochs=state["stale_epochs"],
        )

    def save(self, model: nn.Module, run: _Run, progress: _Progress) -> None:
        """Write everything `resume` needs to go on after ``progress.last_epoch``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(
            {
                "fingerprint": self.fingerprint,
                "epoch": progress.last_epoch,
                "model": model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "shuffle_rng": run.shuffle_generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": progress.history,
                "best_value": progress.best_value,
                "best_epoch": progress.best_epoch,
                "best_model": progress.best_state,
                "stale_epochs": progress.stale_epochs,
            },
            tmp,
        )
        # Atomic: a kill mid-write leaves the previous checkpoint whole.
        os.replace(tmp, self.path)

    def replace_with_best(self, model: nn.Module, best_epoch: int) -> None:
        """Swap the resumable checkpoint for ``<stem>.best.pt``: a finished run has
        nothing to resume, only its best weights (loaded in ``model``) to keep."""
        if not self.path.exists():
            return
        best_path = self.path.with_name(self.path.stem + ".best.pt")
        torch.save({"epoch": best_epoch, "model": model.state_dict()}, best_path)
        self.path.unlink()


def _starting_progress(
    model: nn.Module, run: _Run, params: TrainingParams, checkpoint: _Checkpoint | None
) -> _Progress:
    """No epochs yet, or those of the checkpoint of this very run when one exists."""
    if checkpoint and checkpoint.path.exists() and params.resume:
        resumed = checkpoint.resume(model, run)
        if resumed is not None:
            return resumed
    return _Progress(math.inf if params.monitor_mode == "min" else -math.inf)


def _restore_best(
    model: nn.Module,
    params: TrainingParams,
    progress: _Progress,
    checkpoint: _Checkpoint | None,
) -> None:
    """Load the best epoch's weights into ``model``; keep them beside the checkpoint."""
    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    if checkpoint:
        checkpoint.replace_with_best(model, progress.best_epoch)
    logger.info(
        "Best epoch %d (%s=%.4g).",
        progress.best_epoch,
        params.monitor,
        progress.best_value,
    )


def _train_epoch(
    model: nn.Module, run: _Run, params: TrainingParams, epoch: int
) -> dict[str, float]:
    """One pass over the training batches and one over the monitored validation
    samples; returns the epoch's history record."""
    started = time.perf_counter()
    label = f"epoch {epoch}/{params.epochs}"
    train_stats = _run_epoch(
        model,
        run.train_loader,
        run.batch_loss,
        run.device,
        run.optimizer,
        params.grad_clip_norm,
        f"{label} train",
        params.show_progress,
        run.precision,
        run.scaler,
    )
    val_stats = _run_epoch(
        model,
        run.val_loader,
        run.batch_loss,
        run.device,
        None,
        None,
        f"{label} val",
        params.show_progress,
        run.precision,
    )
    record = {
        "epoch": epoch,
        **train_stats.summary("train"),
        **val_stats.summary("val"),
    }
    record["lr"] = run.optimizer.param_groups[0]["lr"]
    record["epoch_seconds"] = time.perf_counter() - started
    if params.monitor not in record:
        raise ValueError(
            f"Parameter 'training.monitor' is {params.monitor!r}, which this model does not "
            f"report; available: {sorted(record)}."
        )
    return record


def _train_epochs(
    model: nn.Module,
    run: _Run,
    params: TrainingParams,
    progress: _Progress,
    checkpoint: _Checkpoint | None,
    on_epoch_end: EpochCallback | None,
) -> bool:
    """Train the epochs after ``progress.last_epoch`` until ``params.epochs`` or until
    early stopping; returns whether it stopped early."""
    for epoch in range(progress.last_epoch + 1, params.epochs + 1):
        if progress.patience_spent(params):
            break
        record = _train_epoch(model, run, params, epoch)
        run.scheduler.step(record[params.monitor])
        progress.add(epoch, record, model, params)
        logger.info(
            "epoch %d/%d: %s",
            epoch,
            params.epochs,
            ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"),
        )
        if checkpoint:
            checkpoint.save(model, run, progress)
        # After the checkpoint, so a callback that stops the run (a pruned trial)
        # leaves this epoch resumable.
        for callback in (*_epoch_callbacks.get(), on_epoch_end):
            if callback is not None:
                callback(epoch, dict(record))
    # Patience spent on the last epoch is no early stop: the run had ended anyway.
    return progress.patience_spent(params) and len(progress.history) < params.epochs


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    params: TrainingParams,
    *,
    batch_loss: BatchLoss | None = None,
    make_batch_loss: Callable[[torch.Tensor | None], BatchLoss] | None = None,
    n_classes: int | None = None,
    sample_weights: np.ndarray | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    fingerprint_extra: Any = None,
    on_epoch_end: EpochCallback | None = None,
) -> TrainingResult:
    """Train ``model`` on ``train_set``, choosing the best epoch on ``val_set``.

    Args:
        model: any ``nn.Module``; its initial weights should be drawn after
            ``seed_everything(params.seed)`` for runs to repeat.
        train_set, val_set: datasets of tuples ``(*inputs, target)`` of tensors.
        params: see `TrainingParams`.
        batch_loss: the objective; default cross-entropy on ``model(*inputs)``
            weighted per class by ``params.class_weighting``. A ``batch_loss`` given
            here applies no class weights of fit's.
        make_batch_loss: ``class_weights -> batch_loss``, for a custom objective
            that takes the weights ``params.class_weighting`` gives (None for
            ``none``); excludes ``batch_loss``.
        n_classes: how many classes the class weights cover (default: the largest
            training label + 1).
        sample_weights: per-sample weights; with ``params.weighted_sampling`` the
            training loader draws with replacement in proportion to them (default:
            each class equally likely).
        checkpoint_path: written after every epoch; if it exists (and
            ``params.resume``) training continues from it. On success the file is
            replaced by ``<stem>.best.pt`` holding the best weights.
        fingerprint_extra: JSON-able settings the core cannot see (a custom loss's
            weights, augmentation, model options that change no weight shape); a
            checkpoint resumes only a run with equal ones.
        on_epoch_end: ``(epoch, record) -> None`` after every epoch, once its
            checkpoint is written; an exception it raises (a pruned trial) stops the
            training and propagates. Callbacks of `epoch_callback` blocks run too.

    Returns:
        `TrainingResult` with the best weights loaded into ``model``.
    """
    with thread_limits(params.num_threads):
        run = _prepare(
            model,
            train_set,
            val_set,
            params,
            batch_loss=batch_loss,
            make_batch_loss=make_batch_loss,
            n_classes=n_classes,
            sample_weights=sample_weights,
        )
        checkpoint = _Checkpoint.at(
            checkpoint_path,
            _fingerprint_hash(
                model, params, (len(train_set), len(val_set)), fingerprint_extra
            ),
        )
        progress = _starting_progress(model, run, params, checkpoint)
        resumed_from = progress.last_epoch
        stopped_early = _train_epochs(
            model, run, params, progress, checkpoint, on_epoch_end
        )
        _restore_best(model, params, progress, checkpoint)
        return TrainingResult(
            model.cpu(),
            progress.history,
            progress.best_epoch,
            stopped_early,
            resumed_from,
            run.precision,
            None if run.class_weights is None else run.class_weights.tolist(),
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 256,
    device: str = "auto",
    forward: Callable[[nn.Module, list[torch.Tensor]], Any] | None = None,
) -> list[np.ndarray]:
    """Run ``model`` over ``dataset`` in order and return its outputs as NumPy arrays.

    ``forward(model, batch)`` defaults to ``model(batch[0])``. A forward that returns
    a tuple gives one array per element, concatenated over batches.
    """
    target = resolve_device(device)
    model.to(target).eval()
    forward = forward or (lambda m, batch: m(batch[0]))
    chunks: list[tuple[torch.Tensor, ...]] = []
    for raw_batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out = forward(model, _to_device(raw_batch, target))
        chunks.append(out if isinstance(out, tuple) else (out,))
    model.cpu()
    if not chunks:
        return []
    return [
        torch.cat([c[i] for c in chunks]).cpu().numpy() for i in range(len(chunks[0]))
    ]


def class_probabilities(
    model: nn.Module,
    inputs: Dataset | np.ndarray,
    batch_size: int = 256,
    device: str = "auto",
    forward: Callable[[nn.Module, list[torch.Tensor]], torch.Tensor] | None = None,
) -> np.ndarray:
    """Softmax over the classes of the model's logits, (N, n_classes), in input order.

    ``inputs``: an array of inputs (cast to float32), or a dataset whose items start
    with the input (a target after it is ignored). ``forward(model, batch) -> logits``
    defaults to ``model(batch[0])``, as in `predict`.
    """
    forward = forward or (lambda m, batch: m(batch[0]))
    if not isinstance(inputs, Dataset):
        array = np.ascontiguousarray(inputs, dtype=np.float32)
        inputs = TensorDataset(torch.from_numpy(array))
    if len(inputs) == 0:
        raise ValueError("class_probabilities needs at least one input.")
    (probabilities,) = predict(
        model,
        inputs,
        batch_size=batch_size,
        device=device,
        forward=lambda m, batch: torch.softmax(forward(m, batch), dim=1),
    )
    return probabilities
