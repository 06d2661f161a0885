# Long on purpose: anatomy, tumour, writer and dataset share CohortConfig and seeds.
"""Synthetic glioma MRI cohort, written as NIfTI files in a BraTS layout.

Each patient is a brain-like head (scalp, skull, CSF, grey and white matter,
ventricles) seen in four modalities with their usual contrasts, plus a tumour
whose appearance depends on the grade, with overlap so that the task is
learnable but not trivial:

- HGG (label 1): larger, usually ring-enhancing on T1ce around a necrotic core,
  with wide oedema bright on FLAIR and T2.
- LGG (label 0): smaller, usually non-enhancing (sometimes faint patches),
  mostly solid, little oedema.

Shape, position, size, scanner gain, bias field and Rician noise are random;
volumes are stored as int16 in RAS, LPS or slice-first voxel orders so that
readers must honour the header. Everything derives from ``(seed, patient)``, so
a cohort is regenerated bit for bit and patient k does not depend on how many
patients there are. The data is synthetic: never report it as clinical.

Command line (writes ``--dest/HGG/SYN_0001/SYN_0001_t1.nii.gz`` and so on)::

    python -m medlstm.synthetic.brats --dest data/01_raw/smri_synthetic \\
        --patients 40 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
from kedro.io import DatasetError
from scipy import ndimage

from medlstm.datasets.nifti_patients import NiftiCohort, NiftiPatientsDataset

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2
MANIFEST = "SYNTHETIC.json"
MODALITIES = ("t1", "t1ce", "t2", "flair")

# Tissue classes and their relative signal per modality (background, scalp,
# skull, CSF, GM, WM, oedema, solid tumour, enhancing rim, necrosis). T1ce is
# T1 except where contrast leaks: the rim value is scaled by the enhancement.
TISSUES = (
    "bg",
    "scalp",
    "skull",
    "csf",
    "gm",
    "wm",
    "oedema",
    "solid",
    "rim",
    "necrosis",
)
CONTRAST = {
    "t1": (0.0, 0.85, 0.05, 0.20, 0.55, 0.75, 0.50, 0.45, 0.47, 0.25),
    "t1ce": (0.0, 0.85, 0.05, 0.20, 0.55, 0.75, 0.50, 0.45, 0.47, 0.25),
    "t2": (0.0, 0.45, 0.05, 1.00, 0.65, 0.45, 0.85, 0.80, 0.70, 0.95),
    "flair": (0.0, 0.55, 0.05, 0.10, 0.60, 0.45, 0.88, 0.75, 0.70, 0.50),
}
_T = {name: i for i, name in enumerate(TISSUES)}
# BraTS segmentation labels: 1 necrotic / non-enhancing core, 2 oedema, 4 enhancing.
_SEG = {_T["necrosis"]: 1, _T["solid"]: 1, _T["oedema"]: 2, _T["rim"]: 4}
# Voxel orders a file may be stored in (nibabel orientation arrays, from RAS).
_ORIENTATIONS = {
    "RAS": [[0, 1], [1, 1], [2, 1]],
    "LPS": [[0, -1], [1, -1], [2, 1]],
    "SLICE_FIRST": [[1, 1], [2, 1], [0, -1]],
}

Layout = Literal["folder", "csv"]


@dataclass(frozen=True)
class CohortConfig:
    """What a synthetic cohort is made of; saved as its manifest."""

    patients: int = 40
    seed: int = 0
    shape: tuple[int, int, int] = (64, 64, 40)
    spacing: tuple[float, float, float] = (3.0, 3.0, 4.0)
    hgg_fraction: float = 0.6
    unseen: int = 2
    layout: Layout = "folder"

    def __post_init__(self) -> None:
        if self.patients < 2 or not 0 < self.hgg_fraction < 1:
            raise ValueError("need patients >= 2 and 0 < hgg_fraction < 1")
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape must be 3 sizes >= 8, got {self.shape}")
        if self.layout not in ("folder", "csv"):
            raise ValueError(f"layout must be folder or csv, got {self.layout!r}")
        if self.layout == "csv" and self.unseen:
            raise ValueError("unseen patients need layout: folder")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))

    def grades(self) -> list[str]:
        """Grade of each patient, a seeded shuffle of the exact HGG fraction."""
        n_hgg = round(self.patients * self.hgg_fraction)
        grades = ["HGG"] * n_hgg + ["LGG"] * (self.patients - n_hgg)
        order = np.random.default_rng([self.seed, 7]).permutation(self.patients)
        return [grades[i] for i in order]


@dataclass(frozen=True)
class Tumour:
    """Grade-dependent tumour appearance; sizes in mm."""

    radius: float
    enhancement: float  # 0: none, 1: full rim contrast on T1ce
    rim: float  # rim thickness; 0 means patchy instead of ring enhancement
    necrosis: float  # necrotic core radius as a fraction of the tumour radius
    oedema: float  # oedema extent as a multiple of the tumour radius


def sample_tumour(rng: np.random.Generator, grade: str) -> Tumour:
    """Draw a tumour; the grade ranges overlap on purpose."""
    if grade == "HGG":
        ring = rng.random() < 0.85
        return Tumour(
            radius=rng.uniform(15, 30),
            enhancement=rng.uniform(0.6, 1.0) if ring else rng.uniform(0.1, 0.35),
            rim=rng.uniform(3.0, 6.0) if ring else 0.0,
            necrosis=rng.uniform(0.35, 0.65) if rng.random() < 0.85 else 0.0,
            oedema=rng.uniform(1.6, 2.4),
        )
    return Tumour(
        radius=rng.uniform(8, 20),
        enhancement=rng.uniform(0.1, 0.4) if rng.random() < 0.25 else 0.0,
        rim=0.0,
        necrosis=rng.uniform(0.2, 0.35) if rng.random() < 0.1 else 0.0,
        oedema=rng.uniform(1.0, 1.3),
    )


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ellipsoid_distance(
    coords: np.ndarray, centre: np.ndarray, axes: np.ndarray, rotation: np.ndarray
) -> np.ndarray:
    """Normalised distance (1 on the surface) for coords (3, X, Y, Z) in mm."""
    offset = coords - centre[:, None, None, None]
    # rotation.T @ offset per voxel, unrolled: np.tensordot copies (3, X, Y, Z) twice.
    local = [sum(rotation[j, i] * offset[j] for j in range(3)) for i in range(3)]
    return np.sqrt(sum((local[i] / axes[i]) ** 2 for i in range(3)))


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float
) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-12)


@dataclass(frozen=True)
class _Head:
    coords: np.ndarray  # (3, X, Y, Z) voxel centres in mm, origin at the grid centre
    fov: np.ndarray  # (3,) field of view in mm
    centre: np.ndarray
    axes: np.ndarray  # semi-axes in mm
    rotation: np.ndarray  # about the axial axis


def _anatomy(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, ...]
) -> tuple[_Head, np.ndarray, np.ndarray]:
    """A head: tissue classes (X, Y, Z) and the brain mask."""
    spacing_arr = np.asarray(spacing)[:, None, None, None]
    grid = np.indices(shape, dtype=np.float64)
    coords = (grid - (np.asarray(shape) - 1)[:, None, None, None] / 2) * spacing_arr
    fov = np.asarray(shape) * np.asarray(spacing)
    axes = np.array([0.36, 0.44, 0.39]) * fov.min() * rng.uniform(0.93, 1.05, 3)
    axes[2] = min(axes[2], 0.42 * fov[2])
    head = _Head(
        coords,
        fov,
        rng.uniform(-0.03, 0.03, 3) * fov,
        axes,
        _rotation_z(rng.uniform(-0.15, 0.15)),
    )
    wobble = 0.02 * _smooth_noise(rng, shape, 3.0)
    radius = _ellipsoid_distance(coords, head.centre, axes, head.rotation) + wobble

    tissue = np.zeros(shape, dtype=np.int8)
    tissue[radius < 1.0] = _T["scalp"]
    tissue[radius < 0.95] = _T["skull"]
    tissue[radius < 0.91] = _T["csf"]
    brain = radius < 0.87
    tissue[brain] = _T["gm"]
    tissue[radius + 0.04 * _smooth_noise(rng, shape, 2.0) < 0.74] = _T["wm"]
    for side in (-1, 1):
        centre = head.centre + np.array([side * 0.12, 0.05, 0.05]) * axes
        ventricle = np.array([0.08, 0.30, 0.16]) * axes * rng.uniform(0.8, 1.2, 3)
        inside = _ellipsoid_distance(coords, centre, ventricle, head.rotation) < 1.0
        tissue[inside] = _T["csf"]
    return head, tissue, brain


def _add_tumour(
    rng: np.random.Generator,
    tumour: Tumour,
    head: _Head,
    tissue: np.ndarray,
    brain: np.ndarray,
) -> np.ndarray:
    """Draw the tumour into ``tissue`` in place; returns the enhancing voxels."""
    position = np.array(
        [
            rng.choice([-1, 1]) * rng.uniform(0.25, 0.5),
            rng.uniform(-0.45, 0.45),
            rng.uniform(-0.2, 0.3),
        ]
    )
    centre = head.centre + head.rotation @ (position * head.axes)
    axes = tumour.radius * rng.uniform(0.75, 1.25, 3)
    irregular = 0.12 * _smooth_noise(rng, tissue.shape, 2.0)
    spin = _rotation_z(rng.uniform(0, np.pi))
    dist = _ellipsoid_distance(head.coords, centre, axes, spin) + irregular
    inside = brain & (dist < 1.0)
    tissue[brain & (dist < tumour.oedema) & ~inside] = _T["oedema"]
    tissue[inside] = _T["solid"]
    enhancing = np.zeros(tissue.shape, dtype=bool)
    if tumour.rim > 0:
        enhancing = inside & (dist > 1.0 - tumour.rim / tumour.radius)
    elif tumour.enhancement > 0:
        enhancing = inside & (_smooth_noise(rng, tissue.shape, 1.5) > 0.8)
    tissue[enhancing] = _T["rim"]
    tissue[inside & (dist < tumour.necrosis)] = _T["necrosis"]
    return enhancing


def _render(
    rng: np.random.Generator,
    tissue: np.ndarray,
    enhancement: list[tuple[np.ndarray, float]],
    head: _Head,
) -> dict[str, np.ndarray]:
    """Signal per modality with partial volume, bias field, Rician noise and gain.

    ``enhancement`` sets T1ce to a value inside each mask (contrast uptake).
    """
    gradient = rng.standard_normal(3) / np.sqrt(3) / head.fov
    bias = 1.0 + 0.12 * sum(gradient[i] * head.coords[i] for i in range(3))
    volumes = {}
    for modality in MODALITIES:
        signal = np.asarray(CONTRAST[modality])[tissue]
        if modality == "t1ce":
            for mask, value in enhancement:
                signal[mask] = value
        signal = ndimage.gaussian_filter(signal * bias, 0.6)
        sigma = rng.uniform(0.015, 0.04)
        noisy = np.hypot(
            signal + sigma * rng.standard_normal(tissue.shape),
            sigma * rng.standard_normal(tissue.shape),
        )
        volumes[modality] = (noisy * rng.uniform(400, 1200)).astype(np.float32)
    return volumes


def synth_patient(
    rng: np.random.Generator,
    grade: str,
    shape: tuple[int, int, int] = (64, 64, 40),
    spacing: tuple[float, float, float] = (3.0, 3.0, 4.0),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One patient's volumes in RAS voxel order.

    Returns:
        ``{modality: float32 (X, Y, Z)}`` scaled like scanner output (hundreds),
        and the BraTS-style segmentation, uint8 (X, Y, Z).
    """
    head, tissue, brain = _anatomy(rng, shape, spacing)
    tumour = sample_tumour(rng, grade)
    enhancing = _add_tumour(rng, tumour, head, tissue, brain)
    # A few normal enhancing vessels so that bright T1ce voxels alone are no giveaway.
    vessels = np.zeros(shape, dtype=bool)
    for _ in range(rng.integers(2, 6)):
        spot = head.centre + head.rotation @ (rng.uniform(-0.6, 0.6, 3) * head.axes)
        vessels |= (
            _ellipsoid_distance(head.coords, spot, np.full(3, 4.0), head.rotation) < 1
        )
    rim = CONTRAST["t1ce"][_T["rim"]]
    volumes = _render(
        rng,
        tissue,
        [
            (enhancing, rim + tumour.enhancement * (1.0 - rim)),
            (vessels & brain, rng.uniform(0.8, 1.0)),
        ],
        head,
    )
    seg = np.zeros(shape, dtype=np.uint8)
    for tissue_class, label in _SEG.items():
        seg[tissue == tissue_class] = label
    return volumes, seg


