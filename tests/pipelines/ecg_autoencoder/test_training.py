"""Model inputs, losses, training through the shared core, prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from medlstm.core.persistence import load_model, save_model
from medlstm.models.cnn1d import CNN1DClassifier
from medlstm.models.ecg_autoencoder import (
    LSTMAutoencoderClassifier,
    LSTMAutoencoderEnsemble,
)
from medlstm.pipelines.ecg_autoencoder.ingestion import (
    segment_records,
)
from medlstm.pipelines.ecg_autoencoder.losses import (
    autoencoder_loss,
    focal_cross_entropy,
)
from medlstm.pipelines.ecg_autoencoder.training import (
    check_aligned,
    ensemble_seeds,
    label_indices,
    member_block,
    predict_test,
    predict_test_autoencoder,
    rr_matrix,
    rr_statistics,
    train_autoencoder,
    train_cnn,
)
from tests.conftest import requires_bf16
from tests.pipelines.ecg_autoencoder.conftest import make_record

TINY_TRAINING = {
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.005,
    "class_weighting": "balanced",
    "monitor": "val_macro_f1",
    "monitor_mode": "max",
    "seed": 7,
    "show_progress": False,
}


@pytest.fixture
def tiny_data(params):
    """Beats from synthetic records (N and wide V beats), split by record."""
    params["ingestion"].update(samples_before=24, samples_after=40, target_fs=100)
    records = {
        rid: make_record(rid, fs=100.0, seconds=12.0, symbols=["N", "N", "V"])
        for rid in ("900", "901", "902")
    }
    beats, windows, _ = segment_records(records, params["ingestion"])
    beats["split"] = beats["record"].map({"900": "train", "901": "val", "902": "test"})
    return beats, windows


@pytest.fixture
def ae_params():
    return {
        "model": {"hidden_size": 8, "latent_size": 4, "head_hidden": 8},
        "training": dict(TINY_TRAINING),
        "loss": {"focal_gamma": 0.0},
    }


def test_focal_loss_with_gamma_zero_is_weighted_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    w = torch.tensor([0.5, 2.0, 1.0])
    torch.testing.assert_close(
        focal_cross_entropy(logits, y, w), F.cross_entropy(logits, y, weight=w)
    )
    assert focal_cross_entropy(logits, y, w, gamma=2.0) < F.cross_entropy(
        logits, y, weight=w
    )


def test_autoencoder_loss_weights_mse_and_cross_entropy():
    torch.manual_seed(0)
    model = LSTMAutoencoderClassifier(
        seq_len=8,
        n_classes=2,
        n_rr_features=1,
        hidden_size=4,
        latent_size=2,
        head_hidden=4,
    )
    model.eval()  # no dropout, so both forward passes agree
    batch = (torch.randn(4, 8), torch.rand(4, 1), torch.tensor([0, 1, 0, 1]))
    recon, logits = model(batch[0], batch[1])
    mse, ce = F.mse_loss(recon, batch[0]), F.cross_entropy(logits, batch[2])

    out = autoencoder_loss(2.0, 0.5)(model, batch)
    torch.testing.assert_close(out.loss, 2.0 * mse + 0.5 * ce)
    torch.testing.assert_close(autoencoder_loss(0.0, 1.0)(model, batch).loss, ce)
    assert out.logits.shape == (4, 2)
    with pytest.raises(ValueError, match="alpha and beta"):
        autoencoder_loss(0.0, 0.0)


def test_rr_matrix_clips_and_checks_columns():
    beats = pd.DataFrame({"a": [0.5, 50.0], "b": [1.0, 1.0]})
    x = rr_matrix(beats, {"rr_columns": ["a", "b"], "rr_clip": 5.0})
    np.testing.assert_array_equal(x, [[0.5, 1.0], [5.0, 1.0]])
    assert x.dtype == np.float32 and x.flags.writeable
    with pytest.raises(ValueError, match=r"\['c'\] are not in the beat table"):
        rr_matrix(beats, {"rr_columns": ["c"]})


def test_label_indices_refuses_unknown_labels():
    np.testing.assert_array_equal(
        label_indices(pd.Series(["V", "N"]), ["N", "V"]), [1, 0]
    )
    with pytest.raises(ValueError, match=r"\['X'\]"):
        label_indices(pd.Series(["X"]), ["N", "V"])


def test_misaligned_windows_are_an_error(tiny_data):
    beats, windows = tiny_data
    shuffled = {**windows, "sample": windows["sample"][::-1].copy()}
    with pytest.raises(ValueError, match="do not describe the same beats"):
        check_aligned(beats, shuffled)


def test_autoencoder_trains_deterministically(tiny_data, ae_params, params):
    beats, windows = tiny_data
    args = (
        beats,
        windows,
        ae_params,
        params["features"],
        params["ingestion"]["label_mapping"],
        1.0,
        1.0,
    )
    model, history = train_autoencoder(*args)
    _, history_again = train_autoencoder(*args)

    assert isinstance(model, LSTMAutoencoderClassifier)
    assert model.config["seq_len"] == 64
    assert model.config["n_rr_features"] == len(params["features"]["rr_columns"])
    assert len(history) == 2 and {"train_loss", "val_loss", "val_macro_f1"} <= set(
        history[0]
    )
    assert [h["train_loss"] for h in history] == [
        h["train_loss"] for h in history_again
    ]


@pytest.mark.parametrize("which", ["autoencoder", "cnn"])
def test_rr_standardisation_is_fitted_on_the_training_beats_only(
    tiny_data, ae_params, params, which
):
    beats, windows = tiny_data
    features = {**params["features"], "rr_standardize": True}
    mapping = params["ingestion"]["label_mapping"]

    def train(table):
        if which == "cnn":
            cnn = {
                "model": {"channels": [4]},
                "training": dict(TINY_TRAINING, epochs=1),
            }
            return train_cnn(table, windows, cnn, features, mapping)[0]
        ae_params["training"]["epochs"] = 1
        return train_autoencoder(table, windows, ae_params, features, mapping, 1, 1)[0]

    model = train(beats)
    train_rr = rr_matrix(beats[beats["split"] == "train"], features)
    np.testing.assert_allclose(model.config["rr_mean"], train_rr.mean(0), rtol=1e-5)
    std = train_rr.std(0)
    np.testing.assert_allclose(
        model.config["rr_scale"], np.where(std > 1e-6, std, 1.0), rtol=1e-5
    )
    # Validation and test beats leave the statistics alone.
    shifted = beats.copy()
    held_out = shifted["split"] != "train"
    shifted.loc[held_out, features["rr_columns"]] *= 3.0
    assert train(shifted).config["rr_mean"] == model.config["rr_mean"]
    # Off: the model takes the RR features as they are.
    assert rr_statistics(beats, {**features, "rr_standardize": False}) == {}


def _train_twice(tiny_data, ae_params, params):
    beats, windows = tiny_data
    args = (beats, windows, ae_params, params["features"])
    mapping = params["ingestion"]["label_mapping"]
    _, history = train_autoencoder(*args, mapping, 1.0, 1.0)
    _, again = train_autoencoder(*args, mapping, 1.0, 1.0)
    assert np.isfinite(history[0]["train_loss"])
    assert history[0]["train_loss"] == again[0]["train_loss"]
    assert history[0]["val_loss"] == again[0]["val_loss"]
    return history


def test_oversampling_and_focal_loss_run_deterministically(
    tiny_data, ae_params, params
):
    ae_params["training"].update(weighted_sampling=True, epochs=1)
    ae_params["loss"].update(focal_gamma=2.0)
    _train_twice(tiny_data, ae_params, params)


@requires_bf16
def test_bf16_training_runs_deterministically_and_differs_from_fp32(
    tiny_data, ae_params, params
):
    ae_params["training"].update(epochs=1)
    fp32 = _train_twice(tiny_data, ae_params, params)
    ae_params["training"].update(precision="bf16")
    bf16 = _train_twice(tiny_data, ae_params, params)
    assert bf16[0]["train_loss"] != fp32[0]["train_loss"]
    assert bf16[0]["train_loss"] == pytest.approx(fp32[0]["train_loss"], rel=0.05)


def test_a_precision_left_in_the_loss_block_says_where_it_moved(
    tiny_data, ae_params, params
):
    beats, windows = tiny_data
    ae_params["loss"]["precision"] = "bf16"
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) \S*autoencoder\.loss\.precision \(precision is "
        r"now set in the training block: '\S*autoencoder\.training\.precision'\); "
        r"known: focal_gamma\.$",
    ):
        mapping = params["ingestion"]["label_mapping"]
        train_autoencoder(beats, windows, ae_params, params["features"], mapping, 1, 1)


def test_cnn_trains_and_predicts_the_test_split(tiny_data, params):
    beats, windows = tiny_data
    cnn = {"model": {"channels": [4, 8]}, "training": dict(TINY_TRAINING, epochs=3)}
    mapping = params["ingestion"]["label_mapping"]
    model, _ = train_cnn(beats, windows, cnn, params["features"], mapping)
    assert isinstance(model, CNN1DClassifier)

    predictions = predict_test(model, beats, windows, params["features"], mapping)
    test = beats[beats["split"] == "test"]
    assert predictions["sample"].tolist() == test["sample"].tolist()
    assert set(predictions["predicted"]) <= set(mapping)
    probs = predictions[[f"p_{c}" for c in mapping]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert "recon_error" not in predictions


def test_autoencoder_test_predictions_and_latent(tiny_data, ae_params, params):
    beats, windows = tiny_data
    mapping = params["ingestion"]["label_mapping"]
    ae_params["training"]["epochs"] = 1
    model, _ = train_autoencoder(
        beats, windows, ae_params, params["features"], mapping, 1.0, 1.0
    )

    predictions, latent = predict_test_autoencoder(
        model, beats, windows, params["features"], mapping
    )
    n_test = int((beats["split"] == "test").sum())
    assert len(predictions) == len(latent) == n_test
    assert (predictions["recon_error"] >= 0).all()
    assert [c for c in latent.columns if c.startswith("z_")] == [
        f"z_{i}" for i in range(4)
    ]
    assert latent["label"].tolist() == predictions["label"].tolist()


def test_checkpoint_fingerprint_covers_loss_weights_and_model_options(
    tiny_data, ae_params, params, monkeypatch
):
    """A checkpoint must not resume under another alpha or input_stride: neither
    changes a weight shape, so the core only knows them through fingerprint_extra."""
    from medlstm.core import training as core

    hashes = []
    real = core._fingerprint_hash
    monkeypatch.setattr(
        core, "_fingerprint_hash", lambda *a: hashes.append(real(*a)) or hashes[-1]
    )
    beats, windows = tiny_data
    ae_params["training"]["epochs"] = 1
    mapping = params["ingestion"]["label_mapping"]
    args = (beats, windows, ae_params, params["features"], mapping)
    train_autoencoder(*args, 1.0, 1.0)
    train_autoencoder(*args, 1.0, 1.0)
    train_autoencoder(*args, 2.0, 1.0)
    ae_params["model"]["input_stride"] = 2
    train_autoencoder(*args, 1.0, 1.0)
    assert hashes[0] == hashes[1]
    assert len(set(hashes)) == 3


def test_ensemble_averages_member_probabilities_and_concatenates_latents():
    torch.manual_seed(0)
    config = {"seq_len": 48, "n_rr_features": 2, "hidden_size": 8, "latent_size": 4,
              "head_hidden": 8, "input_stride": 3, "input_scale": 0.5}  # fmt: skip
    members = [LSTMAutoencoderClassifier(**config).eval() for _ in range(3)]
    ensemble = LSTMAutoencoderEnsemble.of(members).eval()
    x, rr = torch.randn(5, 48), torch.rand(5, 2)

    recon, logits, z = ensemble(x, rr, return_latent=True)
    outputs = [m(x, rr, return_latent=True) for m in members]
    mean_probs = torch.stack([F.softmax(o[1], -1) for o in outputs]).mean(0)
    torch.testing.assert_close(F.softmax(logits, -1), mean_probs)
    torch.testing.assert_close(recon, torch.stack([o[0] for o in outputs]).mean(0))
    assert z.shape == (5, 12)
    torch.testing.assert_close(z[:, 4:8], outputs[1][2])
    assert ensemble.input_scale == 0.5
    torch.testing.assert_close(ensemble.standardize(x), x / 0.5)


def test_ensemble_saves_and_loads_as_one_model(tmp_path):
    config = {"seq_len": 48, "n_rr_features": 2, "hidden_size": 8, "latent_size": 4,
              "rr_mean": [1.0, 0.5], "rr_scale": [0.2, 0.1]}  # fmt: skip
    ensemble = LSTMAutoencoderEnsemble.of(
        [LSTMAutoencoderClassifier(**config) for _ in range(2)]
    ).eval()
    save_model(ensemble, tmp_path / "ensemble.pt")
    loaded = load_model(tmp_path / "ensemble.pt")

    x, rr = torch.randn(3, 48), torch.rand(3, 2)
    assert isinstance(loaded, LSTMAutoencoderEnsemble)
    for mine, theirs in zip(ensemble(x, rr), loaded(x, rr), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_ensemble_members_must_share_a_configuration():
    with pytest.raises(ValueError, match="share one configuration"):
        LSTMAutoencoderEnsemble.of(
            [
                LSTMAutoencoderClassifier(seq_len=48),
                LSTMAutoencoderClassifier(seq_len=96),
            ]
        )


def test_ensemble_members_are_the_single_models_of_their_seeds(
    tiny_data, ae_params, params, tmp_path
):
    beats, windows = tiny_data
    ae_params["training"]["epochs"] = 1
    ae_params["checkpoint_path"] = str(tmp_path / "ae.pt")

    def train(block):
        mapping = params["ingestion"]["label_mapping"]
        return train_autoencoder(
            beats, windows, block, params["features"], mapping, 1.0, 1.0
        )

    ensemble, history = train({**ae_params, "ensemble_seeds": [3, 11]})
    # checkpoint_path None: the single model must train, not resume member 11.
    single, _ = train({**member_block(ae_params, 11), "checkpoint_path": None})

    assert isinstance(ensemble, LSTMAutoencoderEnsemble)
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ensemble.members[1].state_dict()[name], value)
    assert not torch.equal(
        ensemble.members[0].to_latent.weight, ensemble.members[1].to_latent.weight
    )
    assert [row["member"] for row in history] == [0, 1]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split(".")[1] for n in names] == ["seed11", "seed3"], names


@pytest.mark.parametrize("seeds", [[1, 1], [1.5], "42"])
def test_bad_ensemble_seeds_are_named(seeds):
    with pytest.raises(ValueError, match="ensemble_seeds"):
        ensemble_seeds({"ensemble_seeds": seeds}, "ecg_autoencoder.autoencoder")
