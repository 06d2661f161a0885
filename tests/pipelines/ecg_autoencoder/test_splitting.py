"""Splits: patient-wise by record (checked), or the optimistic intra-patient split."""

from __future__ import annotations

import pandas as pd
import pytest

from medlstm.pipelines.ecg_autoencoder.splitting import (
    assign_splits,
    check_records_disjoint,
)
from tests.pipelines.ecg_autoencoder.conftest import beats_table

LABELS = ["N"] * 8 + ["S", "V"]


@pytest.fixture
def mitdb_like_beats(params) -> pd.DataFrame:
    """Ten beats for every record of DS1, DS2 and the paced records."""
    cfg = params["split"]["inter_patient"]
    records = [str(r) for r in cfg["train"] + cfg["test"] + [102, 104, 107, 217]]
    return beats_table({r: LABELS for r in records})


def _records(out: pd.DataFrame, part: str) -> set[str]:
    return set(out.loc[out["split"] == part, "record"])


def test_inter_patient_follows_de_chazal(params, mitdb_like_beats):
    out, report = assign_splits(mitdb_like_beats, params["split"])

    ds1 = {str(r) for r in params["split"]["inter_patient"]["train"]}
    ds2 = {str(r) for r in params["split"]["inter_patient"]["test"]}
    val = {str(r) for r in params["split"]["validation"]["records"]}
    assert _records(out, "test") == ds2
    assert _records(out, "val") == val and val < ds1
    assert _records(out, "train") == ds1 - val
    assert _records(out, "excluded") == {"102", "104", "107", "217"}
    assert report["records"]["val"] == sorted(val)
    assert report["beats"]["test"] == {"N": 8 * 22, "S": 22, "V": 22}
    assert report["patient_wise"] and not report["optimistic"]


def test_validation_records_must_come_from_training_records(params, mitdb_like_beats):
    params["split"]["validation"]["records"] = [101, 100]  # 100 is DS2
    with pytest.raises(ValueError, match=r"\['100'\].*not training records"):
        assign_splits(mitdb_like_beats, params["split"])


def test_random_validation_records_are_seeded_and_from_training(
    params, mitdb_like_beats
):
    params["split"]["validation"] = {"records": None, "fraction": 0.25}
    first, _ = assign_splits(mitdb_like_beats, params["split"])
    second, _ = assign_splits(mitdb_like_beats, params["split"])
    val = _records(first, "val")
    assert val == _records(second, "val")
    assert len(val) == round(0.25 * 22)
    assert val <= {str(r) for r in params["split"]["inter_patient"]["train"]}


def test_curated_test_records(params, mitdb_like_beats):
    params["split"]["scheme"] = "curated_test"
    params["split"]["validation"] = {"records": None, "fraction": 0.2}
    out, report = assign_splits(mitdb_like_beats, params["split"])
    assert _records(out, "test") == {"207", "217"}
    assert not {"207", "217"} & (_records(out, "train") | _records(out, "val"))
    assert not report["optimistic"]


def test_intra_patient_is_stratified_and_flagged_optimistic(params, mitdb_like_beats):
    params["split"]["scheme"] = "intra_patient"
    out, report = assign_splits(mitdb_like_beats, params["split"])

    assert report["optimistic"] and not report["patient_wise"]
    share = out.groupby("label")["split"].apply(lambda s: (s == "test").mean())
    assert share.between(0.25, 0.35).all()  # every class ~30 % in test
    again, _ = assign_splits(mitdb_like_beats, params["split"])
    pd.testing.assert_series_equal(out["split"], again["split"])


def test_training_beats_can_be_capped_per_class(params, mitdb_like_beats):
    params["split"]["max_train_beats_per_class"] = 20
    out, report = assign_splits(mitdb_like_beats, params["split"])

    train = out[out["split"] == "train"]
    assert train["label"].value_counts().to_dict() == {"N": 20, "S": 17, "V": 17}
    assert report["beats"]["train_unused"] == {"N": 8 * 17 - 20}
    assert report["beats"]["test"] == {"N": 8 * 22, "S": 22, "V": 22}  # untouched
    again, _ = assign_splits(mitdb_like_beats, params["split"])
    pd.testing.assert_series_equal(out["split"], again["split"])


def test_leak_check_names_the_records():
    beats = beats_table({"100": ["N", "N"], "101": ["N"]})
    beats["split"] = ["train", "test", "val"]
    with pytest.raises(ValueError, match=r"'100': \['test', 'train'\]"):
        check_records_disjoint(beats)


def test_excluded_records_may_not_count_as_a_leak():
    beats = beats_table({"100": ["N", "N"], "101": ["N"]})
    beats["split"] = ["train", "excluded", "test"]
    check_records_disjoint(beats)  # must not raise


def test_records_missing_from_the_data_are_reported(params):
    beats = beats_table({"101": LABELS, "106": LABELS, "100": LABELS})
    params["split"]["validation"]["records"] = [106]
    out, report = assign_splits(beats, params["split"])
    assert "108" in report["missing_records"]
    assert _records(out, "train") == {"101"}


def test_empty_part_is_an_error(params):
    beats = beats_table({"101": LABELS, "106": LABELS})
    params["split"]["validation"]["records"] = [106]
    with pytest.raises(ValueError, match=r"no beats in \['test'\]"):
        assign_splits(beats, params["split"])


def test_unknown_scheme_is_an_error(params, mitdb_like_beats):
    params["split"]["scheme"] = "random"
    with pytest.raises(ValueError, match="scheme"):
        assign_splits(mitdb_like_beats, params["split"])
