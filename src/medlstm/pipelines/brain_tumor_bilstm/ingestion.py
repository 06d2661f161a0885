"""Read the MRI folder tree into one array of small grayscale slices.

The catalog hands each split over as a kedro-datasets ``PartitionedDataset`` of
``pillow.ImageDataset`` partitions: ``{"<class folder>/<file>": load()}``. Every file
either becomes one row of the output or one counted, listed skip in the data-quality
report; a whole class missing from a split is an error.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import DatasetError
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

SPLITS = ("Training", "Testing")
RESAMPLING = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}
# Modes whose bit depth says nothing about the range a scanner used (12-bit data in a
# 16-bit container is common), so they are stretched to their own min..max.
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# What Pillow raises for files that are not images, truncated, or otherwise broken;
# Kedro wraps it in a DatasetError when the file comes through the catalog.
READ_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
    DatasetError,
)


class ImageSkip(Exception):
    """A file that cannot become a training image; the message says why."""


def validate_class_mapping(
    data_params: Mapping[str, Any],
) -> tuple[list[str], dict[str, str | None]]:
    """Class names (model output order) and the folder -> class mapping, checked.

    A folder mapped to ``null`` is excluded on purpose (its files are reported as
    skipped); every other target must be one of ``classes``.
    """
    classes = list(data_params["classes"])
    mapping = dict(data_params["folder_to_class"])
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(
            f"brain_tumor_bilstm.data.classes must be 2+ unique names, got {classes}."
        )
    bad = {
        folder: target
        for folder, target in mapping.items()
        if target is not None and target not in classes
    }
    if bad:
        raise ValueError(
            f"brain_tumor_bilstm.data.folder_to_class maps folders to unknown classes {bad}; "
            f"classes are {classes}."
        )
    return classes, mapping


def grayscale(image: Image.Image) -> tuple[Image.Image, float]:
    """Any Pillow mode as one channel, and the divisor that maps it onto [0, 1].

    8-bit modes (L, RGB, P, CMYK, ...) become "L" and are divided by 255; transparent
    pixels are composited over black, the background of an MRI slice. High-bit-depth
    modes (16-bit, 32-bit int, float) become "F" stretched to their own range.
    """
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.float32)), 1.0  # mode "F"
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(
            Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba
        )
    return image.convert("L"), 255.0


def preprocess_image(
    image: Image.Image,
    size: int,
    resample: str = "lanczos",
    min_side: int = 1,
    reducing_gap: float | None = None,
) -> tuple[np.ndarray, str]:
    """One slice as a ``(size, size)`` float32 array in [0, 1] and its content hash.

    The hash is taken of the full-resolution grayscale pixels, so the same picture
    stored as L and as RGB, or under two file names, hashes the same.

    Raises:
        ImageSkip: the image is smaller than ``min_side`` on a side.
    """
    if min(image.size) < min_side:
        raise ImageSkip(
            f"too small: {image.size[0]}x{image.size[1]} pixels (minimum side {min_side})"
        )
    gray, scale = grayscale(image)
    digest = hashlib.sha256(
        f"{gray.mode}{gray.size}".encode() + gray.tobytes()
    ).hexdigest()
    # Pillow's resampling filters widen their support when shrinking: anti-aliased.
    # ``reducing_gap`` first box-averages by an integer factor (still anti-aliased).
    small = gray.resize((size, size), RESAMPLING[resample], reducing_gap=reducing_gap)
    small = np.asarray(small, dtype=np.float32)
    return np.clip(small / scale, 0.0, 1.0), digest


def _skip_reason_for_path(
    partition_id: str, mapping: Mapping[str, str | None]
) -> str | None:
    parts = PurePosixPath(partition_id).parts
    if any(part.startswith(".") for part in parts):
        return "hidden file or folder"
    if len(parts) < 2:  # <class folder>/<file>
        return "not inside a class folder"
    if parts[0] in mapping and mapping[parts[0]] is None:
        return "class folder excluded by brain_tumor_bilstm.data.folder_to_class (null)"
    return None


def read_error_reason(err: Exception) -> str:
    """A short, stable reason for a file Pillow could not read."""
    cause = err.__cause__ if isinstance(err, DatasetError) and err.__cause__ else err
    if isinstance(cause, UnidentifiedImageError):
        # Pillow's own message names a file object's memory address: not stable.
        return "unreadable: not an image format Pillow can identify (or empty)"
    return f"unreadable: {type(cause).__name__}: {cause}"


def _read_partition(
    file: str, load: Callable[[], Image.Image], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Load and preprocess one file; a problem comes back as ``{"reason": ...}``."""
    try:
        image = load()
        array, digest = preprocess_image(
            image,
            settings["image_size"],
            settings["resample"],
            settings["min_side"],
            settings["reducing_gap"],
        )
    except ImageSkip as err:
        return {"file": file, "reason": str(err)}
    except READ_ERRORS as err:
        return {"file": file, "reason": read_error_reason(err)}
    return {
        "file": file,
        "array": array,
        "sha256": digest,
        "source_mode": image.mode,
        "source_width": image.size[0],
        "source_height": image.size[1],
    }


