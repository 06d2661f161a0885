"""A Kedro dataset for named NumPy arrays in one ``.npz`` file (no pickled objects)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io import AbstractDataset


class NumpyDataset(AbstractDataset[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """Saves ``{name: array}`` with ``np.savez`` (optionally compressed), loads it back.

    Object arrays are refused on both sides (``allow_pickle=False``), so a file from
    elsewhere cannot run code on load.
    """

    def __init__(
        self, *, filepath: str, compress: bool = False, metadata: dict | None = None
    ):
        self._filepath = PurePosixPath(filepath)
        self._compress = compress
        self.metadata = metadata

    def load(self) -> dict[str, np.ndarray]:
        path = Path(self._filepath)
        if not path.exists():
            raise FileNotFoundError(f"No array file at {path}.")
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def save(self, data: dict[str, np.ndarray]) -> None:
        if not isinstance(data, dict):
            raise TypeError(
                f"NumpyDataset saves a dict of arrays, got {type(data).__name__}."
            )
        path = Path(self._filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.asarray(value) for name, value in data.items()}
        for name, array in arrays.items():
            if array.dtype == object:
                raise TypeError(
                    f"Array {name!r} has dtype object, which {path} cannot hold safely."
                )
        # A file handle, not a path: np.savez would append '.npz' to other names.
        with path.open("wb") as handle:
            (np.savez_compressed if self._compress else np.savez)(handle, **arrays)

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "compress": self._compress}
