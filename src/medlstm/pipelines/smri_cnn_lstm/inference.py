"""Grading one new patient: its folder read and preprocessed as in ingestion, then
P(HGG) from each trained architecture."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from torch import nn

from medlstm.core.params import parsed
from medlstm.datasets.nifti_patients import read_patient_folder
from medlstm.pipelines.smri_cnn_lstm.ingestion import IngestionParams, ingest_patient
from medlstm.pipelines.smri_cnn_lstm.training import hgg_probability


def load_patient_for_prediction(
    predict: dict[str, Any], ingestion: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Read and preprocess the one patient folder named by ``predict.patient_folder``.

    The folder is a parameter, so that it can be set per run (``kedro run
    --params smri_cnn_lstm.predict.patient_folder=/path``) and is logged with it.

    Returns:
        ``x`` float32 (1, M, depth, H, W), ``present`` (1, M), ``patient_id`` and
        ``folder``; missing modalities are zero-filled whatever
        ``missing_modality`` says, and flagged in ``present``.

    Raises:
        CohortError: The folder or one of its volumes cannot be used.
    """
    params = parsed(IngestionParams, ingestion)
    patient = read_patient_folder(predict["patient_folder"])
    result = ingest_patient(patient, replace(params, missing_modality="zeros"))
    if result.error is not None:
        raise result.error
    return {
        "x": result.volumes[None],
        "present": result.present[None],
        "patient_id": np.array(patient.patient_id),
        "folder": np.array(str(patient.path)),
        "padded_volumes": np.array(len(result.padded)),
    }


def predict_patient(
    network: nn.Module, patient: dict[str, np.ndarray], label: str
) -> dict[str, Any]:
    """P(HGG) and the predicted grade of the one patient in ``patient``."""
    p_hgg = float(hgg_probability(network, patient["x"])[0])
    return {"model": label, "p_hgg": p_hgg, "grade": "HGG" if p_hgg >= 0.5 else "LGG"}
