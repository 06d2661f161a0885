"""Synthetic slices and image folder trees for the brain_tumor_bilstm tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
PARAMS_FILE = (
    Path(__file__).resolve().parents[3] / "conf/base/parameters_brain_tumor_bilstm.yml"
)


def slice_image(seed: int, size: int = 48, label: int = 0) -> np.ndarray:
    """A head-like ellipse with a bright blob whose position depends on ``label``;
    every seed gives a different, low-correlation texture. uint8 (size, size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    head = ((xx / 0.42) ** 2 + (yy / 0.47) ** 2 < 1).astype(float)
    texture = np.kron(rng.random((size // 4, size // 4)), np.ones((4, 4)))[:size, :size]
    image = head * (0.2 + 0.6 * texture)
    cx, cy = [(-0.2, -0.2), (0.2, -0.2), (0.0, 0.25), (0.0, 0.0)][label % 4]
    image += 0.6 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.005)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_tree(
    root: Path,
    per_class: int = 3,
    folders: dict[str, int] | None = None,
    size: int = 48,
) -> Path:
    """Write ``<root>/<split>/<folder>/<folder>_<k>.png`` images; returns ``root``."""
    folders = folders or {name: i for i, name in enumerate(CLASSES)}
    for s, split in enumerate(("Training", "Testing")):
        for folder, label in folders.items():
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                Image.fromarray(
                    slice_image(1000 * s + 100 * label + k, size, label)
                ).save(root / split / folder / f"{folder}_{k}.png")
    return root


def partitions(root: Path, split: str) -> dict[str, Callable[[], Image.Image]]:
    """What the catalog's PartitionedDataset of pillow.ImageDataset hands the node."""
    return PartitionedDataset(
        path=str(root / split), dataset="pillow.ImageDataset"
    ).load()
