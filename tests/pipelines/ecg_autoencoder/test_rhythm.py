"""The rhythm model: runs of consecutive beats, their RR context, training and
prediction through the shared core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medlstm.core.persistence import load_model, save_model
from medlstm.models.rhythm_bilstm import RhythmBiLSTM
from medlstm.pipelines.ecg_autoencoder.ingestion import segment_records
from medlstm.pipelines.ecg_autoencoder.noisy_copies import train_rhythm_with_copies
from medlstm.pipelines.ecg_autoencoder.rhythm import (
    BeatRuns,
    check_rhythm_params,
    context_matrix,
    predict_test_rhythm,
    record_runs,
    rhythm_probabilities,
    run_index,
    run_starts,
    train_rhythm,
)
from tests.pipelines.ecg_autoencoder.conftest import make_record

TINY = {
    "sequence_length": 8,
    "training_stride": 4,
    "prediction_stride": 4,
    "model": {
        "channels": [4, 8],
        "input_stride": 2,
        "hidden_size": 8,
        "head_hidden": 8,
    },
    "loss": {"focal_gamma": 0.0},
    "training": {
        "epochs": 2,
        "batch_size": 4,
        "lr": 0.01,
        "class_weighting": "sqrt_balanced",
        "seed": 3,
        "show_progress": False,
    },
}


def _tiny_params(**changes):
    return {**TINY, **changes}


@pytest.fixture
def rhythm_data(params):
    """Beats of synthetic records: N with a premature V every fifth beat, split by
    record; the test record is shorter than one run."""
    params["ingestion"].update(samples_before=24, samples_after=40, target_fs=100)
    times = {
        rid: np.cumsum(np.tile([0.8, 0.8, 0.8, 0.8, 0.5], 6)) + 0.3
        for rid in ("900", "901", "902")
    }
    records = {
        rid: make_record(
            rid,
            fs=100.0,
            seconds=float(t[-1] + 1.0),
            symbols=["N", "N", "N", "N", "V"],
            beat_times=t,
        )
        for rid, t in times.items()
    }
    records["903"] = make_record("903", fs=100.0, seconds=4.0, symbols=["N", "V"])
    beats, windows, _ = segment_records(records, params["ingestion"])
    beats["split"] = beats["record"].map(
        {"900": "train", "901": "train_unused", "902": "val", "903": "test"}
    )
    return beats, windows, params


def test_runs_cover_every_beat_and_end_at_the_last():
    assert run_starts(20, 8, 4) == [0, 4, 8, 12]
    assert run_starts(21, 8, 4) == [0, 4, 8, 12, 13]
    assert run_starts(5, 8, 4) == [0]
    index = run_index([21, 5], 8, 4)
    covered = np.unique(index[index >= 0])
    assert covered.tolist() == list(range(26))
    # The short record is one run padded at its end; no run holds two records.
    assert index[-1].tolist() == [21, 22, 23, 24, 25, -1, -1, -1]
    assert all(((run < 21) | (run < 0)).all() for run in index[:-1])


def test_record_runs_follow_the_samples_whatever_the_row_order():
    beats = pd.DataFrame(
        {"record": ["b", "a", "b", "a", "a"], "sample": [50, 30, 10, 10, 20]}
    )
    runs = record_runs(beats, np.arange(5))
    assert [beats["record"].iloc[r].unique().tolist() for r in runs] == [["a"], ["b"]]
    assert [beats["sample"].iloc[r].tolist() for r in runs] == [[10, 20, 30], [10, 50]]


def test_the_context_is_each_beats_rr_features_in_run_order():
    beats = pd.DataFrame(
        {"record": ["b", "a", "a"], "sample": [5, 20, 10], "pre_rr": [0.5, 0.9, 7.0]}
    )
    runs = record_runs(beats, np.arange(3))
    inputs = {"features": {"rr_columns": ["pre_rr"], "rr_clip": 5.0}}
    context = context_matrix(beats, runs, inputs)
    np.testing.assert_allclose(
        context[:, 0], [5.0, 0.9, 0.5]
    )  # a@10 clipped, a@20, b@5


def test_padding_changes_no_prediction_of_a_run():
    torch.manual_seed(0)
    model = RhythmBiLSTM(
        seq_len=16, n_context=2, channels=[4], input_stride=1, hidden_size=8
    )
    model.eval()
    x, context = torch.randn(1, 5, 16), torch.randn(1, 5, 2)
    alone = model(x, context, torch.ones(1, 5, dtype=torch.bool))
    padded = model(
        torch.cat([x, torch.randn(1, 3, 16)], 1),
        torch.cat([context, torch.randn(1, 3, 2)], 1),
        torch.tensor([[True] * 5 + [False] * 3]),
    )
    assert padded.shape == (1, 8, 5)
    torch.testing.assert_close(padded[:, :5], alone)


def test_a_beat_is_labelled_with_context_from_both_sides():
    torch.manual_seed(0)
    model = RhythmBiLSTM(
        seq_len=16, n_context=1, channels=[4], input_stride=1, hidden_size=8
    ).eval()
    x, context = torch.randn(1, 6, 16), torch.randn(1, 6, 1)
    mask = torch.ones(1, 6, dtype=torch.bool)
    before = model(x, context, mask)
    later = context.clone()
    later[0, 5] += 3.0  # change the last beat only
    after = model(x, later, mask)
    assert not torch.allclose(before[0, 0], after[0, 0])  # reaches the first beat


def test_the_rhythm_model_trains_predicts_and_reloads(rhythm_data, tmp_path):
    beats, windows, params = rhythm_data
    mapping = params["ingestion"]["label_mapping"]
    model, history = train_rhythm(beats, windows, TINY, params["features"], mapping)
    assert [row["epoch"] for row in history] == [1, 2]
    predictions = predict_test_rhythm(model, beats, windows, mapping)
    test = beats[beats["split"] == "test"]
    # The test record is shorter than one run and still has every beat labelled.
    assert len(test) < TINY["sequence_length"]
    assert predictions["sample"].tolist() == test["sample"].tolist()
    probs = predictions[[f"p_{c}" for c in mapping]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    path = tmp_path / "rhythm.pt"
    save_model(model, path)
    again = load_model(path)
    np.testing.assert_allclose(
        rhythm_probabilities(again, test, windows["windows"][test.index]),
        probs,
        atol=1e-6,
    )


def test_training_repeats_with_its_seed_and_uses_every_training_beat(
    rhythm_data, caplog
):
    beats, windows, params = rhythm_data
    mapping = params["ingestion"]["label_mapping"]
    with caplog.at_level("INFO"):
        _, first = train_rhythm(beats, windows, TINY, params["features"], mapping)
    _, second = train_rhythm(beats, windows, TINY, params["features"], mapping)
    drop = ("epoch_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in first] == [
        {k: v for k, v in r.items() if k not in drop} for r in second
    ]
    n_train = int(beats["split"].isin(["train", "train_unused"]).sum())
    assert f"from 2 training records ({n_train} beats)" in caplog.text


def test_probabilities_do_not_depend_on_the_row_order(rhythm_data):
    beats, windows, params = rhythm_data
    mapping = params["ingestion"]["label_mapping"]
    model, _ = train_rhythm(beats, windows, TINY, params["features"], mapping)
    rows = np.flatnonzero(beats["split"].isin(["val", "test"]).to_numpy())
    part = beats.iloc[rows].reset_index(drop=True)
    probs = rhythm_probabilities(model, part, windows["windows"][rows])
    shuffle = np.random.default_rng(1).permutation(len(part))
    shuffled = rhythm_probabilities(
        model, part.iloc[shuffle], windows["windows"][rows][shuffle]
    )
    np.testing.assert_allclose(shuffled, probs[shuffle], atol=1e-6)


def test_records_of_one_class_only_train_and_score(rhythm_data):
    beats, windows, params = rhythm_data
    only_n = beats.assign(label="N")
    model, _ = train_rhythm(
        only_n, windows, TINY, params["features"], params["ingestion"]["label_mapping"]
    )
    predictions = predict_test_rhythm(
        model, only_n, windows, params["ingestion"]["label_mapping"]
    )
    assert len(predictions) == int((only_n["split"] == "test").sum())


def test_beat_runs_pad_with_no_label():
    runs = BeatRuns(
        np.ones((3, 4), np.float32),
        np.ones((3, 2), np.float32),
        np.array([[0, 1, 2, -1]]),
        np.array([0, 1, 2]),
    )
    x, context, mask, y = runs[0]
    assert mask.tolist() == [True, True, True, False]
    assert y.tolist() == [0, 1, 2, -100]
    assert x[3].abs().sum() == 0 and context[3].abs().sum() == 0
    assert runs.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"context": ["rr_median"]}, "Unknown parameter.*rhythm.context"),
        ({"training_stride": 9}, "training_stride' \\(9\\) must not exceed"),
        ({"sequence_length": 0}, "sequence_length' must be an integer >= 1"),
        ({"seq_len": 64}, "seq_len"),
        (
            {"training": {"weighted_sampling": True}},
            "weighted_sampling' cannot be true",
        ),
    ],
)
def test_bad_rhythm_parameters_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        check_rhythm_params(_tiny_params(**change))


def test_noisy_copies_train_as_records_of_their_own(rhythm_data, caplog):
    beats, windows, params = rhythm_data
    mapping = params["ingestion"]["label_mapping"]
    own = (beats["record"] == "900").to_numpy()
    copies = beats[own].assign(record="900~em0", split="train").reset_index(drop=True)
    copy_windows = {
        "windows": windows["windows"][own],
        "record": copies["record"].to_numpy(dtype=str),
        "sample": copies["sample"].to_numpy(dtype=np.int64),
    }
    none = copies.iloc[:0]
    empty = {k: v[:0] for k, v in copy_windows.items()}
    n_train = int(beats["split"].isin(["train", "train_unused"]).sum())
    with caplog.at_level("INFO"):
        _, without = train_rhythm_with_copies(
            beats, windows, none, empty, TINY, params["features"], mapping
        )
    assert f"from 2 training records ({n_train} beats)" in caplog.text
    _, plain = train_rhythm(beats, windows, TINY, params["features"], mapping)
    drop = ("epoch_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in without] == [
        {k: v for k, v in r.items() if k not in drop} for r in plain
    ]
    caplog.clear()
    with caplog.at_level("INFO"):
        train_rhythm_with_copies(
            beats, windows, copies, copy_windows, TINY, params["features"], mapping
        )
    assert f"from 3 training records ({n_train + len(copies)} beats)" in caplog.text
