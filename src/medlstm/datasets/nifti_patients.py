# Long on purpose: one folder convention: layouts, modality names, reader, dataset.
"""A cohort of patient folders, each holding one NIfTI volume per MRI modality.

Layouts that load (``labels`` argument of :class:`NiftiPatientsDataset`):

- ``folder``: BraTS 2017-2019, ``<root>/HGG/<patient>/`` and ``<root>/LGG/<patient>/``.
- ``csv``: BraTS 2020, ``<root>/<patient>/`` with the grade in a CSV such as
  ``name_mapping.csv`` (columns ``BraTS_2020_subject_ID`` and ``Grade``).
- ``none``: ``<root>/<patient>/`` without labels (inference only).

Loading lists folders and labels but reads no voxels: a BraTS cohort is tens of
gigabytes as float32. :func:`read_volume` reads one volume when a node needs it,
the way a ``PartitionedDataset`` hands out loaders. Modalities are recognised
from file names by :func:`recognise_modalities`, called from a node so that the
name mapping is a run parameter, logged with the run.

Problems are never dropped silently: a folder that cannot be a patient is kept
in ``NiftiCohort.rejected`` with its reason, and a bad volume raises
:class:`NiftiVolumeError` naming the file; the ingestion node then raises or
counts the skip, as its parameters say.
"""

from __future__ import annotations

import fnmatch
import gzip
import logging
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)

GRADES: dict[str, int] = {"LGG": 0, "HGG": 1}
NIFTI_SUFFIXES = (".nii", ".nii.gz")

