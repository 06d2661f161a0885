"""A read-only Kedro dataset for a folder of WFDB records (PhysioNet's MIT-BIH format).

Each record is a ``NNN.hea`` header, the ``.dat`` signal file(s) it names and an
annotation file (``NNN.atr`` by default). Leads are keyed by the names in the header,
never by position: in MIT-BIH, records 102 and 104 have no MLII and 114 stores it
second.

Example catalog entry::

    ecg_raw_records:
      type: medlstm.datasets.wfdb_records.WfdbRecordsDataset
      path: data/01_raw/mitdb_excerpt
      records: null   # or ["100", "101"]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from kedro.io import AbstractDataset, DatasetError

# Bytes per stored sample of each uncompressed WFDB format (212 packs two 12-bit
# samples in three bytes, 310/311 three 10-bit samples in four bytes).
_BYTES_PER_SAMPLE = {
    "8": 1.0,
    "16": 2.0,
    "24": 3.0,
    "32": 4.0,
    "61": 2.0,
    "80": 1.0,
    "160": 2.0,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}


class WfdbRecordError(ValueError):
    """A WFDB record that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class WfdbRecord:
    """One WFDB record in physical units.

    Attributes:
        record_id: Record name, e.g. ``"100"``.
        fs: Sampling frequency in Hz.
        signals: Lead name from the header -> signal in physical units (mV for
            MIT-BIH), float64, shape ``(n_samples,)``. Invalid samples are NaN.
        ann_samples: Annotation sample indices, int64, ``(n_annotations,)``.
        ann_symbols: Annotation symbols, str, ``(n_annotations,)``.
        source: Path of the ``.hea`` file.
    """

    record_id: str
    fs: float
    signals: dict[str, np.ndarray]
    ann_samples: np.ndarray
    ann_symbols: np.ndarray
    source: str

    @property
    def n_samples(self) -> int:
        """Length of the record in samples (all leads share it)."""
        return len(next(iter(self.signals.values()))) if self.signals else 0


def _check_signal_files(header: wfdb.Record, folder: Path, hea: Path) -> None:
    """Raise if a ``.dat`` file named by the header is missing or shorter than declared."""
    if not header.file_name:
        raise WfdbRecordError(f"{hea}: the header names no signal file.")
    samples_per_frame = header.samps_per_frame or [1] * header.n_sig
    byte_offsets = header.byte_offset or [None] * header.n_sig
    needed: dict[str, float] = {}
    for name, fmt, spf, offset in zip(
        header.file_name, header.fmt, samples_per_frame, byte_offsets, strict=True
    ):
        dat = folder / name
        if not dat.is_file():
            raise WfdbRecordError(f"{dat}: signal file named in {hea.name} is missing.")
        if fmt not in _BYTES_PER_SAMPLE or header.sig_len is None:
            continue  # compressed formats or an unknown length: wfdb checks on read
        needed.setdefault(name, float(offset or 0))
        needed[name] += header.sig_len * spf * _BYTES_PER_SAMPLE[fmt]
    for name, n_bytes in needed.items():
        dat = folder / name
        size = dat.stat().st_size
        if size < math.floor(n_bytes):
            raise WfdbRecordError(
                f"{dat}: truncated signal file, {size} bytes where the header "
                f"{hea.name} declares {header.sig_len} samples ({math.floor(n_bytes)} bytes)."
            )


def read_wfdb_record(path: str | Path, annotation: str | None = "atr") -> WfdbRecord:
    """Read one WFDB record: header, signals in physical units and annotations.

    Args:
        path: The record's ``.hea`` file, or its path without extension.
        annotation: Extension of the annotation file to read; None reads none (a
            new recording without reference beats): the annotations are empty.

    Returns:
        The record, with leads keyed by their header names.

    Raises:
        WfdbRecordError: If the header, a signal file or the annotation file is
            missing, unreadable or truncated; the message names the file.
    """
    path = Path(path)
    hea = path if path.suffix == ".hea" else path.with_name(path.name + ".hea")
    record_name = str(hea.with_suffix(""))
    if not hea.is_file():
        raise WfdbRecordError(f"{hea}: WFDB header not found.")
    try:
        header = wfdb.rdheader(record_name)
    except Exception as err:  # wfdb raises many types on malformed headers
        raise WfdbRecordError(f"{hea}: unreadable WFDB header ({err}).") from err
    if not header.sig_name or header.n_sig == 0:
        raise WfdbRecordError(f"{hea}: the header declares no signals.")
    if len(set(header.sig_name)) != len(header.sig_name):
        raise WfdbRecordError(f"{hea}: duplicate lead names {header.sig_name}.")
    _check_signal_files(header, hea.parent, hea)
    ann_file = hea.with_suffix(f".{annotation}") if annotation else None
    if ann_file is not None and not ann_file.is_file():
        raise WfdbRecordError(f"{ann_file}: annotation file not found.")

    try:
        record = wfdb.rdrecord(record_name, physical=True)
    except Exception as err:
        raise WfdbRecordError(f"{hea}: could not read the signals ({err}).") from err
    samples, symbols = np.empty(0, np.int64), np.empty(0, str)
    if ann_file is not None:
        try:
            ann = wfdb.rdann(record_name, annotation)
        except Exception as err:
            raise WfdbRecordError(
                f"{ann_file}: unreadable annotation file ({err})."
            ) from err
        samples = np.asarray(ann.sample, dtype=np.int64)
        symbols = np.asarray(ann.symbol, dtype=str)
    order = np.argsort(samples, kind="stable")
    signal = np.asarray(record.p_signal, dtype=np.float64)
    return WfdbRecord(
        record_id=hea.stem,
        fs=float(record.fs),
        signals={
            name: np.ascontiguousarray(signal[:, i])
            for i, name in enumerate(record.sig_name)
        },
        ann_samples=samples[order],
        ann_symbols=symbols[order],
        source=str(hea),
    )


