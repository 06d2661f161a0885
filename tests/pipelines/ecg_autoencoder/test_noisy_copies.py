"""Noisy copies of the training records for the rhythm model, on the shipped excerpts."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlstm.datasets.wfdb_records import WfdbRecordsDataset
from medlstm.pipelines.ecg_autoencoder.ingestion import segment_records
from medlstm.pipelines.ecg_autoencoder.noisy_copies import (
    noisy_training_copies,
    training_noise,
)

RAW = Path(__file__).parents[3] / "data" / "01_raw"
TRAINING, VALIDATION, TEST = "108", "101", "100"


@pytest.fixture(scope="module")
def excerpt():
    """Three 10-minute MIT-BIH excerpt records (one per part) cut into beats, and
    the noise records."""
    mitdb = WfdbRecordsDataset(
        str(RAW / "mitdb_excerpt"), records=[TRAINING, VALIDATION, TEST]
    ).load()
    noise = WfdbRecordsDataset(str(RAW / "nstdb_noise_excerpt"), annotation=None).load()
    return mitdb, noise


@pytest.fixture
def split(excerpt, params):
    mitdb, _ = excerpt
    beats, windows, _ = segment_records(mitdb, params["ingestion"])
    beats.insert(1, "database", "mitdb")
    part = {TRAINING: "train", VALIDATION: "val", TEST: "test"}
    beats["split"] = beats["record"].map(part)
    return beats, windows


def _copies(excerpt, params, split, **changes):
    mitdb, noise = excerpt
    block = {**params["rhythm"]["noisy_copies"], "enabled": True, **changes}
    return noisy_training_copies(
        split[0],
        mitdb,
        noise,
        params["ingestion"],
        params["databases"],
        params["detection"],
        block,
    )


def test_training_noise_takes_the_other_channel_half_a_record_later(excerpt):
    _, noise = excerpt
    used = training_noise(noise["em"])
    first, second = noise["em"].signals.values()
    assert list(used.signals) == ["noise2", "noise1"]
    half = len(first) // 2
    np.testing.assert_array_equal(used.signals["noise2"][half:], second[:-half])
    np.testing.assert_array_equal(used.signals["noise1"][:half], first[-half:])


def test_only_the_training_record_gets_a_noisy_copy(excerpt, params, split):
    beats, _ = split
    added, arrays = _copies(
        excerpt, params, split, snr_db=[0.0], sources=["em"], false_detection_label="Q"
    )
    assert list(added.columns) == list(beats.columns)
    assert added["record"].unique().tolist() == [f"{TRAINING}~em0"]
    assert set(added["split"]) == {"train"} and set(added["database"]) == {"mitdb"}
    assert len(arrays["windows"]) == len(added) == len(arrays["record"])
    assert arrays["windows"].shape[1] == split[1]["windows"].shape[1]
    assert arrays["record"].tolist() == added["record"].tolist()
    # The first 5 minutes are clean: there the copy's beats are the record's.
    original = beats[beats["record"] == TRAINING]
    assert abs(len(added) - len(original)) < 0.2 * len(original)
    # Each copy beat of the clean first minutes is the reference beat it sits on.
    clean = added[added["sample"] < 300 * 360]
    ref = original[["sample", "label"]].to_numpy()
    nearest = np.abs(
        clean["sample"].to_numpy()[:, None] - ref[:, 0][None, :].astype(int)
    )
    on_a_beat = nearest.min(axis=1) <= 0.15 * 360
    assert on_a_beat.mean() > 0.99
    labels = ref[nearest.argmin(axis=1), 1]
    assert (clean["label"].to_numpy()[on_a_beat] == labels[on_a_beat]).all()
    # At 0 dB electrode motion the detector takes noise for beats: labelled Q.
    assert (added["label"] == "Q").sum() > 10
    assert set(added["label"]) <= set(params["ingestion"]["label_mapping"])


def test_copies_repeat_with_their_seed_and_draw_the_snr(excerpt, params, split):
    first, _ = _copies(excerpt, params, split, snr_db=[0.0, 12.0], seed=3)
    again, _ = _copies(excerpt, params, split, snr_db=[0.0, 12.0], seed=3)
    pd.testing.assert_frame_equal(first, again)
    names = {
        seed: _copies(excerpt, params, split, snr_db=[0.0, 12.0], seed=seed)[0][
            "record"
        ].iloc[-1]
        for seed in range(6)
    }
    assert set(names.values()) == {f"{TRAINING}~em0", f"{TRAINING}~em12"}


def test_disabled_makes_no_copy(excerpt, params, split):
    beats, windows = split
    out, arrays = _copies(excerpt, params, split, enabled=False)
    assert out.empty and list(out.columns) == list(beats.columns)
    assert arrays["windows"].shape == (0, windows["windows"].shape[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"false_detection_label": "X"},
            "'ecg_autoencoder.rhythm.noisy_copies.false_detection_label' ('X') must "
            "be one of the classes",
        ),
        (
            {"sources": ["bw"]},
            "'ecg_autoencoder.rhythm.noisy_copies.sources' names ['bw'], which the "
            "catalog entry ecg_noise_records does not hold",
        ),
        ({"snr_db": []}, "'ecg_autoencoder.rhythm.noisy_copies.snr_db' must"),
        ({"enabled": "yes"}, "'ecg_autoencoder.rhythm.noisy_copies.enabled' must"),
        ({"snr": [6]}, "ecg_autoencoder.rhythm.noisy_copies.snr;"),
    ],
)
def test_bad_parameters_are_named(excerpt, params, split, change, message):
    with pytest.raises(ValueError) as err:
        _copies(excerpt, params, split, **change)
    assert message in str(err.value)


def test_a_missing_key_is_named(excerpt, params, split):
    params = copy.deepcopy(params)
    del params["rhythm"]["noisy_copies"]["seed"]
    with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
        _copies(excerpt, params, split)


def test_a_record_shorter_than_the_clean_learning_period_is_not_copied(
    excerpt, params, split, caplog
):
    mitdb, noise = excerpt
    short = dict(mitdb)
    record = mitdb[TRAINING]
    n = int(200 * record.fs)
    short[TRAINING] = dataclasses.replace(
        record, signals={lead: x[:n] for lead, x in record.signals.items()}
    )
    beats, _ = split
    with caplog.at_level(logging.WARNING):
        out, _ = noisy_training_copies(
            beats,
            short,
            noise,
            params["ingestion"],
            params["databases"],
            params["detection"],
            {**params["rhythm"]["noisy_copies"], "enabled": True},
        )
    assert out.empty
    assert f"['{TRAINING}']" in caplog.text and "no longer than" in caplog.text
