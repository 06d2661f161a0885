"""Several databases through one ingestion: SVDB beside MIT-BIH, and its partition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_databases,
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.preprocessing import (
    resample,
)
from medlstm.pipelines.ecg_autoencoder.reporting import evaluate
from medlstm.pipelines.ecg_autoencoder.splitting import (
    assign_splits,
    check_records_disjoint,
    partition_by_burden,
)
from tests.pipelines.ecg_autoencoder.conftest import beats_table, make_record

SVDB = Path(__file__).parents[3].parent / "shared" / "data" / "svdb"


def _databases(params):
    mitdb = {"100": make_record("100", symbols=["N", "N", "V"])}
    svdb = {
        "800": make_record(
            "800", fs=128.0, symbols=["N", "A", "B"], leads=("ECG1", "ECG2")
        ),
        "801": make_record("801", fs=128.0, leads=("ECG2",)),  # no ECG1
    }
    # SVDB's ECG1 is drawn like MLII here: the spike is positive in the chosen lead.
    svdb["800"].signals["ECG1"][:] = make_record(
        "x", fs=128.0, symbols=["N", "A", "B"]
    ).signals["MLII"]
    return mitdb, svdb


def test_svdb_joins_mitdb_with_its_own_lead_prefix_rate_and_a_database_column(params):
    mitdb, svdb = _databases(params)
    ingestion = {**params["ingestion"], "subtract_template": False}
    beats, windows, report = segment_databases(
        mitdb, svdb, ingestion, params["databases"]
    )
    assert list(beats.columns[:2]) == ["record", "database"]
    assert set(beats["record"]) == {"100", "svdb_800"}  # 801 has no ECG1: skipped
    assert report["skipped_records"] == {"svdb_801": "no lead ECG1"}
    by_db = beats.groupby("database")["lead"].unique()
    assert list(by_db["mitdb"]) == ["MLII"] and list(by_db["svdb"]) == ["ECG1"]
    # 128 Hz beats moved to 360 Hz with their annotations: the window is centred
    # on the spike at the new rate.
    svdb_rows = np.flatnonzero(beats["database"].to_numpy() == "svdb")
    before = params["ingestion"]["samples_before"]
    centre = windows["windows"][svdb_rows][:, before - 3 : before + 4]
    assert (centre.max(axis=1) > 0.5).all()
    original = svdb["800"].ann_samples[svdb["800"].ann_symbols != "+"]
    assert np.isin(beats.loc[svdb_rows, "sample"], np.round(original * 360 / 128)).all()
    # 'B' (bundle-branch-block beat) is AAMI N.
    assert set(beats.loc[beats["symbol"] == "B", "label"]) == {"N"}
    assert report["databases"]["svdb"]["n_beats"] == len(svdb_rows)
    np.testing.assert_array_equal(
        windows["record"], beats["record"].to_numpy(dtype=str)
    )


def test_same_record_ids_in_two_databases_are_refused(params):
    mitdb, svdb = _databases(params)
    params["databases"]["svdb"]["record_prefix"] = ""
    svdb = {"100": make_record("100", leads=("ECG1",))}
    with pytest.raises(ValueError, match=r"\['100'\].*record_prefix"):
        segment_databases(mitdb, svdb, params["ingestion"], params["databases"])


def test_missing_lead_error_names_the_record_and_its_leads(params):
    record = make_record("801", leads=("ECG2",))
    with pytest.raises(ValueError, match=r"801 has no lead ECG1 or MLII.*'ECG2'"):
        segment_records(
            {"801": record},
            {**params["ingestion"], "lead": ["ECG1", "MLII"], "missing_lead": "error"},
        )


def test_a_rate_the_resampler_cannot_handle_names_the_record():
    record = make_record("803", fs=359.7)
    with pytest.raises(ValueError, match=r"record 803: cannot resample 359.7 Hz"):
        resample(record.signals["MLII"], record.ann_samples, 359.7, 360.0, record)
    with pytest.raises(ValueError, match=r"record 803: sampling rate 0"):
        resample(record.signals["MLII"], record.ann_samples, 0.0, 360.0, record)


def _two_database_beats(params) -> pd.DataFrame:
    cfg = params["split"]
    mitdb = [
        str(r) for r in cfg["inter_patient"]["train"] + cfg["inter_patient"]["test"]
    ]
    svdb = cfg["svdb"]["train"] + cfg["svdb"]["val"] + cfg["svdb"]["test"]
    beats = beats_table({r: ["N"] * 4 + ["S"] for r in mitdb + svdb})
    beats["database"] = np.where(
        beats["record"].str.startswith("svdb_"), "svdb", "mitdb"
    )
    return beats


@pytest.mark.parametrize("scheme", ["inter_patient", "inter_patient_svdb"])
def test_protocols_place_every_svdb_part_and_keep_patients_apart(params, scheme):
    params["split"]["scheme"] = scheme
    out, report = assign_splits(_two_database_beats(params), params["split"])
    svdb = params["split"]["svdb"]
    parts = {
        p: set(out.loc[out["split"] == p, "record"]) for p in ("train", "val", "test")
    }
    assert set(svdb["val"]) <= parts["val"] and set(svdb["test"]) <= parts["test"]
    ds2 = {str(r) for r in params["split"]["inter_patient"]["test"]}
    assert parts["test"] == ds2 | set(svdb["test"])
    if scheme == "inter_patient_svdb":
        assert set(svdb["train"]) <= parts["train"]
    else:
        assert not set(svdb["train"]) & (parts["train"] | parts["val"] | parts["test"])
    check_records_disjoint(out)
    assert report["scheme"] == scheme and report["patient_wise"]


def test_an_svdb_record_in_two_parts_is_refused(params):
    params["split"]["svdb"]["test"].append(params["split"]["svdb"]["val"][0])
    with pytest.raises(ValueError, match="in both val and test"):
        assign_splits(_two_database_beats(params), params["split"])


def test_mitdb_only_schemes_exclude_svdb(params):
    params["split"]["scheme"] = "intra_patient"
    out, _ = assign_splits(_two_database_beats(params), params["split"])
    assert set(out.loc[out["database"] == "svdb", "split"]) == {"excluded"}


def test_partition_is_disjoint_complete_seeded_and_stratified():
    burden = pd.Series({f"r{i:02d}": i / 100 for i in range(42)})
    shares = {"train": 2, "val": 1, "test": 1}
    parts = partition_by_burden(burden, shares, seed=1)
    every = [r for p in parts.values() for r in p]
    assert sorted(every) == sorted(burden.index) and len(set(every)) == len(every)
    assert parts == partition_by_burden(burden, shares, seed=1)
    assert parts != partition_by_burden(burden, shares, seed=2)
    # Each block of four records of similar burden gives each part its share.
    order = sorted(burden.index, key=lambda r: burden[r])
    for start in range(0, 40, 4):
        block = set(order[start : start + 4])
        assert [len(block & set(parts[p])) for p in shares] == [2, 1, 1]


@pytest.mark.skipif(not SVDB.is_dir(), reason="needs ../shared/data/svdb")
def test_the_parameters_hold_the_partition_the_script_derives(params):
    from medlstm.excerpts.svdb_partition import svdb_partition

    assert svdb_partition(SVDB) == params["split"]["svdb"]


def test_metrics_never_pool_databases(params):
    classes = list(params["ingestion"]["label_mapping"])
    rows = []
    for db, correct in (("mitdb", True), ("svdb", False)):
        for i, label in enumerate(["N", "N", "S", "V"]):
            predicted = label if correct else "N"
            rows.append(
                {
                    "record": f"{db}{i}",
                    "database": db,
                    "label": label,
                    "predicted": predicted,
                }
                | {f"p_{c}": float(c == predicted) for c in classes}
            )
    metrics = evaluate(pd.DataFrame(rows), params["ingestion"]["label_mapping"])
    assert metrics["database"] == "mitdb" and metrics["accuracy"] == 1.0
    assert metrics["by_database"]["svdb"]["accuracy"] == 0.5
    assert metrics["by_database"]["mitdb"]["accuracy"] == 1.0
