"""Beats cut from another lead than the training one (`pick_lead`,
`segment_record_on`), on the real MIT-BIH and SVDB excerpts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlstm.datasets.wfdb_records import read_wfdb_record
from medlstm.pipelines.ecg_autoencoder.segmentation import (
    SegmentationParams,
    pick_lead,
    segment_record,
    segment_record_on,
)
from tests.pipelines.ecg_autoencoder.conftest import make_record

RAW = Path(__file__).parents[3] / "data" / "01_raw"
EXCERPT = RAW / "mitdb_excerpt"
SVDB_EXCERPT = RAW / "svdb_excerpt"


@pytest.fixture
def mitdb_p(params) -> SegmentationParams:
    return SegmentationParams.from_dict(
        {**params["ingestion"], "lead": params["databases"]["mitdb"]["leads"]}
    )


@pytest.mark.parametrize(
    ("rid", "training", "second"),
    [("100", "MLII", "V5"), ("114", "MLII", "V5"), ("232", "MLII", "V1")],
)
def test_second_lead_is_the_records_other_lead_by_name(mitdb_p, rid, training, second):
    # 114 stores MLII second: the other lead is found by name, not by position.
    record = read_wfdb_record(EXCERPT / rid)
    assert pick_lead(record, mitdb_p, "training") == training
    assert pick_lead(record, mitdb_p, "second") == second


def test_a_named_lead_is_used_only_where_the_record_has_it(mitdb_p):
    assert pick_lead(read_wfdb_record(EXCERPT / "232"), mitdb_p, "V1") == "V1"
    assert pick_lead(read_wfdb_record(EXCERPT / "100"), mitdb_p, "V1") is None


def test_no_second_lead_without_a_training_lead_or_a_second_lead(mitdb_p, params):
    # Like 102 and 104: no MLII, so no lead to call the other one.
    no_mlii = make_record(leads=("V5", "V2"))
    assert pick_lead(no_mlii, mitdb_p, "second") is None
    svdb_p = SegmentationParams.from_dict(
        {**params["ingestion"], "lead": params["databases"]["svdb"]["leads"]}
    )
    one_lead = read_wfdb_record(SVDB_EXCERPT / "800")  # the excerpt keeps ECG1 only
    assert pick_lead(one_lead, svdb_p, "training") == "ECG1"
    assert pick_lead(one_lead, svdb_p, "second") is None
    beats, windows, report = segment_record_on(one_lead, svdb_p, "second")
    assert beats.empty and windows.shape == (0, svdb_p.window)
    assert report["lead"] is None and "no second lead" in report["skipped"]


def test_second_lead_windows_share_the_beats_not_the_signal(mitdb_p):
    record = read_wfdb_record(EXCERPT / "232")
    beats, windows, report = segment_record(record, mitdb_p)
    on_v1, v1_windows, v1_report = segment_record_on(record, mitdb_p, "second")
    assert report["lead"] == "MLII" and v1_report["lead"] == "V1"
    assert set(on_v1["lead"]) == {"V1"}
    # The same reference beats, labels and RR features: only the windows differ.
    cols = ["sample", "label", "pre_rr", "post_rr", "local_rr", "rr_pre_norm"]
    assert on_v1[cols].equals(beats[cols])
    assert v1_windows.shape == windows.shape
    assert not np.allclose(v1_windows, windows, atol=0.05)
    # Cut as in training: the record's median beat subtracted on its own lead.
    assert np.abs(np.median(v1_windows, axis=0)).max() < 1e-3
