"""The shipped MIT-BIH excerpt: valid WFDB records derived by medlstm.excerpts.mitdb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.excerpts.mitdb import write_excerpt

RAW = Path(__file__).parents[3] / "data" / "01_raw"
EXCERPT = RAW / "mitdb_excerpt"
SVDB_EXCERPT = RAW / "svdb_excerpt"
NOISE_EXCERPT = RAW / "nstdb_noise_excerpt"
SHARED = Path(__file__).parents[4] / "shared" / "data"
FULL = SHARED / "mitdb"
MINUTES = 10  # as shipped: the commands in each excerpt's README.md


def test_excerpt_holds_all_48_records_with_attribution():
    records = WfdbRecordsDataset(str(EXCERPT)).load()
    assert len(records) == 48
    assert all(r.n_samples == MINUTES * 60 * 360 for r in records.values())
    assert list(records["114"].signals) == ["V5", "MLII"]  # both leads kept
    readme = (EXCERPT / "README.md").read_text()
    assert "ODC-By" in readme and "Moody GB, Mark RG" in readme
    assert f"--minutes {MINUTES}\n" in readme
    size = sum(p.stat().st_size for p in EXCERPT.iterdir())
    assert size < 33_000_000


def test_svdb_excerpt_holds_lead_ecg1_of_all_78_records_with_attribution():
    records = WfdbRecordsDataset(str(SVDB_EXCERPT)).load()
    assert len(records) == 78
    assert all(list(r.signals) == ["ECG1"] for r in records.values())
    assert all(r.n_samples == MINUTES * 60 * 128 for r in records.values())
    readme = (SVDB_EXCERPT / "README.md").read_text()
    assert "ODC-By" in readme and "Greenwald SD" in readme
    assert f"--minutes {MINUTES} --leads ECG1" in readme
    size = sum(p.stat().st_size for p in SVDB_EXCERPT.iterdir())
    assert size < 11_000_000


def test_noise_excerpt_holds_em_and_ma_without_annotations_with_attribution():
    records = WfdbRecordsDataset(str(NOISE_EXCERPT), annotation=None).load()
    assert sorted(records) == ["em", "ma"]
    for record in records.values():
        assert list(record.signals) == ["noise1", "noise2"]
        assert record.fs == 360 and record.n_samples == MINUTES * 60 * 360
        assert len(record.ann_samples) == 0
    assert not list(NOISE_EXCERPT.glob("*.atr"))
    readme = (NOISE_EXCERPT / "README.md").read_text()
    assert "ODC-By" in readme and "Moody GB, Muldrow WE, Mark RG" in readme
    assert "annotations" not in readme  # none to keep
    assert f"--minutes {MINUTES} --records em ma\n" in readme


@pytest.mark.parametrize(
    ("database", "folder", "excerpt", "records", "leads", "extensions"),
    [
        ("mitdb", "mitdb", EXCERPT, ["114", "232"], None, ("hea", "dat", "atr")),
        ("svdb", "svdb", SVDB_EXCERPT, ["805", "842"], ["ECG1"], ("hea", "dat", "atr")),
        ("nstdb", "nstdb_noise", NOISE_EXCERPT, ["em", "ma"], None, ("hea", "dat")),
    ],
)
def test_excerpt_is_reproducible_from_the_full_database(
    tmp_path, database, folder, excerpt, records, leads, extensions
):
    if not (SHARED / folder).exists():
        pytest.skip(f"full {database} database not available")
    write_excerpt(
        SHARED / folder, tmp_path, MINUTES, records, database=database, leads=leads
    )
    for rid in records:
        for ext in extensions:
            assert (tmp_path / f"{rid}.{ext}").read_bytes() == (
                excerpt / f"{rid}.{ext}"
            ).read_bytes()
    written = (tmp_path / "SHA256SUMS.txt").read_text().splitlines()
    assert set(written) <= set((excerpt / "SHA256SUMS.txt").read_text().splitlines())


def test_leads_keeps_the_named_lead_and_a_record_without_it_keeps_all(tmp_path):
    if not FULL.exists():
        pytest.skip("full MIT-BIH database not available")
    write_excerpt(FULL, tmp_path, minutes=0.5, records=["102", "114"], leads=["MLII"])
    cut = WfdbRecordsDataset(str(tmp_path)).load()
    full = WfdbRecordsDataset(str(FULL), records=["102", "114"]).load()
    assert list(cut["114"].signals) == ["MLII"]  # stored second in the original
    np.testing.assert_array_equal(
        cut["114"].signals["MLII"], full["114"].signals["MLII"][: 30 * 360]
    )
    assert list(cut["102"].signals) == ["V5", "V2"]  # no MLII: all leads kept


def test_cut_record_matches_the_start_of_the_original(tmp_path):
    if not FULL.exists():
        pytest.skip("full MIT-BIH database not available")
    write_excerpt(FULL, tmp_path, minutes=0.5, records=["114"])
    cut = WfdbRecordsDataset(str(tmp_path)).load()["114"]
    full = WfdbRecordsDataset(str(FULL), records=["114"]).load()["114"]
    n = 30 * 360
    for lead in ("MLII", "V5"):
        np.testing.assert_array_equal(cut.signals[lead], full.signals[lead][:n])
    inside = full.ann_samples < n
    np.testing.assert_array_equal(cut.ann_samples, full.ann_samples[inside])
    assert cut.ann_symbols.tolist() == full.ann_symbols[inside].tolist()
