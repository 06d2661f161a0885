"""Ingestion nodes: NIfTI patient folders -> normalised, cropped, resized tensors.

Per volume: min-max normalisation ``(x - min) / (max - min + 1e-8)``, the central
``depth`` axial slices (start ``(D - depth) // 2``, symmetric zero padding when a
volume has fewer, reported), then bilinear in-plane resizing with antialiasing.
The result is cached as ``smri_model_input`` so training never re-reads NIfTI.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlstm.core.params import check_complete_block, check_known_keys, parsed
from medlstm.datasets.nifti_patients import (
    GRADES,
    CohortError,
    NiftiCohort,
    PatientFolder,
    read_volume,
    recognise_modalities,
)

logger = logging.getLogger(__name__)

EPSILON = 1e-8
GRADE_NAMES = tuple(sorted(GRADES, key=GRADES.get))  # index = label: ("LGG", "HGG")


@dataclass(frozen=True)
class IngestionParams:
    """The ``smri_cnn_lstm.ingestion`` parameters block. Every field comes from that
    block in conf/base (its comments say what each does): no default here can drift
    from it."""

    modalities: tuple[str, ...]
    modality_patterns: dict[str, list[str]] | None
    depth: int
    size: tuple[int, int]
    missing_modality: str
    on_error: str
    workers: int

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IngestionParams:
        """Validate the block; errors name the offending key."""
        where = "smri_cnn_lstm.ingestion"
        check_known_keys(values, cls.__dataclass_fields__, where)
        check_complete_block(values, cls.__dataclass_fields__, where)
        params = cls(
            **{
                **values,
                "modalities": tuple(values["modalities"]),
                "size": tuple(values["size"]),
                "modality_patterns": {
                    m: list(globs)
                    for m, globs in (values["modality_patterns"] or {}).items()
                },
            }
        )
        if params.missing_modality not in ("zeros", "skip"):
            raise ValueError(f"{where}.missing_modality must be zeros or skip")
        if params.on_error not in ("skip", "raise"):
            raise ValueError(f"{where}.on_error must be skip or raise")
        if params.depth < 1 or len(params.size) != 2 or min(params.size) < 1:
            raise ValueError(f"{where}: depth and size must be positive")
        if (
            len(set(params.modalities)) != len(params.modalities)
            or not params.modalities
        ):
            raise ValueError(f"{where}.modalities must be distinct and non-empty")
        return params


def min_max_normalise(volume: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min + 1e-8)`` in float32; a constant volume becomes zeros."""
    low, high = float(volume.min()), float(volume.max())
    return ((volume - low) / (high - low + EPSILON)).astype(np.float32)


def crop_depth(volume: np.ndarray, depth: int) -> tuple[np.ndarray, int, int]:
    """The central ``depth`` slices of (D, H, W), zero-padded symmetrically if D is smaller.

    Returns:
        The (depth, H, W) volume and the number of slices padded before and after.
    """
    slices = volume.shape[0]
    if slices >= depth:
        start = (slices - depth) // 2
        return volume[start : start + depth], 0, 0
    before = (depth - slices) // 2
    after = depth - slices - before
    return np.pad(volume, ((before, after), (0, 0), (0, 0))), before, after