def _load_split(
    split: str,
    partitions: Mapping[str, Callable[[], Image.Image]],
    mapping: Mapping[str, str | None],
    settings: Mapping[str, Any],
) -> tuple[list[np.ndarray], list[dict[str, Any]], list[dict[str, str]]]:
    unknown = sorted(
        {
            PurePosixPath(pid).parts[0]
            for pid in partitions
            if _skip_reason_for_path(pid, mapping) is None
            and PurePosixPath(pid).parts[0] not in mapping
        }
    )
    if unknown:
        raise ValueError(
            f"{split}: class folder(s) {unknown} are not in "
            f"brain_tumor_bilstm.data.folder_to_class (known: {sorted(mapping)}). "
            "Map each to a class, or to null to exclude it."
        )
    skipped, jobs = [], []
    for pid in sorted(partitions):
        reason = _skip_reason_for_path(pid, mapping)
        if reason is None:
            jobs.append((f"{split}/{pid}", partitions[pid]))
        else:
            skipped.append({"file": f"{split}/{pid}", "reason": reason})
    arrays, rows = [], []
    # Serial on purpose: a process pool measured slower on 2 shared cores (worker
    # start-up imports torch), and ~7,000 slices load well inside the 30 s budget.
    for result in (_read_partition(file, load, settings) for file, load in jobs):
        if "reason" in result:
            skipped.append(result)
            continue
        folder = PurePosixPath(result["file"]).parts[1]
        arrays.append(result.pop("array"))
        rows.append(
            {
                "image_id": result.pop("file"),
                "split": split,
                "folder": folder,
                "class_name": mapping[folder],
                **result,
            }
        )
    for skip in skipped:
        logger.warning("Skipping %s: %s", skip["file"], skip["reason"])
    return arrays, rows, sorted(skipped, key=lambda s: s["file"])


def ingest_images(
    training: Mapping[str, Callable[[], Image.Image]],
    testing: Mapping[str, Callable[[], Image.Image]],
    data_params: Mapping[str, Any],
    ingestion_params: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict[str, Any]]:
    """Load both published splits as ``(N, size, size)`` float32 slices in [0, 1].

    Args:
        training, testing: partition id ``<class folder>/<file>`` -> lazy image load.
        data_params: ``classes`` and ``folder_to_class``.
        ingestion_params: ``image_size``, ``resample``, ``min_side``,
            ``max_skipped_fraction``.

    Returns:
        ``{"images": (N, S, S)}``; an index with one row per image in the same order
        (``image_id``, ``split``, ``folder``, ``class_name``, ``label``, ``sha256``,
        source mode and size); the data-quality report.

    Raises:
        ValueError: an unmapped class folder, a class with no usable image in a
            split, or more skipped files than ``max_skipped_fraction`` allows.
    """
    classes, mapping = validate_class_mapping(data_params)
    settings = {
        "image_size": int(ingestion_params["image_size"]),
        "resample": ingestion_params.get("resample", "lanczos"),
        "min_side": int(ingestion_params.get("min_side", 1)),
        "reducing_gap": ingestion_params.get("reducing_gap"),
    }
    if settings["resample"] not in RESAMPLING:
        raise ValueError(
            f"brain_tumor_bilstm.ingestion.resample must be one of {sorted(RESAMPLING)}, "
            f"got {settings['resample']!r}."
        )
    arrays, rows, skipped, files = [], [], [], {}
    for split, partitions in zip(SPLITS, (training, testing), strict=True):
        split_arrays, split_rows, split_skipped = _load_split(
            split, partitions, mapping, settings
        )
        arrays += split_arrays
        rows += split_rows
        skipped += split_skipped
        files[split] = len(partitions)

    index = pd.DataFrame(rows)
    _check_class_coverage(index, skipped, classes, mapping)
    total = sum(files.values())
    limit = float(ingestion_params.get("max_skipped_fraction", 0.05))
    if len(skipped) > limit * total:
        raise ValueError(
            f"{len(skipped)} of {total} files were skipped, more than "
            f"brain_tumor_bilstm.ingestion.max_skipped_fraction = {limit}; "
            f"first: {skipped[:5]}."
        )
    index["label"] = index["class_name"].map(classes.index).astype(np.int64)
    logger.info(
        "Loaded %d images, skipped %d of %d files.", len(index), len(skipped), total
    )
    report = _quality_report(index, skipped, files, classes, settings["image_size"])
    return {"images": np.stack(arrays).astype(np.float32)}, index, report


def _check_class_coverage(
    index: pd.DataFrame,
    skipped: list[dict[str, str]],
    classes: list[str],
    mapping: Mapping[str, str | None],
) -> None:
    for split in SPLITS:
        present = (
            set(index["class_name"][index["split"] == split]) if len(index) else set()
        )
        missing = [c for c in classes if c not in present]
        if missing:
            folders = {
                c: sorted(f for f, t in mapping.items() if t == c) for c in missing
            }
            n_skipped = sum(s["file"].startswith(f"{split}/") for s in skipped)
            raise ValueError(
                f"{split} has no usable image for class(es) {missing} (looked in "
                f"folders {folders}; {n_skipped} file(s) of {split} were skipped, see "
                "the log). Every class needs images in both splits."
            )


def _quality_report(
    index: pd.DataFrame,
    skipped: list[dict[str, str]],
    files: dict[str, int],
    classes: list[str],
    image_size: int,
) -> dict[str, Any]:
    def counts(values: pd.Series) -> dict[str, int]:
        return {str(k): int(v) for k, v in values.value_counts().items()}

    sizes = index["source_width"].astype(str) + "x" + index["source_height"].astype(str)
    return {
        "image_size": image_size,
        "classes": classes,
        "files_seen": files,
        "images_loaded": {
            split: counts(index["class_name"][index["split"] == split])
            for split in SPLITS
        },
        "n_skipped": len(skipped),
        "skipped_by_reason": dict(Counter(s["reason"].split(":")[0] for s in skipped)),
        "skipped": skipped,
        "source_modes": counts(index["source_mode"]),
        "source_sizes": counts(sizes),
    }
