"""Hyperparameter studies (Optuna) of the ECG autoencoder and the 1D-CNN."""

from medlstm.pipelines.ecg_tuning.pipeline import create_pipeline

__all__ = ["create_pipeline"]
