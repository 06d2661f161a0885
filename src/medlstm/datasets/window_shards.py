"""Beat windows stored one ``.npy`` file per record and read lazily.

`ShardedWindows` looks like the ``(n, T)`` window array to the code that indexes it
(``len``, ``shape``, ``windows[rows]``), but holds only the file names: rows are
read from memory-mapped shards when asked for, so training on more records than
fit in memory reads one batch at a time (`ShardedTensorDataset`).

Example catalog entry (instead of the single ``.npz`` of `NumpyDataset`)::

    ecg_windows:
      type: medlstm.datasets.window_shards.WindowShardsDataset
      path: data/05_model_input/ecg_window_shards
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kedro.io import AbstractDataset, DatasetError
from torch.utils.data import Dataset

INDEX_FILE = "index.npz"
SHARD_PATTERN = "part-*.npy"


def _shard_name(i: int) -> str:
    return f"part-{i:06d}.npy"


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The array shape in an ``.npy`` header, without reading the data."""
    with path.open("rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read_header(handle)
    return tuple(shape)


class ShardedWindows:
    """Rows of several ``(n_i, T)`` float32 ``.npy`` files read as one ``(n, T)``
    array, optionally through a row selection (`take`).

    Indexing follows NumPy (an int, a slice, an integer or boolean array, optionally
    with a column index) and returns an ndarray read from the memory-mapped shards.
    At most ``open_shards`` shards stay mapped, so the pages held stay bounded however
    many records there are.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        rows: np.ndarray | None = None,
        open_shards: int = 16,
        _owner: Any = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        shapes = [_npy_shape(p) for p in self.paths]
        widths = {s[1] for s in shapes if len(s) == 2}  # noqa: PLR2004
        if any(len(s) != 2 for s in shapes) or len(widths) > 1:  # noqa: PLR2004
            bad = next(
                (p, s)
                for p, s in zip(self.paths, shapes, strict=True)
                if len(s) != 2 or s[1] != shapes[0][1]  # noqa: PLR2004
            )
            raise ValueError(
                f"{bad[0]}: window shard of shape {bad[1]}, expected (n, "
                f"{shapes[0][1] if len(shapes[0]) > 1 else 'T'})."
            )
        self.width = widths.pop() if widths else 0
        self._ends = np.cumsum([s[0] for s in shapes], dtype=np.int64)
        total = int(self._ends[-1]) if len(self._ends) else 0
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if (
            self._rows is not None
            and len(self._rows)
            and (self._rows.min() < 0 or self._rows.max() >= total)
        ):
            raise IndexError(f"Row selection outside the {total} stored windows.")
        self._total = total
        self._open_shards = open_shards
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        # Keeps a temporary shard folder alive while any view of it is.
        self._owner = _owner

    # --- the array interface the pipeline uses ---------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.width)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self._total if self._rows is None else len(self._rows)

    def __getitem__(self, key: Any) -> np.ndarray:
        cols = slice(None)
        if isinstance(key, tuple):
            key, cols = key[0], key[1] if len(key) > 1 else slice(None)
        if isinstance(key, int | np.integer):
            return self._read(self._positions(np.array([key])))[0][cols]
        return self._read(self._positions(key))[:, cols]

    def _positions(self, key: Any) -> np.ndarray:
        """Row positions (in this view) a NumPy row index selects, without building
        an index of every row (a training batch asks for a few rows of many)."""
        n = len(self)
        if isinstance(key, slice):
            return np.arange(*key.indices(n), dtype=np.int64)
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (n,):
                raise IndexError(
                    f"Boolean row index of shape {key.shape} for {n} windows."
                )
            return np.flatnonzero(key)
        if key.dtype.kind not in "iu":
            raise IndexError(f"Windows are indexed by rows, not {key.dtype} values.")
        rows = np.where(key < 0, key + n, key).astype(np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"Row index out of range for {n} windows.")
        return rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._read(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def take(self, rows: np.ndarray) -> ShardedWindows:
        """A lazy view of ``rows`` (positions in this array); nothing is read."""
        rows = np.asarray(rows, dtype=np.int64)
        base = rows if self._rows is None else self._rows[rows]
        return ShardedWindows(self.paths, base, self._open_shards, self._owner)

    # --- reading ---------------------------------------------------------------
    def _read(self, positions: np.ndarray) -> np.ndarray:
        """Windows at ``positions`` (in this view), in that order, as float32."""
        rows = positions if self._rows is None else self._rows[positions]
        out = np.empty((len(rows), self.width), dtype=np.float32)
        if not len(rows):
            return out
        shard = np.searchsorted(self._ends, rows, side="right")
        starts = np.concatenate([[0], self._ends[:-1]])
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            out[where] = self._map(int(s))[rows[where] - starts[s]]
        return out

    def _map(self, i: int) -> np.ndarray:
        if i in self._maps:
            self._maps.move_to_end(i)
            return self._maps[i]
        try:
            array = np.load(self.paths[i], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(
                f"{self.paths[i]}: unreadable window shard ({err})."
            ) from err
        self._maps[i] = array
        if len(self._maps) > self._open_shards:
            self._maps.popitem(last=False)  # unmapped: its pages leave the process
        return array

    def __deepcopy__(self, memo: dict) -> ShardedWindows:
        # Read-only files: a copy is another view of them (and keeps them alive).
        return ShardedWindows(self.paths, self._rows, self._open_shards, self._owner)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = OrderedDict()
        return state

    @classmethod
    def concat(cls, parts: Sequence[ShardedWindows]) -> ShardedWindows:
        """The rows of ``parts`` one after the other (whole arrays, not views)."""
        if any(p._rows is not None for p in parts):
            raise ValueError("ShardedWindows.concat joins whole arrays, not views.")
        owners = [p._owner for p in parts if p._owner is not None]
        return cls([path for p in parts for path in p.paths], _owner=owners or None)


class SpillFolder:
    """A temporary folder of shards, deleted once no `ShardedWindows` refers to it."""

    def __init__(self, parent: str | Path | None = None) -> None:
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="medlstm-windows-", dir=parent))
        self._finalizer = weakref.finalize(
            self, shutil.rmtree, self.path, ignore_errors=True
        )

    def shard(self, key: str) -> Path:
        """Where the shard of ``key`` (e.g. a record id) is written."""
        return self.path / f"{key}.npy"


def write_shard(path: Path, windows: np.ndarray) -> Path:
    """Save ``windows`` (n, T) as float32 ``.npy`` at ``path``."""
    np.save(path, np.ascontiguousarray(windows, dtype=np.float32), allow_pickle=False)
    return path


class ShardedTensorDataset(Dataset):
    """``TensorDataset(x, *tensors)`` whose ``x`` rows are read from shards per batch.

    ``tensors`` holds ``(x, *tensors)`` like a TensorDataset's, ``x`` being the lazy
    `ShardedWindows`; ``labels`` is the last tensor (the target) as integers.
    """

    def __init__(self, windows: ShardedWindows, *tensors: torch.Tensor) -> None:
        if any(len(t) != len(windows) for t in tensors):
            raise ValueError(
                f"ShardedTensorDataset: {len(windows)} windows but tensors of lengths "
                f"{[len(t) for t in tensors]}."
            )
        self.windows = windows
        self.tensors = (windows, *tensors)

    @property
    def labels(self) -> np.ndarray:
        return self.tensors[-1].numpy()

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(self.windows[int(i)]),) + tuple(
            t[i] for t in self.tensors[1:]
        )

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        """One read per shard for a whole batch, instead of one per sample."""
        x = torch.from_numpy(self.windows[np.asarray(indices, dtype=np.int64)])
        index = torch.as_tensor(indices, dtype=torch.long)
        rest = [t[index] for t in self.tensors[1:]]
        return [(x[k], *(r[k] for r in rest)) for k in range(len(indices))]


class WindowShardsDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """The window arrays ``{"windows": (n, T), "record": (n,), "sample": (n,)}`` as
    a folder: one ``part-NNNNNN.npy`` per record (rows in beat order) and
    ``index.npz`` with ``record`` and ``sample``.

    Saving takes the windows as an ndarray (split per record) or a `ShardedWindows`
    (its shards copied one by one, never all in memory). Loading returns them as a
    `ShardedWindows` (``lazy: true``, the default) or one ndarray.
    """

    def __init__(
        self,
        *,
        path: str,
        lazy: bool = True,
        open_shards: int = 16,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(path)
        self._lazy = lazy
        self._open_shards = open_shards
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        index = self._path / INDEX_FILE
        if not index.is_file():
            raise DatasetError(f"{index}: no window shard index (run the ingestion).")
        with np.load(index, allow_pickle=False) as archive:
            record, sample = archive["record"], archive["sample"]
            n_shards = int(archive["n_shards"])
        paths = [self._path / _shard_name(i) for i in range(n_shards)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetError(
                f"{missing[0]}: window shard listed in {index} is missing."
            )
        windows = ShardedWindows(paths, open_shards=self._open_shards)
        if len(windows) != len(record):
            raise DatasetError(
                f"{self._path}: {len(windows)} windows in the shards but {len(record)} "
                f"beats in {INDEX_FILE}; re-run the ingestion."
            )
        data = windows if self._lazy else np.asarray(windows)
        return {"windows": data, "record": record, "sample": sample}

    def save(self, data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - {"windows", "record", "sample"})
        if unknown or "windows" not in data:
            raise DatasetError(
                f"WindowShardsDataset({self._path}) saves windows, record and sample; "
                f"got keys {sorted(data)}."
            )
        windows, record = data["windows"], np.asarray(data["record"], dtype=str)
        if len(windows) != len(record):
            raise DatasetError(
                f"WindowShardsDataset({self._path}): {len(windows)} windows but "
                f"{len(record)} record ids."
            )
        self._path.mkdir(parents=True, exist_ok=True)
        for old in self._path.glob(SHARD_PATTERN):
            old.unlink()
        if isinstance(windows, ShardedWindows) and windows._rows is None:  # noqa: SLF001
            for i, src in enumerate(windows.paths):
                shutil.copyfile(src, self._path / _shard_name(i))
            n_shards = len(windows.paths)
        else:
            # One shard per run of equal record ids (the rows are in record order).
            cuts = np.flatnonzero(record[1:] != record[:-1]) + 1
            bounds = np.concatenate([[0], cuts, [len(record)]]).astype(np.int64)
            n_shards = len(bounds) - 1 if len(record) else 0
            for i in range(n_shards):
                write_shard(
                    self._path / _shard_name(i), windows[bounds[i] : bounds[i + 1]]
                )
        np.savez(
            self._path / INDEX_FILE,
            record=record,
            sample=np.asarray(data["sample"], dtype=np.int64),
            n_shards=np.int64(n_shards),
        )

    def _exists(self) -> bool:
        return (self._path / INDEX_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "lazy": self._lazy}
