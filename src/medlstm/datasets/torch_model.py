"""A Kedro dataset for torch models saved safely (see medlstm.core.persistence)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractVersionedDataset, Version
from kedro.io.core import get_filepath_str, get_protocol_and_path
from torch import nn

import medlstm.models  # noqa: F401 - registers every architecture a file may name
from medlstm.core.persistence import load_model, save_model


class TorchModelDataset(AbstractVersionedDataset[nn.Module, nn.Module]):
    """Loads a ready ``nn.Module`` (architecture + config + weights) from one ``.pt`` file.

    Example catalog entry::

        ecg_model:
          type: medlstm.datasets.TorchModelDataset
          filepath: data/06_models/ecg_autoencoder.pt
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        metadata: dict | None = None,
    ):
        protocol, path = get_protocol_and_path(filepath, version)
        if protocol != "file":
            raise ValueError(
                f"TorchModelDataset supports local files only, got {filepath!r}."
            )
        self._fs = fsspec.filesystem(protocol)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def load(self) -> nn.Module:
        return load_model(get_filepath_str(self._get_load_path(), "file"))

    def save(self, data: nn.Module) -> None:
        save_model(data, get_filepath_str(self._get_save_path(), "file"))
        self._clear_version_cache()

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(self._get_load_path(), "file"))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