def _ras_affine(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    return affine


def _save_nifti(
    volume: np.ndarray, affine: np.ndarray, orientation: str, path: Path
) -> None:
    """Save a RAS-ordered array in another voxel order, with a matching affine."""
    ornt = np.asarray(_ORIENTATIONS[orientation])
    data = nib.orientations.apply_orientation(volume, ornt)
    stored_affine = affine @ nib.orientations.inv_ornt_aff(ornt, volume.shape)
    dtype = np.uint8 if volume.dtype == np.uint8 else np.int16
    image = nib.Nifti1Image(np.rint(data).astype(dtype), stored_affine)
    image.set_qform(stored_affine, code=1)
    image.set_sform(stored_affine, code=1)
    nib.save(image, path)


def write_patient(
    folder: Path,
    patient_id: str,
    grade: str,
    seed: int,
    index: int,
    config: CohortConfig,
) -> None:
    """Write one patient's four modalities and segmentation into ``folder``."""
    rng = np.random.default_rng([seed, index])
    volumes, seg = synth_patient(rng, grade, config.shape, config.spacing)
    orientation = rng.choice(list(_ORIENTATIONS), p=[0.45, 0.45, 0.10])
    affine = _ras_affine(config.shape, config.spacing)
    folder.mkdir(parents=True)
    for modality, volume in volumes.items():
        _save_nifti(
            volume, affine, orientation, folder / f"{patient_id}_{modality}.nii.gz"
        )
    _save_nifti(seg, affine, orientation, folder / f"{patient_id}_seg.nii.gz")


def write_cohort(
    dest: Path | str, config: CohortConfig | None = None
) -> dict[str, Any]:
    """Generate a cohort into ``dest`` (which must not exist) and return its manifest.

    ``layout: folder`` writes ``HGG/<id>/`` and ``LGG/<id>/`` (BraTS 2019) and
    unlabelled extra patients under ``unseen/``; ``layout: csv`` writes
    ``<id>/`` folders and ``name_mapping.csv`` (BraTS 2020).
    """
    config = config or CohortConfig()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    grades = config.grades()
    rows = ["Grade,BraTS_2020_subject_ID"]
    for index, grade in enumerate(grades, start=1):
        patient_id = f"SYN_{index:04d}"
        parent = dest / grade if config.layout == "folder" else dest
        write_patient(
            parent / patient_id, patient_id, grade, config.seed, index, config
        )
        rows.append(f"{grade},{patient_id}")
    if config.layout == "csv":
        (dest / "name_mapping.csv").write_text("\n".join(rows) + "\n")
    unseen = {}
    for index in range(1, config.unseen + 1):
        patient_id = f"SYN_U{index:03d}"
        grade = "HGG" if index % 2 else "LGG"
        folder = dest / "unseen" / patient_id
        write_patient(folder, patient_id, grade, config.seed, 100_000 + index, config)
        unseen[patient_id] = grade
    manifest = {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "grades": {f"SYN_{i:04d}": grade for i, grade in enumerate(grades, start=1)},
        "unseen_grades": unseen,
        "note": "Synthetic data, not real patients.",
    }
    text = json.dumps(manifest, indent=2)
    (dest / MANIFEST).write_text(text + "\n")
    return json.loads(text)


def read_manifest(root: Path | str) -> dict[str, Any] | None:
    """The manifest of a generated cohort, or None if ``root`` has none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_cohort(dest: Path | str, config: CohortConfig) -> dict[str, Any]:
    """Generate the cohort unless ``dest`` already holds exactly this one.

    A cohort generated with other settings is replaced; a folder without a
    manifest is never touched. Generation goes to a temporary sibling that is
    renamed into place, so an interrupted run leaves no half cohort.
    """
    dest = Path(dest)
    manifest = read_manifest(dest)
    wanted = json.loads(
        json.dumps({"version": GENERATOR_VERSION, "config": dataclasses.asdict(config)})
    )
    if manifest and {k: manifest.get(k) for k in wanted} == wanted:
        return manifest
    if dest.exists() and manifest is None and any(dest.iterdir()):
        raise DatasetError(
            f"{dest}: exists without {MANIFEST}; refusing to overwrite it "
            "with a synthetic cohort"
        )
    logger.info("Generating synthetic cohort %s in %s", config, dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = write_cohort(tmp, config)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return manifest


class SyntheticBratsDataset(NiftiPatientsDataset):
    """A :class:`NiftiPatientsDataset` over a synthetic cohort made on first load.

    The folder is (re)generated when missing or made with other settings; the
    loaded cohort is marked ``synthetic`` so that reports can say so.
    """

    def __init__(
        self,
        path: str,
        patients: int = 40,
        seed: int = 0,
        shape: tuple[int, int, int] = (64, 64, 40),
        spacing: tuple[float, float, float] = (3.0, 3.0, 4.0),
        hgg_fraction: float = 0.6,
        unseen: int = 2,
        layout: Layout = "folder",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._config = CohortConfig(
            patients, seed, tuple(shape), tuple(spacing), hgg_fraction, unseen, layout
        )
        csv = str(Path(path) / "name_mapping.csv") if layout == "csv" else None
        super().__init__(path, labels=layout, labels_csv=csv, metadata=metadata)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), **dataclasses.asdict(self._config)}

    def _exists(self) -> bool:
        return True  # generated on load

    def load(self) -> NiftiCohort:
        manifest = ensure_cohort(self._path, self._config)
        cohort = super().load()
        return dataclasses.replace(
            cohort,
            synthetic=True,
            description=(
                f"synthetic BraTS-layout cohort ({self._config.patients} patients, "
                f"seed {self._config.seed})"
            ),
            manifest=manifest,
        )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: write a cohort to ``--dest``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", required=True, type=Path, help="new folder")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 40))
    parser.add_argument("--spacing", type=float, nargs=3, default=(3.0, 3.0, 4.0))
    parser.add_argument("--hgg-fraction", type=float, default=0.6)
    parser.add_argument("--unseen", type=int, default=2)
    parser.add_argument("--layout", choices=("folder", "csv"), default="folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = CohortConfig(
        args.patients,
        args.seed,
        tuple(args.shape),
        tuple(args.spacing),
        args.hgg_fraction,
        args.unseen if args.layout == "folder" else 0,
        args.layout,
    )
    manifest = write_cohort(args.dest, config)
    logger.info(
        "Wrote %d patients (%d HGG) and %d unseen to %s",
        len(manifest["grades"]),
        sum(g == "HGG" for g in manifest["grades"].values()),
        len(manifest["unseen_grades"]),
        args.dest,
    )


if __name__ == "__main__":
    main()