def resize_in_plane(volume: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of each slice: (D, H, W) -> (D, *size)."""
    if volume.shape[1:] == tuple(size):
        return np.ascontiguousarray(volume, dtype=np.float32)
    slices = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[:, None]
    resized = torch.nn.functional.interpolate(
        slices, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[:, 0].numpy()


def preprocess_volume(
    volume: np.ndarray, depth: int, size: tuple[int, int]
) -> tuple[np.ndarray, int, int]:
    """Normalise, crop or pad the depth, resize in-plane: (D, H, W) -> (depth, *size).

    Returns:
        The volume and the slices padded before and after (0, 0 when cropped).
    """
    cropped, before, after = crop_depth(min_max_normalise(volume), depth)
    return resize_in_plane(cropped, size), before, after


@dataclass
class _PatientResult:
    volumes: np.ndarray | None = None  # (M, depth, H, W)
    present: np.ndarray | None = None  # (M,) bool
    padded: list[dict[str, Any]] | None = None
    ignored: int = 0
    unrecognised: list[str] | None = None
    error: CohortError | None = None


def ingest_patient(patient: PatientFolder, params: IngestionParams) -> _PatientResult:
    """One patient's (M, depth, H, W) tensor, or the problem that stops it."""
    try:
        match = recognise_modalities(
            patient.nifti_files, params.modalities, params.modality_patterns
        )
        if not match.files:
            names = ", ".join(p.name for p in patient.nifti_files)
            raise CohortError(
                patient.path, f"no recognisable modality among: {names}", "no_modality"
            )
        missing = [m for m in params.modalities if m not in match.files]
        if missing and params.missing_modality == "skip":
            raise CohortError(
                patient.path, f"missing modalities {missing}", "missing_modality"
            )
        volumes = np.zeros(
            (len(params.modalities), params.depth, *params.size), np.float32
        )
        padded = []
        for i, modality in enumerate(params.modalities):
            if modality in match.files:
                path = match.files[modality]
                volumes[i], before, after = preprocess_volume(
                    read_volume(path), params.depth, params.size
                )
                if before or after:
                    padded.append(
                        {
                            "patient": patient.patient_id,
                            "file": str(path),
                            "slices": params.depth - before - after,
                            "pad_before": before,
                            "pad_after": after,
                        }
                    )
        present = np.array([m in match.files for m in params.modalities])
        return _PatientResult(
            volumes,
            present,
            padded,
            len(match.ignored),
            [str(p) for p in match.unrecognised],
        )
    except CohortError as exc:
        return _PatientResult(error=exc)


def _ingest_all(
    patients: list[PatientFolder], params: IngestionParams
) -> list[_PatientResult]:
    # Reading .nii.gz is zlib and NumPy work that releases the GIL: threads scale.
    if params.workers <= 1:
        return [ingest_patient(p, params) for p in patients]
    with ThreadPoolExecutor(params.workers) as pool:
        return list(pool.map(lambda p: ingest_patient(p, params), patients))


def _check_cohort(cohort: NiftiCohort, params: IngestionParams) -> None:
    """Refuse an unlabelled cohort, and with ``on_error: raise`` a rejected folder."""
    unlabelled = [p.patient_id for p in cohort.patients if p.label is None]
    if unlabelled:
        raise ValueError(
            f"{cohort.root}: training needs labelled patients; {len(unlabelled)} have no "
            f"grade (e.g. {unlabelled[:3]}). Use labels: folder or csv in the catalog."
        )
    if cohort.rejected and params.on_error == "raise":
        raise cohort.rejected[0].as_error()


def _usable(
    cohort: NiftiCohort, results: list[_PatientResult], params: IngestionParams
) -> tuple[list[tuple[PatientFolder, _PatientResult]], list[dict[str, Any]]]:
    """The patients that read cleanly, and one entry per skipped folder or patient."""
    skipped = [
        {
            "patient": Path(r.path).name,
            "path": r.path,
            "problem": r.problem,
            "kind": r.kind,
        }
        for r in cohort.rejected
    ]
    kept: list[tuple[PatientFolder, _PatientResult]] = []
    for patient, result in zip(cohort.patients, results, strict=True):
        if result.error is None:
            kept.append((patient, result))
            continue
        if params.on_error == "raise":
            raise result.error
        logger.warning("Skipping patient %s: %s", patient.patient_id, result.error)
        error = result.error
        skipped.append(
            {
                "patient": patient.patient_id,
                "path": error.path,
                "problem": error.problem,
                "kind": error.kind,
            }
        )
    if not kept:
        raise ValueError(
            f"{cohort.root}: no usable patient; problems: "
            f"{dict(Counter(s['kind'] for s in skipped))}"
        )
    return kept, skipped


def _stack(
    cohort: NiftiCohort,
    kept: list[tuple[PatientFolder, _PatientResult]],
    params: IngestionParams,
) -> dict[str, np.ndarray]:
    """``smri_model_input``: the kept patients' tensors, labels and provenance."""
    return {
        "x": np.stack([result.volumes for _, result in kept]),
        "y": np.array([patient.label for patient, _ in kept], dtype=np.int64),
        "patient_id": np.array([patient.patient_id for patient, _ in kept]),
        "present": np.stack([result.present for _, result in kept]),
        "modalities": np.array(params.modalities),
        "cohort": np.array(cohort.description),
        "synthetic": np.array(cohort.synthetic),
    }


def _ingestion_report(
    cohort: NiftiCohort,
    kept: list[tuple[PatientFolder, _PatientResult]],
    skipped: list[dict[str, Any]],
    model_input: dict[str, np.ndarray],
    params: IngestionParams,
) -> dict[str, Any]:
    """Counts of everything skipped, zero-filled or padded, and the settings used."""
    zero_filled = [
        {"patient": patient.patient_id, "modality": modality}
        for patient, result in kept
        for modality, present in zip(params.modalities, result.present, strict=True)
        if not present
    ]
    padded = [entry for _, result in kept for entry in result.padded]
    labels = model_input["y"]
    return {
        "cohort": cohort.description,
        "synthetic": cohort.synthetic,
        "root": str(cohort.root),
        "folders_found": len(cohort.patients) + len(cohort.rejected),
        "patients_used": len(kept),
        "patients_by_grade": {
            name: int((labels == index).sum()) for index, name in enumerate(GRADE_NAMES)
        },
        "skipped_count": len(skipped),
        "skipped_by_kind": dict(Counter(s["kind"] for s in skipped)),
        "skipped": skipped,
        "zero_filled_count": len(zero_filled),
        "zero_filled": zero_filled,
        "padded_count": len(padded),
        "padded": padded,
        "ignored_segmentation_or_mask_files": sum(r.ignored for _, r in kept),
        "unrecognised_files": [f for _, r in kept for f in r.unrecognised],
        "tensor_shape": list(model_input["x"].shape),
        "settings": {
            "modalities": list(params.modalities),
            "depth": params.depth,
            "size": list(params.size),
            "missing_modality": params.missing_modality,
            "on_error": params.on_error,
        },
        "generator_manifest": cohort.manifest.get("config")
        if cohort.manifest
        else None,
    }


def build_model_input(
    cohort: NiftiCohort, ingestion: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Preprocess every labelled patient of ``cohort`` into one cached array set.

    Args:
        cohort: Patient folders from ``NiftiPatientsDataset``.
        ingestion: ``smri_cnn_lstm.ingestion`` parameters.

    Returns:
        ``smri_model_input``: ``x`` float32 (N, M, depth, H, W), ``y`` int64 (N,)
        with HGG = 1, ``patient_id`` (N,), ``present`` bool (N, M) (False: the
        modality was filled with zeros), ``modalities`` (M,), ``cohort`` (the
        source's description) and ``synthetic`` (bool); and the ingestion report,
        which counts every skipped patient, zero-filled modality and padded volume.

    Raises:
        CohortError: With ``on_error: raise``, the first problem, naming the file
            or folder. ValueError: No usable patient, or an unlabelled cohort.
    """
    params = parsed(IngestionParams, ingestion)
    _check_cohort(cohort, params)
    results = _ingest_all(list(cohort.patients), params)
    kept, skipped = _usable(cohort, results, params)
    model_input = _stack(cohort, kept, params)
    report = _ingestion_report(cohort, kept, skipped, model_input, params)
    logger.info(
        "smri ingestion: %d patients used (%s), %d skipped, %d modalities zero-filled, "
        "%d volumes padded",
        len(kept),
        report["patients_by_grade"],
        report["skipped_count"],
        report["zero_filled_count"],
        report["padded_count"],
    )
    return model_input, report
