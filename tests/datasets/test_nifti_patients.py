"""NiftiPatientsDataset, modality recognition and volume reading, on small files and real ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from kedro.io import DatasetError

from medlstm.datasets.nifti_patients import (
    CohortError,
    NiftiPatientsDataset,
    NiftiVolumeError,
    read_patient_folder,
    read_volume,
    recognise_modalities,
)

MODALITIES = ["t1", "t1ce", "t2", "flair"]
SAMPLES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brats_samples"
)
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="no ../shared/data")


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def volume(shape=(6, 5, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def patient(folder: Path, names: list[str]) -> Path:
    for name in names:
        write_nifti(folder / name, volume())
    return folder


# --- modality recognition ------------------------------------------------------------


def names(match) -> dict[str, str]:
    return {m: p.name for m, p in match.files.items()}


def test_recognises_brats_2017_to_2020_names_and_ignores_segmentation():
    files = [Path(f"BraTS20_Training_001_{m}.nii.gz") for m in (*MODALITIES, "seg")]
    match = recognise_modalities(files, MODALITIES)
    assert names(match) == {m: f"BraTS20_Training_001_{m}.nii.gz" for m in MODALITIES}
    assert [p.name for p in match.ignored] == ["BraTS20_Training_001_seg.nii.gz"]
    assert match.unrecognised == ()


def test_recognises_brats_2021_plus_names_case_insensitively():
    suffixes = {"t1": "T1N", "t1ce": "t1c", "t2": "T2W", "flair": "t2f"}
    files = [Path(f"BraTS-GLI-00000-000-{s}.NII.GZ") for s in suffixes.values()]
    match = recognise_modalities(
        [*files, Path("BraTS-GLI-00000-000-seg.nii.gz")], MODALITIES
    )
    assert {m: p.name for m, p in match.files.items()} == {
        m: f"BraTS-GLI-00000-000-{s}.NII.GZ" for m, s in suffixes.items()
    }


def test_t1_is_not_confused_with_t1ce_and_masks_are_ignored():
    files = [
        Path("p_t1ce.nii"),
        Path("p_t1.nii"),
        Path("brainmask.nii.gz"),
        Path("p_t1_mask.nii"),
    ]
    match = recognise_modalities(files, MODALITIES)
    assert names(match) == {"t1": "p_t1.nii", "t1ce": "p_t1ce.nii"}
    assert sorted(p.name for p in match.ignored) == [
        "brainmask.nii.gz",
        "p_t1_mask.nii",
    ]


def test_mapping_patterns_name_modalities_the_conventions_miss():
    files = [
        Path("Flair_subtrMeanDivStd.nii.gz"),
        Path("MPRAGE_post.nii.gz"),
        Path("OTMultiClass.nii.gz"),
    ]
    assert "t1ce" not in recognise_modalities(files, MODALITIES).files
    match = recognise_modalities(files, MODALITIES, {"t1ce": ["mprage_post"]})
    assert names(match) == {
        "flair": "Flair_subtrMeanDivStd.nii.gz",
        "t1ce": "MPRAGE_post.nii.gz",
    }
    assert [p.name for p in match.unrecognised] == ["OTMultiClass.nii.gz"]


def test_two_files_for_one_modality_is_an_error_naming_both():
    with pytest.raises(
        CohortError, match=r"two files for modality flair.*a_flair.*b_FLAIR"
    ):
        recognise_modalities(
            [Path("x/a_flair.nii"), Path("x/b_FLAIR.nii.gz")], MODALITIES
        )


def test_a_name_with_two_modalities_is_ambiguous():
    with pytest.raises(CohortError, match="several modalities") as info:
        recognise_modalities([Path("t1_t2_fused.nii")], MODALITIES)
    assert info.value.kind == "ambiguous"


def test_patterns_for_unknown_modalities_are_refused():
    with pytest.raises(ValueError, match="pd"):
        recognise_modalities([Path("a_t1.nii")], MODALITIES, {"pd": ["*pd*"]})


# --- reading volumes -------------------------------------------------------------------


def test_read_volume_is_float32_depth_first_whatever_the_voxel_order(tmp_path):
    data = volume((6, 5, 4))  # x, y, z in RAS
    ras = read_volume(write_nifti(tmp_path / "ras.nii.gz", data))
    assert ras.dtype == np.float32 and ras.shape == (4, 5, 6)
    np.testing.assert_array_equal(ras, data.transpose(2, 1, 0))
    # The same image stored slice-first and flipped (LPS-like): same array after reading.
    ornt = np.array([[1, 1], [2, -1], [0, -1]])
    stored = nib.orientations.apply_orientation(data, ornt)
    affine = nib.orientations.inv_ornt_aff(ornt, data.shape)
    np.testing.assert_array_equal(
        read_volume(write_nifti(tmp_path / "o.nii", stored, affine)), ras
    )


def test_read_volume_applies_header_scaling_and_drops_a_trailing_unit_axis(tmp_path):
    image = nib.Nifti1Image(
        np.arange(24, dtype=np.int16).reshape(2, 3, 4, 1), np.eye(4)
    )
    image.header.set_slope_inter(2.0, 1.0)
    nib.save(image, tmp_path / "scaled.nii")
    out = read_volume(tmp_path / "scaled.nii")
    assert out.shape == (4, 3, 2)
    assert out.max() == 23 * 2 + 1


@pytest.mark.parametrize("shape", [(5, 6), (4, 4, 4, 3)])
def test_read_volume_refuses_2d_and_4d_images_naming_the_file(tmp_path, shape):
    path = write_nifti(tmp_path / "bad_t1.nii.gz", np.zeros(shape, np.float32))
    with pytest.raises(NiftiVolumeError, match=r"bad_t1\.nii\.gz.*3-D") as info:
        read_volume(path)
    assert info.value.kind == "not_3d"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_read_volume_refuses_non_finite_voxels(tmp_path, bad):
    data = volume()
    data[1, 2, 3] = bad
    path = write_nifti(tmp_path / "nan.nii", data)
    with pytest.raises(NiftiVolumeError, match=r"nan\.nii: 1 NaN or infinite"):
        read_volume(path)


def test_read_volume_names_a_truncated_gzip(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", volume((20, 20, 20)))
    truncated = tmp_path / "cut_flair.nii.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(
        NiftiVolumeError, match=r"cut_flair\.nii\.gz: cannot read NIfTI"
    ):
        read_volume(truncated)


@pytest.mark.parametrize(
    "content",
    [b"not a nifti at all" * 30, gzip.compress(b"\x00" * 400)],
    ids=["garbage", "gz"],
)
def test_read_volume_names_a_corrupt_file(tmp_path, content):
    path = tmp_path / "corrupt_t2.nii.gz"
    path.write_bytes(content)
    with pytest.raises(
        NiftiVolumeError, match=r"corrupt_t2\.nii\.gz: cannot read"
    ) as info:
        read_volume(path)
    assert info.value.kind == "unreadable"


# --- the dataset -------------------------------------------------------------------------


def test_folder_layout_labels_hgg_1_and_lgg_0(tmp_path):
    patient(tmp_path / "HGG" / "A", ["A_t1.nii.gz", "A_flair.nii.gz"])
    patient(tmp_path / "lgg" / "B", ["B_t2.nii"])
    (tmp_path / "name_mapping.csv").write_text("ignored")
    cohort = NiftiPatientsDataset(str(tmp_path)).load()
    assert [(p.patient_id, p.grade, p.label) for p in cohort.patients] == [
        ("A", "HGG", 1),
        ("B", "LGG", 0),
    ]
    assert [f.name for f in cohort.patients[0].nifti_files] == [
        "A_flair.nii.gz",
        "A_t1.nii.gz",
    ]
    assert cohort.rejected == () and not cohort.synthetic


def test_empty_and_non_nifti_folders_are_rejected_with_reasons(tmp_path):
    patient(tmp_path / "HGG" / "ok", ["ok_t1.nii"])
    (tmp_path / "HGG" / "empty").mkdir()
    (tmp_path / "LGG" / "notes").mkdir(parents=True)
    (tmp_path / "LGG" / "notes" / "readme.txt").write_text("x")
    cohort = NiftiPatientsDataset(str(tmp_path)).load()
    assert [p.patient_id for p in cohort.patients] == ["ok"]
    assert {(Path(r.path).name, r.kind) for r in cohort.rejected} == {
        ("empty", "empty_folder"),
        ("notes", "no_nifti"),
    }


def test_csv_labels_and_patients_missing_from_the_csv(tmp_path):
    for name in ("P1", "P2", "P3", "P4"):
        patient(tmp_path / name, [f"{name}_t1.nii"])
    csv = tmp_path / "name_mapping.csv"
    csv.write_text("Grade,BraTS_2020_subject_ID\nHGG,P1\nlgg ,P2\nGBM,P4\n")
    cohort = NiftiPatientsDataset(
        str(tmp_path), labels="csv", labels_csv=str(csv)
    ).load()
    assert [(p.patient_id, p.label) for p in cohort.patients] == [("P1", 1), ("P2", 0)]
    problems = {Path(r.path).name: r.problem for r in cohort.rejected}
    assert problems.keys() == {"P3", "P4"}
    assert "not in name_mapping.csv" in problems["P3"]
    assert "'GBM'" in problems["P4"]
    assert {r.kind for r in cohort.rejected} == {"label_missing"}


def test_a_patient_listed_twice_in_the_csv_is_an_error(tmp_path):
    patient(tmp_path / "P1", ["P1_t1.nii"])
    csv = tmp_path / "grades.csv"
    csv.write_text("Grade,BraTS_2020_subject_ID\nHGG,P1\nLGG,P1 \n")
    with pytest.raises(
        DatasetError, match=r"grades\.csv: patients listed more than once"
    ):
        NiftiPatientsDataset(str(tmp_path), labels="csv", labels_csv=str(csv)).load()


def test_unlabelled_cohorts_load_without_grades(tmp_path):
    patient(tmp_path / "X", ["X_flair.nii"])
    cohort = NiftiPatientsDataset(str(tmp_path), labels="none").load()
    assert cohort.patients[0].label is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": "csv"}, "labels_csv is required"),
        ({"labels": "folders"}, "labels must be"),
        ({"labels_csv": "x.csv"}, "labels_csv is required"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        NiftiPatientsDataset(str(tmp_path), **kwargs)


def test_layout_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        NiftiPatientsDataset(str(tmp_path / "nowhere")).load()
    with pytest.raises(DatasetError, match="no patient folders"):
        NiftiPatientsDataset(str(tmp_path), labels="none").load()
    (tmp_path / "HGG").mkdir()
    with pytest.raises(DatasetError, match="no patient folders"):
        NiftiPatientsDataset(str(tmp_path)).load()
    (tmp_path / "HGG").rmdir()
    patient(tmp_path / "P1", ["P1_t1.nii"])
    with pytest.raises(DatasetError, match="needs HGG/ and LGG/"):
        NiftiPatientsDataset(str(tmp_path)).load()
    (tmp_path / "labels.csv").write_text("BraTS_2020_subject_ID,grade\nP1,HGG\n")
    with pytest.raises(DatasetError, match="no column 'Grade'"):
        NiftiPatientsDataset(
            str(tmp_path), labels="csv", labels_csv=str(tmp_path / "labels.csv")
        ).load()


def test_the_dataset_is_read_only(tmp_path):
    with pytest.raises(DatasetError, match="read-only"):
        NiftiPatientsDataset(str(tmp_path)).save({"A": []})


def test_read_patient_folder_errors(tmp_path):
    with pytest.raises(CohortError, match="not a folder"):
        read_patient_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CohortError, match="empty folder"):
        read_patient_folder(tmp_path / "empty")


# --- the real samples in ../shared/data/brats_samples --------------------------------------


@needs_samples
def test_real_brats2015_folders_load_flair_and_t1c_and_ignore_ground_truth():
    cohort = NiftiPatientsDataset(
        str(SAMPLES / "deepmedic_brats2015"), labels="none"
    ).load()
    assert len(cohort.patients) == 6 and cohort.rejected == ()
    first = cohort.patients[0]
    match = recognise_modalities(first.nifti_files, MODALITIES)
    assert names(match) == {
        "flair": "Flair_subtrMeanDivStd.nii.gz",
        "t1ce": "T1c_subtrMeanDivStd.nii.gz",
    }
    assert [p.name for p in match.ignored] == ["brainmask.nii.gz"]
    assert [p.name for p in match.unrecognised] == ["OTMultiClass.nii.gz"]
    # A mapping parameter for this naming gives the same answer explicitly.
    explicit = recognise_modalities(
        first.nifti_files,
        MODALITIES,
        {"flair": ["flair_subtr*"], "t1ce": ["t1c_subtr*"]},
    )
    assert explicit.files == match.files
    flair = read_volume(match.files["flair"])
    assert flair.shape == (155, 240, 240) and np.isfinite(flair).all()


@needs_samples
def test_real_tcga_case_loads_four_int16_modalities_with_26_slices():
    folder = read_patient_folder(SAMPLES / "TCGA-FG-6692", grade="LGG")
    match = recognise_modalities(folder.nifti_files, MODALITIES)
    assert sorted(match.files) == sorted(MODALITIES)
    shapes = {m: read_volume(p).shape for m, p in match.files.items()}
    assert {s[0] for s in shapes.values()} == {26}
    assert len({s[1:] for s in shapes.values()}) == 3  # three in-plane matrices
    assert folder.label == 0
