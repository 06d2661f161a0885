"""ecg_autoencoder: MIT-BIH beats -> LSTM autoencoder-classifier vs 1D-CNN (AAMI classes)."""

from medlstm.pipelines.ecg_autoencoder.pipeline import create_pipeline

__all__ = ["create_pipeline"]
