"""Tests for the WFDB records dataset, on copies of the shipped MIT-BIH excerpt."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from kedro.io import DatasetError

from medlstm.datasets.wfdb_records import (
    WfdbRecordError,
    WfdbRecordsDataset,
    read_wfdb_record,
)

EXCERPT = Path(__file__).parents[2] / "data" / "01_raw" / "mitdb_excerpt"


@pytest.fixture
def records_dir(tmp_path: Path) -> Path:
    """A writable folder with records 100 and 114 of the excerpt."""
    for rid in ("100", "114"):
        for ext in ("hea", "dat", "atr"):
            shutil.copy(EXCERPT / f"{rid}.{ext}", tmp_path / f"{rid}.{ext}")
    return tmp_path


def test_load_keys_leads_by_header_name(records_dir: Path):
    records = WfdbRecordsDataset(str(records_dir), records=[114, 100]).load()

    assert list(records) == ["100", "114"]
    rec = records["114"]
    assert list(rec.signals) == ["V5", "MLII"]  # 114 stores MLII second
    reference = wfdb.rdrecord(str(records_dir / "114"))
    np.testing.assert_array_equal(rec.signals["MLII"], reference.p_signal[:, 1])
    assert rec.signals["MLII"].dtype == np.float64
    assert rec.fs == 360.0
    assert rec.n_samples == reference.sig_len
    assert rec.source == str(records_dir / "114.hea")


def test_annotations_are_sorted_int64_and_str(records_dir: Path):
    rec = WfdbRecordsDataset(str(records_dir), records=["100"]).load()["100"]
    ann = wfdb.rdann(str(records_dir / "100"), "atr")

    assert rec.ann_samples.dtype == np.int64
    assert rec.ann_symbols.dtype.kind == "U"
    assert np.all(np.diff(rec.ann_samples) >= 0)
    np.testing.assert_array_equal(rec.ann_samples, ann.sample)
    assert rec.ann_symbols.tolist() == ann.symbol


def test_records_none_reads_every_header(records_dir: Path):
    assert list(WfdbRecordsDataset(str(records_dir)).load()) == ["100", "114"]


def test_read_single_record_without_extension(records_dir: Path):
    assert read_wfdb_record(records_dir / "100").record_id == "100"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "100.atr").unlink(), r"100\.atr: annotation file not found"),
        (lambda d: (d / "100.dat").unlink(), r"100\.dat: signal file .* missing"),
        (
            lambda d: (d / "100.dat").write_bytes((d / "100.dat").read_bytes()[:999]),
            r"100\.dat: truncated signal file, 999 bytes",
        ),
        (
            lambda d: (d / "100.hea").write_text("this is not a header\n"),
            r"100\.hea: unreadable WFDB header",
        ),
        (lambda d: (d / "100.hea").unlink(), r"100\.hea: WFDB header not found"),
    ],
    ids=["missing-atr", "missing-dat", "truncated-dat", "bad-header", "missing-hea"],
)
def test_bad_record_fails_naming_the_file(records_dir: Path, damage, message):
    damage(records_dir)
    with pytest.raises(DatasetError, match=message):
        WfdbRecordsDataset(str(records_dir), records=["100", "114"]).load()


def test_missing_folder_is_an_error(tmp_path: Path):
    with pytest.raises(DatasetError, match="record folder not found"):
        WfdbRecordsDataset(str(tmp_path / "nope")).load()


def test_empty_folder_is_an_error(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"no WFDB headers"):
        WfdbRecordsDataset(str(tmp_path)).load()


def test_invalid_samples_become_nan(tmp_path: Path):
    digital = np.zeros((500, 1), dtype=np.int64)
    digital[100:110] = -32768  # format 16's "invalid sample" value
    wfdb.wrsamp(
        "900",
        fs=250,
        units=["mV"],
        sig_name=["MLII"],
        d_signal=digital,
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    wfdb.wrann("900", "atr", np.array([50, 300]), ["N", "N"], write_dir=str(tmp_path))

    rec = read_wfdb_record(tmp_path / "900.hea")

    assert rec.fs == 250.0
    assert np.isnan(rec.signals["MLII"][100:110]).all()
    assert np.isfinite(rec.signals["MLII"][:100]).all()


def test_save_is_refused(records_dir: Path):
    with pytest.raises(DatasetError, match="read-only"):
        WfdbRecordsDataset(str(records_dir)).save({"x": 1})


def test_error_type_is_value_error_subclass():
    assert issubclass(WfdbRecordError, ValueError)
