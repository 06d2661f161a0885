"""Patient-level folds, cross-validation, the final model and single-patient prediction."""

from __future__ import annotations

import numpy as np
import pytest

from medlstm.models.cnn3d_lstm import CNN3DLSTM
from medlstm.pipelines.smri_cnn_lstm.inference import predict_patient
from medlstm.pipelines.smri_cnn_lstm.training import (
    check_folds,
    cross_validate,
    make_folds,
    patient_groups,
    summarise_folds,
    train_final_model,
    training_params,
)

SPLIT = {
    "strategy": "kfold",
    "n_folds": 3,
    "holdout_min_patients": 150,
    "test_fraction": 0.2,
    "val_fraction": 0.25,
    "group_pattern": None,
    "seed": 0,
}
TINY_MODEL = {"extractor": "gap", "channels": [4], "hidden_size": 4, "dropout": 0.0}
TRAINING = {
    "epochs": 12,
    "batch_size": 4,
    "lr": 0.001,
    "early_stopping_patience": None,
    "lr_plateau_patience": None,
    "show_progress": False,
    "seed": 0,
}


def cohort(
    n_hgg: int = 12, n_lgg: int = 9, ids: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Volumes that a tiny model separates: HGG bright, LGG dark, both noisy."""
    rng = np.random.default_rng(0)
    y = np.array([1] * n_hgg + [0] * n_lgg)
    x = (
        rng.random((len(y), 2, 4, 4, 4)).astype(np.float32) * 0.5
        + 0.5 * y[:, None, None, None, None]
    )
    ids = ids or [f"P{i:02d}" for i in range(len(y))]
    return {"x": x.astype(np.float32), "y": y, "patient_id": np.array(ids)}


def sides(split: dict) -> list[set[str]]:
    return [set(split[side]) for side in ("train", "val", "test") if side in split]


def test_kfold_splits_are_disjoint_stratified_and_test_everyone_once():
    data = cohort()
    folds = make_folds(data, SPLIT)
    assert folds["strategy"] == "kfold" and len(folds["folds"]) == 3
    grade = dict(zip(data["patient_id"], data["y"], strict=True))
    for fold in folds["folds"]:
        train, val, test = sides(fold)
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(data["patient_id"])
        assert {grade[p] for p in test} == {0, 1} and {grade[p] for p in val} == {0, 1}
    tested = sorted(p for fold in folds["folds"] for p in fold["test"])
    assert tested == sorted(data["patient_id"])
    train, val = sides(folds["final"])
    assert train | val == set(data["patient_id"]) and not train & val


def test_folders_of_one_patient_stay_on_one_side():
    ids = [f"pat{i // 2:02d}_{i % 2}" for i in range(24)]
    data = cohort(12, 12, ids)
    data["y"] = np.array([i // 2 % 2 for i in range(24)])  # one grade per patient
    folds = make_folds(data, {**SPLIT, "group_pattern": r"^(.*)_\d+$"})
    for split in [*folds["folds"], folds["final"]]:
        keys = [{p.split("_")[0] for p in side} for side in sides(split)]
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                assert not a & b


def test_patient_groups_fall_back_to_the_folder_name():
    groups = patient_groups(np.array(["brats_pat1_1", "other"]), r"^(brats_pat\d+)_")
    assert groups.tolist() == ["brats_pat1", "other"]


def test_auto_strategy_uses_a_hold_out_for_large_cohorts():
    folds = make_folds(
        cohort(), {**SPLIT, "strategy": "auto", "holdout_min_patients": 20}
    )
    assert folds["strategy"] == "holdout" and len(folds["folds"]) == 1
    assert len(folds["folds"][0]["test"]) == pytest.approx(21 * 0.2, abs=2)


def test_check_folds_refuses_leakage_and_double_testing():
    ids = np.array(["a", "b", "c", "d"])
    good = {
        "folds": [{"fold": 0, "train": ["a"], "val": ["b"], "test": ["c", "d"]}],
        "final": {"train": ["a", "b"], "val": ["c", "d"]},
    }
    check_folds(good, ids, ids)
    with pytest.raises(ValueError, match="leakage in split 0.*'a'.*train and test"):
        check_folds(
            {
                **good,
                "folds": [{"fold": 0, "train": ["a"], "val": ["b"], "test": ["a"]}],
            },
            ids,
            ids,
        )
    grouped = np.array(["g1", "g1", "g2", "g3"])  # a and b: one patient
    with pytest.raises(ValueError, match="'g1'.*train and val"):
        check_folds(good, ids, grouped)
    twice = {
        **good,
        "folds": [
            {"fold": 0, "train": [], "val": [], "test": ["c"]},
            {"fold": 1, "train": [], "val": [], "test": ["c"]},
        ],
    }
    with pytest.raises(ValueError, match="test set of two folds"):
        check_folds(twice, ids, ids)


def test_a_grade_with_fewer_than_two_patients_cannot_be_split():
    with pytest.raises(ValueError, match="at least 2 patients of each grade.*'LGG': 1"):
        make_folds(cohort(12, 1), SPLIT)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="strategy"):
        make_folds(cohort(), {**SPLIT, "strategy": "loo"})


def test_an_architecture_overrides_only_the_keys_it_names():
    params = training_params(TRAINING, {"lr": 0.5})
    assert params.lr == 0.5 and params.epochs == TRAINING["epochs"]
    assert training_params(TRAINING, None).lr == TRAINING["lr"]
    with pytest.raises(ValueError, match="smri_cnn_lstm.training.learning_rate"):
        training_params(TRAINING, {"learning_rate": 0.1})


def test_summary_is_mean_and_sample_std_over_folds_that_have_the_metric():
    summary = summarise_folds(
        [
            {"accuracy": 0.5, "roc_auc": 0.6, "sensitivity": 1.0, "specificity": 0.0},
            {"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0},
        ]
    )
    assert summary["accuracy"]["mean"] == pytest.approx(0.75)
    assert summary["accuracy"]["std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert summary["roc_auc"] == {"mean": 0.6, "std": 0.0, "n_folds": 1}


def test_cross_validation_learns_a_separable_task_and_reports_every_fold():
    data = cohort()
    folds = make_folds(data, SPLIT)
    cv, history, metrics = cross_validate(
        data, folds, "tiny", TINY_MODEL, TRAINING, {"lr": 0.03}
    )
    assert cv["label"] == "tiny" and len(cv["folds"]) == 3
    predicted = sorted(p["patient"] for f in cv["folds"] for p in f["predictions"])
    assert predicted == sorted(data["patient_id"])
    assert all(len(f["history"]) == TRAINING["epochs"] for f in cv["folds"])
    assert cv["pooled"]["accuracy"] >= 0.8 and cv["pooled"]["roc_auc"] >= 0.9
    assert {"fold0.val_loss", "fold2.train_accuracy"} <= set(history)
    assert [p["step"] for p in history["fold1.val_loss"]] == list(range(1, 13))
    assert metrics["cv.accuracy.mean"]["value"] == pytest.approx(
        cv["summary"]["accuracy"]["mean"]
    )
    assert "pooled.sensitivity" in metrics and "cv.specificity.std" in metrics


def test_the_final_model_trains_on_every_patient_and_predicts_one():
    data = cohort()
    folds = make_folds(data, SPLIT)
    network, history = train_final_model(
        data, folds, TINY_MODEL, TRAINING, {"epochs": 6, "lr": 0.03}
    )
    assert isinstance(network, CNN3DLSTM) and not network.training
    assert len(history["final.train_loss"]) == 6
    bright = predict_patient(network, {"x": data["x"][:1]}, "tiny")
    dark = predict_patient(network, {"x": data["x"][-1:]}, "tiny")
    assert bright["model"] == "tiny" and 0.0 <= bright["p_hgg"] <= 1.0
    assert bright["p_hgg"] > dark["p_hgg"]
    assert bright["grade"] == ("HGG" if bright["p_hgg"] >= 0.5 else "LGG")
