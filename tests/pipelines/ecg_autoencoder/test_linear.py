"""The linear baseline: features, a JSON model that loads without code, predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.linear import (
    RR_FEATURES,
    linear_probabilities,
    morphology_features,
    predict_test_linear,
    predict_val_linear,
    train_linear,
)
from tests.pipelines.ecg_autoencoder.conftest import make_record


@pytest.fixture
def data(params):
    records = {
        rid: make_record(rid, seconds=30.0, symbols=["N", "N", "N", "V"])
        for rid in ("900", "901", "902")
    }
    beats, windows, _ = segment_records(records, params["ingestion"])
    beats["split"] = beats["record"].map({"900": "train", "901": "val", "902": "test"})
    return beats, windows


def test_morphology_features_measure_the_qrs():
    fs, before = 100.0, 20
    t = (np.arange(60) - before) / fs
    narrow = np.exp(-0.5 * (t / 0.01) ** 2)
    wide = 2.0 * np.exp(-0.5 * (t / 0.03) ** 2)
    values, names = morphology_features(np.stack([narrow, wide]), before, fs, 6)
    col = {n: values[:, i] for i, n in enumerate(names)}
    assert col["qrs_max"].tolist() == pytest.approx([1.0, 2.0])
    assert col["qrs_width"][1] > 2 * col["qrs_width"][0]
    assert values.shape == (2, 4 + 6)


def test_linear_model_separates_wide_beats_and_round_trips_as_json(data, params):
    beats, windows = data
    mapping = params["ingestion"]["label_mapping"]
    model = train_linear(beats, windows, params["linear"], params["ingestion"], mapping)
    assert model["features"][: len(RR_FEATURES)] == list(RR_FEATURES)
    loaded = json.loads(json.dumps(model))  # what the catalog stores and reads back
    test = predict_test_linear(loaded, beats, windows)
    truth = beats.loc[beats["split"] == "test", "label"].to_numpy()
    assert (
        test["sample"].tolist()
        == beats.loc[beats["split"] == "test", "sample"].tolist()
    )
    assert (test["predicted"].to_numpy() == truth).mean() == 1.0
    probs = test[[f"p_{c}" for c in mapping]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert set(predict_val_linear(loaded, beats, windows)["record"]) == {"901"}


def test_stored_scores_equal_scikit_learns_probabilities(data, params):
    """The JSON model is the fitted logistic regression, not an approximation."""
    beats, windows = data
    mapping = params["ingestion"]["label_mapping"]
    model = train_linear(beats, windows, params["linear"], params["ingestion"], mapping)
    train = beats["split"].to_numpy() == "train"
    from medlstm.pipelines.ecg_autoencoder.linear import beat_features

    x, _ = beat_features(
        beats[train], windows["windows"][train], params["ingestion"], params["linear"]
    )
    z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
    y = beats.loc[train, "label"].map({c: i for i, c in enumerate(mapping)})
    reference = LogisticRegression(class_weight="balanced", max_iter=2000).fit(z, y)
    ours = linear_probabilities(model, beats[train], windows["windows"][train])
    present = reference.classes_
    np.testing.assert_allclose(ours[:, present], reference.predict_proba(z), atol=1e-6)


def test_lda_and_bad_choices(data, params):
    beats, windows = data
    mapping = params["ingestion"]["label_mapping"]
    lda = train_linear(
        beats,
        windows,
        {**params["linear"], "model": "lda"},
        params["ingestion"],
        mapping,
    )
    assert lda["model"] == "lda"
    assert (
        len(predict_test_linear(lda, beats, windows))
        == (beats["split"] == "test").sum()
    )
    with pytest.raises(ValueError, match=r"ecg_autoencoder\.linear\.model' is 'svm'"):
        train_linear(
            beats,
            windows,
            {**params["linear"], "model": "svm"},
            params["ingestion"],
            mapping,
        )
