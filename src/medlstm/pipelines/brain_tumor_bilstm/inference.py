"""Classify raw image files: a file or folder named by a parameter, or the image bytes
handed to the MLflow pyfunc model."""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from torch import nn

from medlstm.core.training import class_probabilities
from medlstm.pipelines.brain_tumor_bilstm.ingestion import (
    READ_ERRORS,
    ImageSkip,
    preprocess_image,
    read_error_reason,
)

logger = logging.getLogger(__name__)


def _prepare(image: Image.Image, ingestion_params: Mapping[str, Any]) -> np.ndarray:
    array, _ = preprocess_image(
        image,
        int(ingestion_params["image_size"]),
        ingestion_params.get("resample", "lanczos"),
        int(ingestion_params.get("min_side", 1)),
        ingestion_params.get("reducing_gap"),
    )
    return array


def _read(source: Path | bytes) -> Image.Image:
    with Image.open(
        source if isinstance(source, Path) else io.BytesIO(source)
    ) as image:
        image.load()
        return image.copy()


def _classify(
    model: nn.Module, arrays: list[np.ndarray], classes: list[str]
) -> pd.DataFrame:
    """``predicted_class`` and ``p_<class>`` per slice; no rows for no slices."""
    columns = [f"p_{name}" for name in classes]
    if not arrays:
        return pd.DataFrame(columns=["predicted_class", *columns])
    probabilities = class_probabilities(model, np.stack(arrays), batch_size=512)
    frame = pd.DataFrame(probabilities.round(5), columns=columns)
    frame.insert(
        0, "predicted_class", [classes[i] for i in probabilities.argmax(axis=1)]
    )
    return frame


def image_files(path: Path, recursive: bool = False) -> list[Path]:
    """The file itself, or the non-hidden files of a folder, sorted."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(
            f"brain_tumor_bilstm.inference.input_path {path} is neither a file nor a folder."
        )
    candidates = path.rglob("*") if recursive else path.iterdir()
    return sorted(
        p
        for p in candidates
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def predict_path(
    model: nn.Module,
    data_params: Mapping[str, Any],
    ingestion_params: Mapping[str, Any],
    inference_params: Mapping[str, Any],
) -> pd.DataFrame:
    """Class and probabilities for one image file or every image in a folder.

    Files that are not readable images get a row with ``error`` set and no class,
    and are counted in the log. ``inference.input_path: null`` predicts nothing.

    Returns:
        Columns ``file``, ``predicted_class``, ``p_<class>`` per class, ``error``.
    """
    classes = list(data_params["classes"])
    columns = ["file", "predicted_class", *(f"p_{c}" for c in classes), "error"]
    if not inference_params.get("input_path"):
        logger.info(
            "brain_tumor_bilstm.inference.input_path is null: nothing to predict."
        )
        return pd.DataFrame(columns=columns)
    root = Path(inference_params["input_path"])
    files = image_files(root, bool(inference_params.get("recursive", False)))
    arrays, readable, errors = [], [], {}
    for file in files:
        try:
            arrays.append(_prepare(_read(file), ingestion_params))
            readable.append(str(file))
        except ImageSkip as err:
            errors[str(file)] = str(err)
        except READ_ERRORS as err:
            errors[str(file)] = read_error_reason(err)
    for file, message in errors.items():
        logger.warning("Not classified: %s: %s", file, message)
    logger.info(
        "Classified %d of %d file(s) under %s.", len(readable), len(files), root
    )
    frame = _classify(model, arrays, classes).assign(file=readable, error="")
    failed = pd.DataFrame({"file": list(errors), "error": list(errors.values())})
    return pd.concat([frame, failed], ignore_index=True)[columns]


def _image_bytes(value: Any, row: int) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as err:
            raise ValueError(
                f"Row {row}: column 'image' is a string but not base64."
            ) from err
    raise ValueError(
        f"Row {row}: column 'image' must hold the bytes of an image file, got "
        f"{type(value).__name__}."
    )


def predict_image_bytes(
    images: pd.DataFrame,
    model: nn.Module,
    data_params: Mapping[str, Any],
    ingestion_params: Mapping[str, Any],
) -> pd.DataFrame:
    """The pyfunc model's inference: raw image files (PNG, JPEG, ... bytes, or base64
    text) in column ``image`` -> ``predicted_class`` and ``p_<class>`` per row.

    Raises:
        ValueError: naming the first row that is not a readable image.
    """
    if "image" not in images.columns:
        raise ValueError(
            f"The model input needs a column 'image' (image file bytes); got {list(images.columns)}."
        )
    arrays = []
    for row, value in enumerate(images["image"]):
        data = _image_bytes(value, row)
        try:
            arrays.append(_prepare(_read(data), ingestion_params))
        except (ImageSkip, *READ_ERRORS) as err:
            raise ValueError(f"Row {row}: not a usable image: {err}") from err
    return _classify(model, arrays, list(data_params["classes"]))
