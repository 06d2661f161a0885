"""The synthetic BraTS-layout cohort: deterministic, graded as asked, readable, grade-dependent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kedro.io import DatasetError

from medlstm.datasets.nifti_patients import read_volume
from medlstm.synthetic import brats

SMALL = {"shape": (24, 24, 16), "spacing": (8.0, 8.0, 10.0)}


def test_cohort_layout_grades_and_manifest(tmp_path):
    config = brats.CohortConfig(patients=5, seed=3, hgg_fraction=0.6, unseen=1, **SMALL)
    manifest = brats.write_cohort(tmp_path / "c", config)
    grades = manifest["grades"]
    assert sorted(grades.values()) == ["HGG", "HGG", "HGG", "LGG", "LGG"]
    for patient, grade in grades.items():
        files = sorted(p.name for p in (tmp_path / "c" / grade / patient).iterdir())
        assert files == [
            f"{patient}_{m}.nii.gz" for m in ("flair", "seg", "t1", "t1ce", "t2")
        ]
    assert manifest["unseen_grades"] == {"SYN_U001": "HGG"}
    assert (tmp_path / "c" / "unseen" / "SYN_U001" / "SYN_U001_t2.nii.gz").is_file()
    assert json.loads((tmp_path / "c" / brats.MANIFEST).read_text()) == manifest


def test_same_seed_same_volumes_and_patients_do_not_depend_on_cohort_size(tmp_path):
    small = brats.CohortConfig(patients=3, seed=1, unseen=0, **SMALL)
    large = brats.CohortConfig(patients=4, seed=1, unseen=0, **SMALL)
    brats.write_patient(tmp_path / "a", "P", "HGG", 1, 2, small)
    brats.write_patient(tmp_path / "b", "P", "HGG", 1, 2, large)
    brats.write_patient(tmp_path / "c", "P", "HGG", 2, 2, small)
    a, b, c = (read_volume(tmp_path / d / "P_flair.nii.gz") for d in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_volumes_read_back_identically_whatever_voxel_order_was_written(tmp_path):
    rng = np.random.default_rng(0)
    volumes, _ = brats.synth_patient(rng, "LGG", (16, 20, 12), (8.0, 8.0, 10.0))
    affine = brats._ras_affine((16, 20, 12), (8.0, 8.0, 10.0))
    arrays = []
    for orientation in brats._ORIENTATIONS:
        path = tmp_path / f"{orientation}.nii.gz"
        brats._save_nifti(volumes["t2"], affine, orientation, path)
        arrays.append(read_volume(path))
    for array in arrays[1:]:
        np.testing.assert_array_equal(array, arrays[0])
    assert arrays[0].shape == (12, 20, 16)


def test_hgg_tumours_are_larger_and_mostly_enhancing_lgg_mostly_not():
    def stats(grade: str) -> tuple[float, float]:
        sizes, enhancing = [], []
        for i in range(12):
            _, seg = brats.synth_patient(np.random.default_rng([9, i]), grade)
            sizes.append(np.count_nonzero(seg))
            enhancing.append(np.count_nonzero(seg == 4) > 0)
        return float(np.median(sizes)), float(np.mean(enhancing))

    hgg_size, hgg_enhancing = stats("HGG")
    lgg_size, lgg_enhancing = stats("LGG")
    assert hgg_size > 2 * lgg_size
    assert hgg_enhancing >= 0.75 and lgg_enhancing <= 0.5


def test_a_volume_looks_like_a_head_in_every_modality():
    volumes, seg = brats.synth_patient(np.random.default_rng(4), "HGG")
    for modality, volume in volumes.items():
        corner, centre = volume[:4, :4].mean(), volume[24:40, 24:40, 15:25].mean()
        assert centre > 5 * corner, modality
    # Oedema is bright on FLAIR, CSF-like tissue is bright on T2 and dark on FLAIR.
    flair = volumes["flair"]
    assert (
        flair[seg == 2].mean() > flair[(seg == 0) & (flair > 0.2 * flair.max())].mean()
    )


def test_ensure_cohort_regenerates_only_when_settings_change(tmp_path):
    dest = tmp_path / "cohort"
    config = brats.CohortConfig(patients=2, unseen=0, **SMALL)
    brats.ensure_cohort(dest, config)
    stamp = (dest / brats.MANIFEST).stat().st_mtime_ns
    brats.ensure_cohort(dest, config)
    assert (dest / brats.MANIFEST).stat().st_mtime_ns == stamp
    brats.ensure_cohort(dest, brats.CohortConfig(patients=3, unseen=0, **SMALL))
    assert len(brats.read_manifest(dest)["grades"]) == 3
    assert not list(tmp_path.glob(".cohort.tmp-*"))


def test_ensure_cohort_never_overwrites_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "patient").mkdir()
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        brats.ensure_cohort(tmp_path / "real", brats.CohortConfig(patients=2, **SMALL))
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["patient"]


@pytest.mark.parametrize("layout", ["folder", "csv"])
def test_synthetic_dataset_loads_labelled_and_marked_synthetic(tmp_path, layout):
    dataset = brats.SyntheticBratsDataset(
        str(tmp_path / "c"),
        patients=4,
        hgg_fraction=0.5,
        unseen=0,
        layout=layout,
        **SMALL,
    )
    assert dataset.exists()  # before generation: the pipeline's preflight must not fail
    cohort = dataset.load()
    assert cohort.synthetic and "synthetic" in cohort.description
    assert sorted(p.label for p in cohort.patients) == [0, 0, 1, 1]
    assert {p.patient_id: p.grade for p in cohort.patients} == cohort.manifest["grades"]


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="hgg_fraction"):
        brats.CohortConfig(patients=4, hgg_fraction=1.0)
    with pytest.raises(ValueError, match="unseen patients need layout: folder"):
        brats.CohortConfig(layout="csv", unseen=1)


def test_command_line_writes_a_cohort(tmp_path):
    brats.main(
        [
            "--dest",
            str(tmp_path / "cli"),
            "--patients",
            "2",
            "--seed",
            "5",
            "--shape",
            "16",
            "16",
            "12",
            "--unseen",
            "0",
        ]
    )
    manifest = brats.read_manifest(tmp_path / "cli")
    assert manifest["config"]["seed"] == 5 and len(manifest["grades"]) == 2