class LazyWfdbRecords(Mapping[str, WfdbRecord]):
    """``{record_id: WfdbRecord}`` whose records are read from their files when
    looked up, and not kept: a pass over many records holds one at a time, and a
    worker process can read its own record (`loader`) instead of receiving it."""

    def __init__(self, folder: Path, ids: list[str], annotation: str) -> None:
        self._folder = folder
        self._ids = list(ids)
        self._known = set(ids)
        self._annotation = annotation

    def loader(self, record_id: str) -> Callable[[], WfdbRecord]:
        """A picklable call that reads ``record_id`` (a KeyError if not listed)."""
        if record_id not in self._known:
            raise KeyError(record_id)
        return partial(
            read_wfdb_record, self._folder / f"{record_id}.hea", self._annotation
        )

    def __getitem__(self, record_id: str) -> WfdbRecord:
        return self.loader(record_id)()

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"LazyWfdbRecords({self._folder}, {len(self._ids)} records)"


class WfdbRecordsDataset(AbstractDataset[None, dict[str, WfdbRecord]]):
    """A folder of WFDB records, loaded as ``{record_id: WfdbRecord}`` sorted by id.

    Read-only: records are reference data, never written by a pipeline.
    """

    def __init__(
        self,
        path: str,
        records: list[str] | None = None,
        annotation: str = "atr",
        lazy: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            path: Folder holding the records.
            records: Record ids to read; ``None`` reads every ``*.hea`` in ``path``.
                Integers (``[100, 101]`` in YAML) are taken as ids.
            annotation: Extension of the annotation files.
            lazy: Load a `LazyWfdbRecords` (each record read when looked up) instead
                of reading every record now.
            metadata: Free-form metadata, ignored by Kedro.
        """
        self._path = Path(path)
        self._records = None if records is None else sorted(str(r) for r in records)
        self._annotation = annotation
        self._lazy = lazy
        self.metadata = metadata

    def _record_ids(self) -> list[str]:
        if not self._path.is_dir():
            raise WfdbRecordError(f"{self._path}: WFDB record folder not found.")
        if self._records is not None:
            return self._records
        ids = sorted(p.stem for p in self._path.glob("*.hea"))
        if not ids:
            raise WfdbRecordError(
                f"{self._path}: no WFDB headers (*.hea) in this folder."
            )
        return ids

    def load(self) -> dict[str, WfdbRecord] | LazyWfdbRecords:
        """Read every selected record (any unreadable record fails the load), or
        with ``lazy`` list them, each read (and checked) when looked up."""
        if self._lazy:
            ids = self._record_ids()
            missing = [r for r in ids if not (self._path / f"{r}.hea").is_file()]
            if missing:
                raise WfdbRecordError(
                    f"{self._path / (missing[0] + '.hea')}: WFDB header not found."
                )
            return LazyWfdbRecords(self._path, ids, self._annotation)
        return {
            rid: read_wfdb_record(self._path / f"{rid}.hea", self._annotation)
            for rid in self._record_ids()
        }

    def save(self, data: None) -> None:
        """Refuse: WFDB record folders are read-only inputs."""
        raise DatasetError(f"WfdbRecordsDataset({self._path}) is read-only.")

    def _exists(self) -> bool:
        return self._path.is_dir() and any(self._path.glob("*.hea"))

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(self._path),
            "records": self._records,
            "annotation": self._annotation,
            "lazy": self._lazy,
        }
