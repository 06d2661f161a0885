"""Tiny untrained ECG models saved under the catalog's file names, for the tests of
scripts that load a trained run's models (benchmarks of detection, noise stress and
recordings): each loads and predicts in well under a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medlstm.core.persistence import save_model

FILES = {
    "autoencoder": "ecg_lstm_autoencoder.pt",
    "cnn": "ecg_cnn1d.pt",
    "rhythm": "ecg_rhythm_bilstm.pt",
}


def save_tiny_models(
    folder: Path, ecg: dict[str, Any], models: tuple[str, ...] = tuple(FILES)
) -> None:
    """Save ``models`` (of ``FILES``) into ``folder``, seeded, sized for the
    ``ecg_autoencoder`` parameters ``ecg`` (its RR features and window)."""
    from medlstm.models.cnn1d import CNN1DClassifier
    from medlstm.models.ecg_autoencoder import LSTMAutoencoderClassifier
    from medlstm.models.rhythm_bilstm import RhythmBiLSTM

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    n_rr = len(ecg["features"]["rr_columns"])
    window = ecg["ingestion"]["samples_before"] + ecg["ingestion"]["samples_after"]
    build = {
        "autoencoder": lambda: LSTMAutoencoderClassifier(
            n_rr_features=n_rr,
            hidden_size=8,
            num_layers=1,
            latent_size=4,
            head_hidden=4,
        ),
        "cnn": lambda: CNN1DClassifier(n_rr_features=n_rr, channels=[4], head_hidden=4),
        "rhythm": lambda: RhythmBiLSTM(
            seq_len=window,
            n_context=n_rr,
            channels=[4],
            hidden_size=4,
            head_hidden=4,
            inputs={
                "features": dict(ecg["features"]),
                "sequence_length": 16,
                "prediction_stride": 8,
            },
        ),
    }
    for name in models:
        save_model(build[name](), folder / FILES[name])
