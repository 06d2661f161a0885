"""The shipped MIT-BIH excerpt: valid WFDB records derived by medlstm.excerpts.mitdb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.excerpts.mitdb import write_excerpt

EXCERPT = Path(__file__).parents[3] / "data" / "01_raw" / "mitdb_excerpt"
FULL = Path(__file__).parents[4] / "shared" / "data" / "mitdb"


def test_excerpt_holds_all_48_records_with_attribution():
    records = WfdbRecordsDataset(str(EXCERPT)).load()
    assert len(records) == 48
    assert all(r.n_samples == 60 * 360 for r in records.values())
    readme = (EXCERPT / "README.md").read_text()
    assert "ODC-By" in readme and "Moody GB, Mark RG" in readme
    size = sum(p.stat().st_size for p in EXCERPT.iterdir())
    assert size < 4_000_000


def test_excerpt_is_reproducible_from_the_full_database(tmp_path):
    if not FULL.exists():
        pytest.skip("full MIT-BIH database not available")
    write_excerpt(FULL, tmp_path, minutes=1, records=["114", "232"])
    for rid in ("114", "232"):
        for ext in ("hea", "dat", "atr"):
            assert (tmp_path / f"{rid}.{ext}").read_bytes() == (
                EXCERPT / f"{rid}.{ext}"
            ).read_bytes()


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