# Name tokens of the BraTS 2017-2020 (_t1, _t1ce, _t2, _flair) and 2021+ (-t1n,
# -t1c, -t2w, -t2f) conventions, plus common scanner spellings. Matching whole
# tokens keeps "t1" from matching "t1ce" and a patient id from matching at all.
MODALITY_ALIASES: dict[str, tuple[str, ...]] = {
    "t1": ("t1", "t1n", "t1w"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1post"),
    "t2": ("t2", "t2w"),
    "flair": ("flair", "t2f"),
}
_IGNORED_TOKENS = {"seg", "segmentation", "label", "labels", "mask"}
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")

LabelSource = Literal["folder", "csv", "none"]


class CohortError(ValueError):
    """Bad input in a cohort; ``kind`` says what for the ingestion report."""

    def __init__(self, path: Path | str, problem: str, kind: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
        self.kind = kind


class NiftiVolumeError(CohortError):
    """A NIfTI file that cannot be used: unreadable, not 3-D, or non-finite."""


@dataclass(frozen=True)
class PatientFolder:
    """One patient: a folder of NIfTI files and, when known, the grade."""

    patient_id: str
    path: Path
    nifti_files: tuple[Path, ...]
    grade: str | None = None

    @property
    def label(self) -> int | None:
        """1 for HGG, 0 for LGG, None when unlabelled."""
        return None if self.grade is None else GRADES[self.grade]


@dataclass(frozen=True)
class Rejection:
    """A folder that is not a usable patient, with the reason."""

    path: str
    problem: str
    kind: str

    def as_error(self) -> CohortError:
        return CohortError(self.path, self.problem, self.kind)


@dataclass(frozen=True)
class NiftiCohort:
    """The patient folders under ``root``; ``rejected`` lists the unusable ones."""

    root: Path
    patients: tuple[PatientFolder, ...]
    rejected: tuple[Rejection, ...] = ()
    synthetic: bool = False
    description: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModalityMatch:
    """Files of one patient sorted into modalities, ignored and unrecognised."""

    files: dict[str, Path]
    ignored: tuple[Path, ...]
    unrecognised: tuple[Path, ...]


def is_nifti(path: Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name (any case)."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """File name without ``.nii`` / ``.nii.gz``, in lower case."""
    name = path.name.lower()
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_segmentation_or_mask(path: Path) -> bool:
    stem = nifti_stem(path)
    # "brainmask", "t1_mask": a mask, even when it also names a modality.
    return bool(set(_TOKEN_SPLIT.split(stem)) & _IGNORED_TOKENS) or "mask" in stem


def _modality_by_name(
    path: Path, patterns: Mapping[str, Iterable[str]], modalities: Iterable[str]
) -> str | None:
    stem = nifti_stem(path)
    # An explicit mapping wins over the conventions: it exists for names they miss.
    by_pattern = {
        modality
        for modality, globs in patterns.items()
        if any(fnmatch.fnmatchcase(stem, glob.lower()) for glob in globs)
    }
    if len(by_pattern) > 1:
        raise CohortError(
            path, f"file name matches the patterns of {sorted(by_pattern)}", "ambiguous"
        )
    if by_pattern:
        return by_pattern.pop()
    if _is_segmentation_or_mask(path):
        return None
    tokens = set(_TOKEN_SPLIT.split(stem))
    by_token = {
        modality
        for modality in modalities
        if tokens & set(MODALITY_ALIASES.get(modality, ()))
    }
    if len(by_token) > 1:
        raise CohortError(
            path, f"file name names several modalities {sorted(by_token)}", "ambiguous"
        )
    return by_token.pop() if by_token else None


def recognise_modalities(
    files: Iterable[Path],
    modalities: Iterable[str],
    patterns: Mapping[str, Iterable[str]] | None = None,
) -> ModalityMatch:
    """Sort a patient's NIfTI files into the requested modalities.

    Args:
        files: The patient's NIfTI files.
        modalities: Modalities wanted, e.g. ``["t1", "t1ce", "t2", "flair"]``.
        patterns: Optional ``{modality: [glob, ...]}`` matched case-insensitively
            against the file name without extension, before the conventions,
            e.g. ``{"flair": ["flair_subtr*"]}``.

    Returns:
        The files per modality (only those found), segmentations and masks
        (ignored on purpose) and files no rule recognised.

    Raises:
        CohortError: Two files claim one modality, or one file several.
    """
    modalities = list(modalities)
    patterns = {m: list(globs) for m, globs in (patterns or {}).items()}
    unknown = set(patterns) - set(modalities)
    if unknown:
        raise ValueError(
            f"modality_patterns name {sorted(unknown)}, not among {modalities}"
        )
    found: dict[str, Path] = {}
    ignored, unrecognised = [], []
    for path in sorted(files):
        modality = _modality_by_name(path, patterns, modalities)
        if modality is None:
            (ignored if _is_segmentation_or_mask(path) else unrecognised).append(path)
            continue
        if modality in found:
            raise CohortError(
                path.parent,
                f"two files for modality {modality}: {found[modality].name}, {path.name}",
                "ambiguous",
            )
        found[modality] = path
    return ModalityMatch(found, tuple(ignored), tuple(unrecognised))


def read_volume(path: Path | str) -> np.ndarray:
    """Read a 3-D NIfTI volume as float32 ``(D, H, W)`` with depth on the axial axis.

    The image is reoriented to the closest canonical (RAS+) orientation, whatever
    the acquisition, so axis 0 runs inferior to superior, axis 1 posterior to
    anterior and axis 2 left to right. Scaling from the header is applied. A
    trailing axis of length 1 (``(x, y, z, 1)``, common in exports) is dropped.

    Raises:
        NiftiVolumeError: The file is unreadable, truncated or corrupt, not 3-D,
            or holds NaN or infinite voxels. The message names the file.
    """
    path = Path(path)
    try:
        image = nib.load(path)
        image = nib.as_closest_canonical(image)
        data = image.get_fdata(dtype=np.float32)
    except FileNotFoundError:
        raise
    except (
        nib.filebasedimages.ImageFileError,
        EOFError,
        OSError,
        zlib.error,
        gzip.BadGzipFile,
        ValueError,
    ) as exc:
        raise NiftiVolumeError(
            path, f"cannot read NIfTI ({type(exc).__name__}: {exc})", "unreadable"
        ) from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) == 0:
        raise NiftiVolumeError(
            path, f"expected a 3-D volume, got shape {image.shape}", "not_3d"
        )
    bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise NiftiVolumeError(path, f"{bad} NaN or infinite voxels", "non_finite")
    return np.ascontiguousarray(data.transpose(2, 1, 0))


def read_patient_folder(path: Path | str, grade: str | None = None) -> PatientFolder:
    """A patient folder with its NIfTI files (non-recursive).

    Raises:
        CohortError: The folder is missing, empty or holds no NIfTI file.
    """
    path = Path(path)
    if not path.is_dir():
        raise CohortError(path, "not a folder", "not_a_folder")
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise CohortError(path, "empty folder", "empty_folder")
    files = tuple(sorted(p for p in entries if p.is_file() and is_nifti(p)))
    if not files:
        names = ", ".join(sorted(p.name for p in entries)[:5])
        raise CohortError(path, f"no .nii or .nii.gz file (has {names})", "no_nifti")
    return PatientFolder(path.name, path, files, grade)


def _subfolders(path: Path) -> list[Path]:
    return sorted(
        p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
    )


class NiftiPatientsDataset(AbstractDataset[Any, NiftiCohort]):
    """Read-only Kedro dataset for a cohort of patient folders of NIfTI volumes.

    Example catalog entry (BraTS 2020)::

        smri_cohort:
          type: medlstm.datasets.nifti_patients.NiftiPatientsDataset
          path: /data/MICCAI_BraTS2020_TrainingData
          labels: csv
          labels_csv: /data/MICCAI_BraTS2020_TrainingData/name_mapping.csv
    """

    def __init__(
        self,
        path: str,
        labels: LabelSource = "folder",
        labels_csv: str | None = None,
        id_column: str = "BraTS_2020_subject_ID",
        grade_column: str = "Grade",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            path: The cohort's root folder.
            labels: ``folder`` (``HGG/``, ``LGG/`` subfolders), ``csv`` or ``none``.
            labels_csv: The CSV with one row per patient, for ``labels: csv``.
            id_column: CSV column equal to the patient folder name.
            grade_column: CSV column holding ``HGG`` or ``LGG``.
            metadata: Kedro metadata, unused.
        """
        if labels not in ("folder", "csv", "none"):
            raise DatasetError(f"labels must be folder, csv or none, got {labels!r}")
        if (labels == "csv") != (labels_csv is not None):
            raise DatasetError("labels_csv is required with labels: csv, and only then")
        self._path = Path(path)
        self._labels = labels
        self._labels_csv = Path(labels_csv) if labels_csv else None
        self._id_column = id_column
        self._grade_column = grade_column
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(self._path),
            "labels": self._labels,
            "labels_csv": None if self._labels_csv is None else str(self._labels_csv),
        }

    def _exists(self) -> bool:
        return self._path.is_dir()

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._path}: NiftiPatientsDataset is read-only")

    def load(self) -> NiftiCohort:
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: cohort folder does not exist")
        candidates = self._candidates()
        if not candidates:
            raise DatasetError(f"{self._path}: no patient folders found")
        patients, rejected = [], []
        for folder, grade in candidates:
            try:
                patients.append(read_patient_folder(folder, grade))
            except CohortError as exc:
                rejected.append(Rejection(exc.path, exc.problem, exc.kind))
        if self._labels == "csv":
            patients, missing = self._label_from_csv(patients)
            rejected.extend(missing)
        ids = [p.patient_id for p in patients]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise DatasetError(
                f"{self._path}: patient folder names are not unique: {duplicates}"
            )
        if rejected:
            logger.warning(
                "%s: %d of %d folders are not usable patients (see ingestion report)",
                self._path,
                len(rejected),
                len(candidates),
            )
        return NiftiCohort(
            root=self._path,
            patients=tuple(sorted(patients, key=lambda p: p.patient_id)),
            rejected=tuple(rejected),
            description=f"NIfTI cohort {self._path.name}",
        )

    def _candidates(self) -> list[tuple[Path, str | None]]:
        if self._labels != "folder":
            return [(p, None) for p in _subfolders(self._path)]
        by_name = {p.name.upper(): p for p in _subfolders(self._path)}
        if not set(GRADES) & set(by_name):
            raise DatasetError(
                f"{self._path}: labels: folder needs HGG/ and LGG/ subfolders, "
                f"found {sorted(p.name for p in by_name.values())}"
            )
        others = sorted(set(by_name) - set(GRADES))
        if others:
            logger.info("%s: not a grade folder, ignored: %s", self._path, others)
        return [
            (patient, grade)
            for grade in sorted(GRADES)
            if grade in by_name
            for patient in _subfolders(by_name[grade])
        ]

    def _label_from_csv(
        self, patients: list[PatientFolder]
    ) -> tuple[list[PatientFolder], list[Rejection]]:
        table = pd.read_csv(self._labels_csv, dtype=str)
        for column in (self._id_column, self._grade_column):
            if column not in table.columns:
                raise DatasetError(
                    f"{self._labels_csv}: no column {column!r} "
                    f"(columns: {list(table.columns)})"
                )
        table = table.dropna(subset=[self._id_column])
        repeated = table[self._id_column].str.strip().duplicated(keep=False)
        if repeated.any():
            raise DatasetError(
                f"{self._labels_csv}: patients listed more than once: "
                f"{sorted(set(table.loc[repeated, self._id_column]))[:5]}"
            )
        grades = dict(
            zip(
                table[self._id_column].str.strip(),
                table[self._grade_column],
                strict=True,
            )
        )
        labelled, rejected = [], []
        for patient in patients:
            grade = grades.get(patient.patient_id)
            grade = grade.strip().upper() if isinstance(grade, str) else None
            if grade in GRADES:
                labelled.append(
                    PatientFolder(
                        patient.patient_id, patient.path, patient.nifti_files, grade
                    )
                )
                continue
            problem = (
                f"not in {self._labels_csv.name} column {self._id_column}"
                if patient.patient_id not in grades
                else f"grade {grades[patient.patient_id]!r} in {self._labels_csv.name} "
                f"is not HGG or LGG"
            )
            rejected.append(Rejection(str(patient.path), problem, "label_missing"))
        return labelled, rejected
