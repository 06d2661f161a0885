"""lstm_scratch nodes: data, normalisation, training settings, the torch twin."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from medlstm.models.lstm_twin import TorchTwinLSTM
from medlstm.pipelines.lstm_scratch import ingestion, training
from medlstm.scratch import LSTMModel
from tests.conftest import PROJECT_ROOT

PARAMS = yaml.safe_load(
    (PROJECT_ROOT / "conf/base/parameters_lstm_scratch.yml").read_text()
)["lstm_scratch"]


@pytest.fixture
def reg_params() -> dict:
    params = copy.deepcopy(PARAMS["regression"]["data"])
    for split, n in (("train", 300), ("val", 100), ("test", 100)):
        params["splits"][split]["n"] = n
    return params


@pytest.fixture
def cls_params() -> dict:
    params = copy.deepcopy(PARAMS["classification"]["data"])
    params["n"] = {"train": 200, "val": 60, "test": 100}
    return params


def test_arithmetic_test_split_lies_outside_the_training_ranges(reg_params):
    frame = ingestion.make_arithmetic_sequences(reg_params)
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    assert train.start.max() < test.start.min()
    assert train.step.abs().max() < test.step.abs().min()
    assert (train.step > 0).any() and (train.step < 0).any()
    # Targets are the noise-free next value; test windows are noise-free too.
    length = reg_params["length"]
    np.testing.assert_allclose(frame.target, frame.start + frame.step * length)
    np.testing.assert_allclose(
        test[f"x_{length - 1}"], test.start + test.step * (length - 1)
    )
    assert not np.allclose(train.x_0, train.start)  # training windows are noisy


def test_resizing_one_split_leaves_the_others_unchanged(reg_params):
    before = ingestion.make_arithmetic_sequences(reg_params)
    reg_params["splits"]["train"]["n"] = 50
    after = ingestion.make_arithmetic_sequences(reg_params)
    assert (after.split == "train").sum() == 50
    for split in ("val", "test"):
        np.testing.assert_array_equal(
            before[before.split == split].drop(columns="split").to_numpy(),
            after[after.split == split].drop(columns="split").to_numpy(),
        )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda p: p["splits"]["test"].update(start=[0.0, 2000.0]),
            "overlaps the training range",
        ),
        (lambda p: p["splits"]["test"].update(abs_step=[5.0, 1.0]), "low < high"),
        (lambda p: p["splits"].pop("val"), "must define"),
        (lambda p: p.update(length=2), "length' must be >= 3"),
        (
            lambda p: p["splits"]["train"].update(n=0),
            "splits.train.n' must be a positive",
        ),
        (
            lambda p: p["splits"]["train"].update(noise=-1),
            "noise' must be a number >= 0",
        ),
    ],
)
def test_bad_regression_parameters_are_named(reg_params, change, message):
    change(reg_params)
    with pytest.raises(ValueError, match=message):
        ingestion.make_arithmetic_sequences(reg_params)


def test_regression_normalisation_is_shift_and_scale_invariant(reg_params):
    frame = ingestion.make_arithmetic_sequences(reg_params)
    arrays = ingestion.regression_arrays(frame)
    moved = frame.copy()
    value_columns = [c for c in frame.columns if c.startswith("x_") or c == "target"]
    moved[value_columns] = 1000.0 + 7.0 * frame[value_columns]
    moved_arrays = ingestion.regression_arrays(moved)
    for split in ingestion.SPLITS:
        np.testing.assert_allclose(moved_arrays.x[split], arrays.x[split], atol=1e-9)
        np.testing.assert_allclose(moved_arrays.y[split], arrays.y[split], atol=1e-9)
    # Noise-free test windows map to the unit ramp, and their target to +-1.
    np.testing.assert_allclose(np.abs(arrays.y["test"]), 1.0)
    assert arrays.x["train"].shape == (300, reg_params["length"], 1)


def test_pattern_sequences_are_balanced_and_standardised(cls_params):
    frame = ingestion.make_pattern_sequences(cls_params)
    counts = frame[frame.split == "test"].label_name.value_counts()
    assert set(counts) == {25} and set(counts.index) == set(cls_params["classes"])
    arrays = ingestion.classification_arrays(frame, cls_params)
    x = arrays.x["train"][..., 0]
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(x.std(axis=1), 1.0)
    assert arrays.output_size == 4 and arrays.class_names == cls_params["classes"]
    # Rising and falling sequences are told apart by their trend alone.
    slope = np.polyfit(np.arange(x.shape[1]), x.T, 1)[0]
    assert (slope[arrays.y["train"] == 0] > 0).all() and (
        slope[arrays.y["train"] == 1] < 0
    ).all()


@pytest.mark.parametrize(
    "classes", [["rising"], ["rising", "rising"], ["rising", "spiky"]]
)
def test_bad_class_lists_are_refused(cls_params, classes):
    cls_params["classes"] = classes
    with pytest.raises(ValueError, match="classification.data.classes"):
        ingestion.make_pattern_sequences(cls_params)


def test_settings_the_numpy_trainer_lacks_are_refused_by_name():
    settings = dict(PARAMS["regression"]["training"], optimizer="sgd")
    with pytest.raises(
        ValueError, match=r"'lstm_scratch.regression.training.optimizer' is 'sgd'"
    ):
        training._training_params(settings, "regression")
    with pytest.raises(
        ValueError,
        match=r"Unknown parameter\(s\) lstm_scratch\.regression\.training\.momentum;",
    ):
        training._training_params({"epochs": 1, "momentum": 0.9}, "regression")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_twin_starts_as_the_numpy_model(dtype):
    model = LSTMModel(1, 6, 3, num_layers=2, dtype=dtype, seed=4)
    twin = TorchTwinLSTM.from_numpy_model(model)
    x = np.random.default_rng(0).normal(size=(5, 7, 1)).astype(dtype)
    with torch.no_grad():
        out = twin(torch.from_numpy(x)).numpy()
    assert out.dtype == np.dtype(dtype)
    atol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(out, model(x)[:, -1], rtol=0, atol=atol)
    assert twin.config["dtype"] == dtype


def test_both_trainers_share_data_settings_and_thread_count(reg_params):
    arrays = ingestion.regression_arrays(
        ingestion.make_arithmetic_sequences(reg_params)
    )
    model_params = dict(PARAMS["regression"]["model"], hidden_size=4)
    settings = dict(PARAMS["regression"]["training"], epochs=2)
    before = torch.get_num_threads()
    state, numpy_log = training.train_numpy(
        arrays, model_params, settings, {"threads": 1}
    )
    twin, torch_log = training.train_torch(
        arrays, model_params, settings, {"threads": 1}
    )
    assert torch.get_num_threads() == before  # restored
    for log in (numpy_log, torch_log):
        assert [r["epoch"] for r in log["history"]] == [1, 2]
        assert log["summary"]["threads"] == 1 and log["summary"]["dtype"] == "float32"
        assert log["summary"]["fit_seconds"] > 0
    assert LSTMModel.from_state_dict(state).hidden_size == 4
    assert twin.config["hidden_size"] == 4
    with pytest.raises(ValueError, match="compute.threads"):
        training.train_numpy(arrays, model_params, settings, {"threads": 0})
