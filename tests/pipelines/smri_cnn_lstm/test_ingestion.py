"""Ingestion nodes: normalisation, depth crop/pad, resizing, skips and their report."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from medlstm.datasets.nifti_patients import CohortError, NiftiPatientsDataset
from medlstm.pipelines.smri_cnn_lstm.inference import load_patient_for_prediction
from medlstm.pipelines.smri_cnn_lstm.ingestion import (
    IngestionParams,
    build_model_input,
    crop_depth,
    min_max_normalise,
    preprocess_volume,
    resize_in_plane,
)

SAMPLES = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "brats_samples"
)
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="no ../shared/data")
BASE = yaml.safe_load(
    (Path(__file__).parents[3] / "conf/base/parameters_smri_cnn_lstm.yml").read_text()
)["smri_cnn_lstm"]["ingestion"]
SMALL = {**BASE, "depth": 8, "size": [8, 8], "workers": 1}


def test_min_max_maps_to_0_1_and_a_constant_volume_stays_finite():
    out = min_max_normalise(np.array([[[-3.0, 1.0, 5.0]]], dtype=np.float32))
    np.testing.assert_allclose(out, [[[0.0, 0.5, 1.0]]], atol=1e-6)
    constant = min_max_normalise(np.full((2, 3, 4), 7.0, dtype=np.float32))
    assert constant.dtype == np.float32 and np.array_equal(
        constant, np.zeros((2, 3, 4))
    )


def test_crop_keeps_the_central_slices_from_start_d_minus_depth_over_2():
    volume = np.arange(41, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2))
    cropped, before, after = crop_depth(volume, 32)
    assert (before, after) == (0, 0)
    assert cropped[:, 0, 0].tolist() == list(range(4, 36))  # (41 - 32) // 2 = 4


@pytest.mark.parametrize(("slices", "before", "after"), [(26, 3, 3), (25, 3, 4)])
def test_short_volumes_are_padded_symmetrically_with_zeros(slices, before, after):
    volume = np.ones((slices, 2, 2), dtype=np.float32)
    padded, b, a = crop_depth(volume, 32)
    assert (b, a) == (before, after) and padded.shape == (32, 2, 2)
    assert padded[:before].sum() == 0 and padded[32 - after :].sum() == 0
    assert padded[before : 32 - after].min() == 1


def test_resize_in_plane_changes_only_height_and_width():
    volume = np.random.default_rng(0).random((5, 30, 24)).astype(np.float32)
    out = resize_in_plane(volume, (8, 12))
    assert out.shape == (5, 8, 12) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1  # antialiased bilinear: no overshoot here
    np.testing.assert_allclose(
        out.mean(axis=(1, 2)), volume.mean(axis=(1, 2)), atol=0.02
    )


def test_preprocess_volume_normalises_before_cropping():
    volume = np.zeros((40, 4, 4), dtype=np.float32)
    volume[0] = 100.0  # the maximum lies outside the kept slices
    volume[20] = 50.0
    out, _, _ = preprocess_volume(volume, 32, (4, 4))
    assert out.max() == pytest.approx(0.5, abs=1e-6)


def test_params_are_validated():
    assert IngestionParams.from_dict({**BASE, "size": [16, 16]}).size == (16, 16)
    for bad in (
        {"on_error": "ignore"},
        {"missing_modality": "mean"},
        {"modalities": []},
    ):
        with pytest.raises(ValueError):
            IngestionParams.from_dict({**BASE, **bad})
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) smri_cnn_lstm\.ingestion\.sizes; known: ",
    ):
        IngestionParams.from_dict({**BASE, "sizes": 1})
    without_depth = {k: v for k, v in BASE.items() if k != "depth"}
    with pytest.raises(ValueError, match=r"lacks \['depth'\]"):
        IngestionParams.from_dict(without_depth)


# --- the node on small cohorts ------------------------------------------------------------


def write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)


def make_cohort(root: Path) -> NiftiPatientsDataset:
    """Five patients: two complete, one without T2, one corrupt FLAIR, one unrecognisable."""
    rng = np.random.default_rng(0)
    full = ("t1", "t1ce", "t2", "flair")
    layout = {
        "HGG/A": full,
        "LGG/B": full,
        "HGG/C": ("t1", "t1ce", "flair"),
        "LGG/D": full,
        "HGG/E": (),
    }
    for folder, modalities in layout.items():
        name = folder.split("/")[1]
        for m in modalities:
            write(
                root / folder / f"{name}_{m}.nii.gz",
                rng.random((10, 12, 12)).astype(np.float32),
            )
        write(root / folder / f"{name}_seg.nii.gz", np.zeros((10, 12, 12), np.uint8))
    (root / "LGG/D/D_flair.nii.gz").write_bytes(b"\x1f\x8b broken")
    write(root / "HGG/E/E_dwi.nii.gz", np.ones((4, 4, 4), np.float32))
    (root / "LGG" / "F").mkdir()
    return NiftiPatientsDataset(str(root))


def test_zero_filling_flags_missing_modalities_and_the_report_counts_every_skip(
    tmp_path,
):
    model_input, report = build_model_input(make_cohort(tmp_path).load(), SMALL)
    assert model_input["patient_id"].tolist() == ["A", "B", "C"]
    assert model_input["y"].tolist() == [1, 0, 1]
    assert (
        model_input["x"].shape == (3, 4, 8, 8, 8)
        and model_input["x"].dtype == np.float32
    )
    assert model_input["present"].tolist()[2] == [True, True, False, True]
    assert not model_input["x"][2, 2].any() and model_input["x"][2, 3].any()
    assert report["zero_filled"] == [{"patient": "C", "modality": "t2"}]
    assert report["skipped_count"] == 3
    assert report["skipped_by_kind"] == {
        "empty_folder": 1,
        "unreadable": 1,
        "no_modality": 1,
    }
    unreadable = next(s for s in report["skipped"] if s["kind"] == "unreadable")
    assert unreadable["patient"] == "D" and unreadable["path"].endswith(
        "D_flair.nii.gz"
    )
    assert (
        report["padded_count"] == 0
        and report["ignored_segmentation_or_mask_files"] == 3
    )
    assert report["unrecognised_files"] == []
    assert not report["synthetic"] and not model_input["synthetic"]


def test_skip_policy_drops_patients_with_a_missing_modality(tmp_path):
    _, report = build_model_input(
        make_cohort(tmp_path).load(), {**SMALL, "missing_modality": "skip"}
    )
    assert report["patients_used"] == 2
    assert report["skipped_by_kind"]["missing_modality"] == 1


def test_raise_policy_stops_at_a_bad_file_and_names_it(tmp_path):
    root = tmp_path / "c"
    make_cohort(root)
    (root / "LGG" / "F").rmdir()
    (root / "HGG" / "E" / "E_dwi.nii.gz").rename(root / "HGG" / "E" / "E_t2.nii.gz")
    with pytest.raises(CohortError, match=r"D_flair\.nii\.gz: cannot read NIfTI"):
        build_model_input(
            NiftiPatientsDataset(str(root)).load(), {**SMALL, "on_error": "raise"}
        )


def test_an_unlabelled_cohort_cannot_be_trained_on(tmp_path):
    write(tmp_path / "P" / "P_t1.nii", np.ones((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="labelled"):
        build_model_input(
            NiftiPatientsDataset(str(tmp_path), labels="none").load(), SMALL
        )


def test_a_cohort_without_a_usable_patient_is_an_error(tmp_path):
    write(tmp_path / "HGG" / "P" / "P_dwi.nii", np.ones((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="no usable patient.*no_modality"):
        build_model_input(NiftiPatientsDataset(str(tmp_path)).load(), SMALL)


# --- real volumes ------------------------------------------------------------------------


@needs_samples
def test_the_26_slice_tcga_case_is_padded_and_reported():
    patient = load_patient_for_prediction(
        {"patient_folder": str(SAMPLES / "TCGA-FG-6692")},
        {**BASE, "size": [16, 16], "workers": 1},
    )
    x = patient["x"]
    assert x.shape == (1, 4, 32, 16, 16) and patient["present"].all()
    assert int(patient["padded_volumes"]) == 4
    assert (
        not x[0, :, :3].any() and not x[0, :, 29:].any()
    )  # (32 - 26) / 2 slices each side
    assert (
        x[0, :, 3:29].reshape(4, 26, -1).max(axis=2) > 0
    ).all()  # every real slice kept
    assert str(patient["patient_id"]) == "TCGA-FG-6692"


@needs_samples
def test_a_real_cohort_with_two_modalities_zero_fills_the_others(tmp_path):
    source = SAMPLES / "deepmedic_brats2015"
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "Grade,BraTS_2020_subject_ID\n"
        + "".join(f"HGG,{p.name}\n" for p in sorted(source.iterdir()) if p.is_dir())
    )
    cohort = NiftiPatientsDataset(str(source), labels="csv", labels_csv=str(csv)).load()
    model_input, report = build_model_input(
        cohort,
        {**BASE, "size": [16, 16], "modality_patterns": {"flair": ["flair_subtr*"]}},
    )
    assert model_input["x"].shape == (6, 4, 32, 16, 16)
    assert (
        model_input["present"][:, [1, 3]].all()
        and not model_input["present"][:, [0, 2]].any()
    )
    assert report["zero_filled_count"] == 12 and report["padded_count"] == 0
    assert len(report["unrecognised_files"]) == 6  # OTMultiClass ground truth, listed
    assert np.isfinite(model_input["x"]).all() and model_input["x"].max() <= 1.0
