"""A record whose header declares the wrong sampling rate is named: a real excerpt
record with a rewritten header, and no false alarm on the real databases."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.sampling_rate import (
    check_sampling_rates,
    qrs_width_ms,
)

ROOT = Path(__file__).parents[3]
EXCERPT = ROOT / "data" / "01_raw" / "mitdb_excerpt"
SHARED = ROOT.parent / "shared" / "data"


def _declare(folder: Path, record: str, fs: int) -> None:
    """Rewrite the rate on the record line of ``record``'s header (nothing else)."""
    hea = folder / f"{record}.hea"
    first, *rest = hea.read_text().splitlines(keepends=True)
    name, n_sig, _, *tail = first.split(" ")
    hea.write_text(" ".join([name, n_sig, str(fs), *tail]) + "".join(rest))


def _records(folder: Path, ids: list[str]) -> dict:
    return WfdbRecordsDataset(path=str(folder), records=ids).load()


def test_a_360_hz_record_declared_250_hz_is_named(tmp_path, params, caplog):
    folder = tmp_path / "mitdb"
    shutil.copytree(EXCERPT, folder)
    _declare(folder, "100", 250)
    ids = ["100", "101", "103", "105", "106"]
    records = _records(folder, ids)
    assert records["100"].fs == 250  # the loader believes the header
    with caplog.at_level(logging.WARNING):
        _, _, report = segment_records(records, params["ingestion"])
    message = next(
        r.getMessage() for r in caplog.records if "declares" in r.getMessage()
    )
    assert message.startswith(
        f"Record 100 declares 250 Hz while 4 of the 5 records of {folder} declare 360 Hz"
    )
    assert "Check the sampling rate in its header" in message
    flagged = {
        r for r, rec in report["records"].items() if "suspect_sampling_rate" in rec
    }
    assert flagged == {"100"}
    # The evidence: the same QRS complexes measure about 360/250 times wider.
    _, _, truth = segment_records(_records(EXCERPT, ids), params["ingestion"])
    width = report["records"]["100"]["qrs_width_ms"]
    true_width = truth["records"]["100"]["qrs_width_ms"]
    assert width == pytest.approx(true_width * 360 / 250, rel=0.1)
    assert f"its QRS complexes measure {width:.0f} ms at 250 Hz" in message


def test_the_shipped_excerpt_raises_no_alarm(params, caplog):
    records = _records(EXCERPT, ["100", "101", "103", "105", "106", "107", "108"])
    with caplog.at_level(logging.WARNING):
        _, _, report = segment_records(records, params["ingestion"])
    assert "declares" not in caplog.text
    assert all(3 < r["qrs_width_ms"] < 250 for r in report["records"].values())


@pytest.mark.parametrize("database", ["mitdb", "svdb"])
def test_no_false_alarm_on_a_whole_real_database(database, caplog):
    folder = SHARED / database
    if not folder.is_dir():
        pytest.skip(f"needs ../shared/data/{database}")
    rates = {
        hea.stem: float(wfdb.rdheader(str(folder / hea.stem)).fs)
        for hea in sorted(folder.glob("*.hea"))
    }
    assert len(rates) == {"mitdb": 48, "svdb": 78}[database]
    with caplog.at_level(logging.WARNING):
        assert check_sampling_rates(rates, dict.fromkeys(rates), database) == {}
    assert caplog.text == ""
    # One header rewritten among them is named, alone.
    one = min(rates)
    rates[one] = rates[one] * 250 / 360
    assert set(check_sampling_rates(rates, dict.fromkeys(rates), database)) == {one}


def test_no_verdict_without_a_clear_majority():
    assert check_sampling_rates({"a": 360.0, "b": 250.0}, {}, "db") == {}
    assert (
        check_sampling_rates({"a": 360, "b": 250, "c": 128, "d": 500}, {}, "db") == {}
    )


def test_qrs_width_scales_with_the_declared_rate():
    fs = 360.0
    t = np.arange(int(10 * fs)) / fs
    beats = np.arange(0.5, 9.5, 0.8)
    x = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats)
    samples = np.round(beats * fs).astype(np.int64)
    at_360 = qrs_width_ms(x, samples, 360.0)
    at_250 = qrs_width_ms(x, samples, 250.0)
    assert 20 < at_360 < 120
    assert at_250 == pytest.approx(at_360 * 360 / 250, rel=0.05)
    assert qrs_width_ms(x, samples[:3], fs) is None  # too few beats
