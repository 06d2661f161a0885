"""Record inference and the pyfunc input table."""

from __future__ import annotations

import numpy as np
import pytest

from medlstm.models.ecg_autoencoder import LSTMAutoencoderClassifier
from medlstm.models.rhythm_bilstm import RhythmBiLSTM
from medlstm.pipelines.ecg_autoencoder.inference import (
    classifier_input,
    classify_beats,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.recording_report import beat_table
from medlstm.pipelines.ecg_autoencoder.rhythm import rhythm_probabilities
from medlstm.pipelines.ecg_autoencoder.training import predict_beats
from tests.pipelines.ecg_autoencoder.conftest import make_record


@pytest.fixture
def segmented(params):
    params["ingestion"].update(samples_before=24, samples_after=40, target_fs=100)
    record = make_record(fs=100.0, seconds=10.0, symbols=["N", "V"])
    beats, windows, _ = segment_records({"900": record}, params["ingestion"])
    return beats, windows


def test_classifier_input_has_rr_and_window_columns(segmented, params):
    beats, windows = segmented
    table = classifier_input(beats, windows, params["features"])
    rr = params["features"]["rr_columns"]
    assert list(table.columns[: 2 + len(rr)]) == ["record", "sample", *rr]
    assert table.columns[2 + len(rr)] == "w000" and table.columns[-1] == "w063"
    np.testing.assert_array_equal(
        table.filter(like="w0").to_numpy(), windows["windows"]
    )


def _rhythm_model(params) -> RhythmBiLSTM:
    rr = params["features"]["rr_columns"]
    inputs = {
        "features": params["features"],
        "sequence_length": 4,
        "prediction_stride": 2,
    }
    return RhythmBiLSTM(
        seq_len=64, n_context=len(rr), channels=[4], hidden_size=8, inputs=inputs
    ).eval()


def test_classify_beats_matches_direct_prediction(segmented, params):
    beats, windows = segmented
    mapping = params["ingestion"]["label_mapping"]
    model = LSTMAutoencoderClassifier(
        seq_len=64,
        n_rr_features=len(params["features"]["rr_columns"]),
        hidden_size=8,
        latent_size=4,
    ).eval()
    rhythm = _rhythm_model(params)
    table = classifier_input(beats, windows, params["features"])

    out = classify_beats(
        model, rhythm, table, params["features"], mapping, "autoencoder"
    )
    direct, _, _ = predict_beats(
        model, beats, windows["windows"], params["features"], list(mapping)
    )
    np.testing.assert_allclose(out["recon_error"], direct["recon_error"], rtol=1e-5)
    assert out["predicted"].tolist() == direct["predicted"].tolist()
    # With the rhythm model the classes are its own; the error stays the autoencoder's.
    by_rhythm = classify_beats(model, rhythm, table, params["features"], mapping)
    probs = rhythm_probabilities(rhythm, beats, windows["windows"])
    np.testing.assert_allclose(
        by_rhythm[[f"p_{c}" for c in mapping]].to_numpy(), probs, rtol=1e-5
    )
    np.testing.assert_allclose(
        by_rhythm["recon_error"], direct["recon_error"], rtol=1e-5
    )
    with pytest.raises(ValueError, match="no window columns"):
        classify_beats(
            model, rhythm, table[["record", "sample"]], params["features"], mapping
        )
    with pytest.raises(ValueError, match="inference.classifier' is 'cnn'"):
        classify_beats(model, rhythm, table, params["features"], mapping, "cnn")


def test_a_noise_flag_inside_a_run_stays_and_its_neighbours_are_classified(
    segmented, params
):
    beats, windows = segmented
    mapping = params["ingestion"]["label_mapping"]
    noisy = beats.assign(noise=np.arange(len(beats)) == len(beats) // 2)
    model = LSTMAutoencoderClassifier(
        seq_len=64,
        n_rr_features=len(params["features"]["rr_columns"]),
        hidden_size=8,
        latent_size=4,
    ).eval()
    table = classifier_input(noisy, windows, params["features"])
    classified = classify_beats(
        model, _rhythm_model(params), table, params["features"], mapping
    )
    report = {"target_fs": 100.0, "records": {"900": {"fs": 100.0}}}
    out = beat_table(classified, noisy, report)
    assert out["class"].tolist().count("noise") == 1
    assert out["class"].iloc[len(beats) // 2] == "noise"
    assert set(out["class"].drop(index=len(beats) // 2)) <= set(mapping)
