"""On-the-fly augmentation and training of the BiLSTM through the shared core."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from medlstm.core.evaluation import history_to_mlflow
from medlstm.core.params import check_known_keys, parsed
from medlstm.core.training import (
    TrainingParams,
    fit,
    seed_everything,
)
from medlstm.models.brain_bilstm import BrainBiLSTM

logger = logging.getLogger(__name__)

AUGMENTATION_KEYS = (
    "enabled",
    "hflip_probability",
    "rotation_degrees",
    "zoom",
    "translate",
    "brightness",
    "contrast",
)


def check_augmentation(params: Mapping[str, Any]) -> dict[str, Any]:
    """The augmentation block with defaults filled in; unknown keys are an error."""
    check_known_keys(params, AUGMENTATION_KEYS, "brain_tumor_bilstm.augmentation")
    settings = (
        {key: 0.0 for key in AUGMENTATION_KEYS} | {"enabled": False} | dict(params)
    )
    for key in AUGMENTATION_KEYS[1:]:
        if (
            not 0.0
            <= float(settings[key])
            <= (180.0 if key == "rotation_degrees" else 1.0)
        ):
            raise ValueError(
                f"brain_tumor_bilstm.augmentation.{key} is out of range: {settings[key]}."
            )
    return settings


def augment_batch(images: torch.Tensor, settings: Mapping[str, Any]) -> torch.Tensor:
    """Random mirror, rotation, zoom and shift in one affine resampling per image,
    then brightness and contrast jitter. Draws from torch's global RNG, which the
    training core seeds and checkpoints.

    Args:
        images: (B, H, W) in [0, 1].
        settings: from `check_augmentation`.

    Returns:
        (B, H, W) in [0, 1]; the border outside the source is black, like the
        background of a slice.
    """
    b = len(images)

    def uniform(scale: float, *shape: int) -> torch.Tensor:
        return (torch.rand(b, *shape) * 2.0 - 1.0) * scale

    angle = uniform(math.radians(float(settings["rotation_degrees"])))
    scale = 1.0 + uniform(float(settings["zoom"]))
    flip = torch.where(torch.rand(b) < float(settings["hflip_probability"]), -1.0, 1.0)
    shift = uniform(2.0 * float(settings["translate"]), 2)  # grid coordinates span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output to input coordinates; the mirror negates input x.
    theta = torch.stack(
        [
            torch.stack([cos, -sin, shift[:, 0]], dim=1) * flip[:, None],
            torch.stack([sin, cos, shift[:, 1]], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, [b, 1, *images.shape[1:]], align_corners=False)
    out = F.grid_sample(
        images[:, None], grid, padding_mode="zeros", align_corners=False
    )
    out = out[:, 0] * (1.0 + uniform(float(settings["contrast"]), 1, 1))
    out = out + uniform(float(settings["brightness"]), 1, 1)
    return out.clamp_(0.0, 1.0)


class SliceDataset(Dataset):
    """``(image (H, W), label)`` pairs; with augmentation, batches are transformed as
    they are drawn (``__getitems__`` lets the DataLoader fetch a batch in one call)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        augmentation: Mapping[str, Any] | None = None,
    ) -> None:
        self.images = torch.from_numpy(np.array(images, dtype=np.float32))
        self.labels = torch.from_numpy(np.array(labels, dtype=np.int64))
        self.augmentation = (
            augmentation if augmentation and augmentation["enabled"] else None
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(
        self, indices: Sequence[int]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One batch: a list of ``(image, label)`` for the default collate."""
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[index]
        if self.augmentation is not None:
            images = augment_batch(images, self.augmentation)
        return list(zip(images, self.labels[index], strict=True))


def subset_arrays(
    images: Mapping[str, np.ndarray], assigned: pd.DataFrame, subset: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, S, S)`` and labels ``(n,)`` of one subset, in index order."""
    mask = (assigned["subset"] == subset).to_numpy()
    return images["images"][mask], assigned["label"].to_numpy()[mask]


def _training_summary(
    result: Any,
    params: TrainingParams,
    classes: list[str],
    sizes: tuple[int, int],
    checkpoint: Path | None,
) -> dict[str, Any]:
    """Best epoch, wall time to it, sizes, threads, precision and class weights."""
    seconds = [r["epoch_seconds"] for r in result.history]
    return {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from_epoch,
        "best_val_loss": min(r["val_loss"] for r in result.history),
        "best_val_accuracy": result.history[result.best_epoch - 1]["val_accuracy"],
        "seconds_to_best_epoch": float(sum(seconds[: result.best_epoch])),
        "seconds_total": float(sum(seconds)),
        "n_parameters": sum(p.numel() for p in result.model.parameters()),
        "n_train": sizes[0],
        "n_val": sizes[1],
        "torch_threads": params.num_threads or torch.get_num_threads(),
        "precision": result.precision,
        "class_weights": (
            None
            if result.class_weights is None
            else dict(zip(classes, result.class_weights, strict=True))
        ),
        "best_checkpoint": (
            str(checkpoint.with_name(f"{checkpoint.stem}.best.pt"))
            if checkpoint
            else None
        ),
    }


def train_classifier(
    images: Mapping[str, np.ndarray],
    assigned: pd.DataFrame,
    data_params: Mapping[str, Any],
    model_params: Mapping[str, Any],
    training_params: Mapping[str, Any],
    augmentation_params: Mapping[str, Any],
    runtime_params: Mapping[str, Any],
) -> tuple[BrainBiLSTM, dict[str, list[dict]], list[dict[str, float]], dict[str, Any]]:
    """Fit the BiLSTM on the train subset, early-stopping on the validation subset.

    ``runtime_params``: ``checkpoint_path`` (resumable per-epoch checkpoint). The
    precision (fp32, bf16 autocast, or auto) is ``training.precision``.

    Returns:
        The model with the best validation epoch's weights, its history for MLflow
        and as records, and a summary (best epoch, wall time to reach it, sizes).
    """
    params = parsed(TrainingParams, training_params, "brain_tumor_bilstm.training")
    augmentation = check_augmentation(augmentation_params)
    train_x, train_y = subset_arrays(images, assigned, "train")
    val_x, val_y = subset_arrays(images, assigned, "val")
    seed_everything(params.seed)
    model = BrainBiLSTM(
        image_size=train_x.shape[-1],
        n_classes=len(data_params["classes"]),
        **model_params,
    )
    path = runtime_params.get("checkpoint_path")
    checkpoint = Path(path) if path else None
    result = fit(
        model,
        SliceDataset(train_x, train_y, augmentation),
        SliceDataset(val_x, val_y),
        params,
        n_classes=len(data_params["classes"]),
        # An interrupted run resumes from here (same configuration and data only).
        checkpoint_path=checkpoint,
        fingerprint_extra={"model": dict(model_params), "augmentation": augmentation},
    )
    summary = _training_summary(
        result, params, data_params["classes"], (len(train_y), len(val_y)), checkpoint
    )
    logger.info("Training summary: %s", summary)
    return result.model, history_to_mlflow(result.history), result.history, summary
