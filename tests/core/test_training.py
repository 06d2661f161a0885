"""The shared training loop: validation, determinism, early stopping, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medlstm.core.training import (
    StepOutput,
    TrainingParams,
    balanced_sample_weights,
    class_weights_from_labels,
    fit,
    predict,
    resolve_device,
)
from tests.core.toy import ToyLSTM, toy_data, train


def test_params_reject_unknown_key_naming_it():
    with pytest.raises(ValueError, match=r"ecg\.training\.lr_patiense"):
        TrainingParams.from_dict({"lr_patiense": 3}, where="ecg.training")
    with pytest.raises(ValueError, match=r"'ecg\.training' must be a mapping.*list"):
        TrainingParams.from_dict(["epochs", 3], where="ecg.training")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": "ten"}, r"x\.epochs' must be int"),
        ({"epochs": True}, r"x\.epochs' must be int"),
        ({"lr": -1.0}, r"x\.lr' must be > 0"),
        ({"optimizer": "adagrad"}, r"x\.optimizer' is 'adagrad'"),
        ({"label_smoothing": 1.5}, r"x\.label_smoothing' must be in"),
    ],
)
def test_params_reject_malformed_values(values, message):
    with pytest.raises(ValueError, match=message):
        TrainingParams.from_dict(values, where="x")


def test_cuda_requested_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_training_learns_and_records_history():
    result = train(None, epochs=6)
    assert [r["epoch"] for r in result.history] == list(range(1, 7))
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr"} <= set(
        result.history[0]
    )
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert max(r["val_accuracy"] for r in result.history) > 0.8


def test_same_seed_gives_identical_metrics():
    first, second = train(None, epochs=3), train(None, epochs=3)
    strip = [
        {k: v for k, v in r.items() if k != "epoch_seconds"} for r in first.history
    ]
    assert strip == [
        {k: v for k, v in r.items() if k != "epoch_seconds"} for r in second.history
    ]


def _overfitting_sets():
    """Validation labels unrelated to the inputs: validation loss soon turns upwards."""
    train_set, val_set = toy_data()
    x, _ = val_set.tensors
    y = torch.randint(0, 2, (len(x),), generator=torch.Generator().manual_seed(3))
    return train_set, torch.utils.data.TensorDataset(x, y)


def test_early_stopping_restores_best_weights():
    train_set, val_set = _overfitting_sets()
    params = TrainingParams.from_dict(
        {"epochs": 60, "lr": 0.05, "early_stopping_patience": 2, "show_progress": False}
    )
    torch.manual_seed(0)
    result = fit(ToyLSTM(), train_set, val_set, params)
    losses = [r["val_loss"] for r in result.history]
    assert result.stopped_early
    assert len(result.history) < 60
    assert len(result.history) - result.best_epoch == 2
    assert result.best_epoch == int(np.argmin(losses)) + 1
    x, y = val_set.tensors
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(result.model.eval()(x), y).item()
    assert loss == pytest.approx(min(losses), rel=1e-5)


def test_lr_is_reduced_on_plateau():
    params = TrainingParams.from_dict(
        {
            "epochs": 8,
            "lr": 0.05,
            "lr_plateau_patience": 0,
            "lr_plateau_factor": 0.5,
            "early_stopping_patience": None,
            "show_progress": False,
        }
    )
    result = fit(ToyLSTM(), *_overfitting_sets(), params)
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == 0.05
    assert min(lrs) <= 0.025
    assert all(b <= a for a, b in zip(lrs, lrs[1:], strict=False))


def test_class_weights_and_sample_weights():
    labels = np.array([0, 0, 0, 1])
    weights = class_weights_from_labels(labels, 3, "balanced")
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])
    assert class_weights_from_labels(labels, 3, "none") is None
    sample = balanced_sample_weights(labels)
    assert sample[labels == 0].sum() == pytest.approx(sample[labels == 1].sum())


def test_weighted_sampling_needs_one_weight_per_sample():
    params = TrainingParams.from_dict(
        {"epochs": 1, "weighted_sampling": True, "show_progress": False}
    )
    train_set, val_set = toy_data()
    with pytest.raises(ValueError, match="one sample weight per training sample"):
        fit(ToyLSTM(), train_set, val_set, params, sample_weights=np.ones(3))


def test_custom_batch_loss_without_logits_monitors_loss_only():
    def mse_on_first_logit(model, batch):
        x, y = batch
        return StepOutput(torch.nn.functional.mse_loss(model(x)[:, 0], y.float()))

    params = TrainingParams.from_dict({"epochs": 2, "show_progress": False})
    train_set, val_set = toy_data()
    result = fit(ToyLSTM(), train_set, val_set, params, batch_loss=mse_on_first_logit)
    assert "val_accuracy" not in result.history[0]
    with pytest.raises(ValueError, match="val_accuracy"):
        fit(
            ToyLSTM(),
            train_set,
            val_set,
            TrainingParams.from_dict(
                {
                    "epochs": 1,
                    "monitor": "val_accuracy",
                    "monitor_mode": "max",
                    "show_progress": False,
                }
            ),
            batch_loss=mse_on_first_logit,
        )


def test_empty_validation_set_is_refused():
    train_set, val_set = toy_data()
    empty = torch.utils.data.TensorDataset(
        torch.zeros(0, 10, 3), torch.zeros(0, dtype=torch.long)
    )
    with pytest.raises(ValueError, match="non-empty"):
        fit(ToyLSTM(), train_set, empty, TrainingParams.from_dict({"epochs": 1}))


def test_predict_returns_outputs_in_order():
    _, val_set = toy_data()
    model = ToyLSTM().eval()
    (logits,) = predict(model, val_set, batch_size=5, device="cpu")
    with torch.no_grad():
        expected = model(val_set.tensors[0]).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - file may be mid-replace
        return 0


def test_killed_training_resumes_from_its_checkpoint(tmp_path):
    """Kill a real training process after its second epoch; the restart continues
    from the checkpoint and ends exactly where an uninterrupted run ends."""
    epochs, checkpoint = 6, tmp_path / "toy.pt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.core.toy", str(checkpoint), str(epochs), "0.01"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 120
        while _checkpoint_epoch(checkpoint) < 2:
            assert proc.poll() is None, (
                "training process ended before it could be interrupted"
            )
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _checkpoint_epoch(checkpoint)
    assert 2 <= killed_at < epochs

    resumed = train(str(checkpoint), epochs)
    assert resumed.resumed_from_epoch == killed_at
    assert [r["epoch"] for r in resumed.history] == list(range(1, epochs + 1))
    assert not checkpoint.exists() and (tmp_path / "toy.best.pt").exists()

    uninterrupted = train(None, epochs)
    for a, b in zip(resumed.history, uninterrupted.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)


def test_checkpoint_of_other_configuration_is_not_resumed(tmp_path, caplog):
    checkpoint = tmp_path / "toy.pt"
    train(str(checkpoint), 2)
    (tmp_path / "toy.best.pt").rename(
        checkpoint
    )  # a file without the run's fingerprint
    result = train(str(checkpoint), 2, lr=0.02)
    assert result.resumed_from_epoch == 0
    assert "another configuration" in caplog.text


def _crash_after_first_epoch(checkpoint: Path, extra) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(str(checkpoint), 4, fingerprint_extra=extra, crash_after_reads=100)
    assert _checkpoint_epoch(checkpoint) == 1  # 72 training samples per epoch


def test_checkpoint_resumes_only_with_the_same_extra_settings(tmp_path, caplog):
    """Settings the core cannot see (a loss weight, a model option that changes no
    weight shape) are part of the fingerprint when the caller passes them."""
    checkpoint = tmp_path / "toy.pt"
    _crash_after_first_epoch(checkpoint, {"alpha": 1.0})
    other = train(str(checkpoint), 4, fingerprint_extra={"alpha": 2.0})
    assert other.resumed_from_epoch == 0
    assert "another configuration" in caplog.text

    _crash_after_first_epoch(checkpoint, {"alpha": 1.0})
    same = train(str(checkpoint), 4, fingerprint_extra={"alpha": 1.0})
    assert same.resumed_from_epoch == 1


def test_num_threads_is_restored_after_training():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(None, 1, num_threads=2)
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(None, 1, num_threads=2, crash_after_reads=5)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_monitor_scores_a_seeded_subset_of_a_large_validation_set():
    train_set, val_set = toy_data(n=160)
    reads = []

    class Counting(torch.utils.data.Dataset):
        def __len__(self):
            return len(val_set)

        def __getitem__(self, i):
            reads.append(i)
            return val_set[i]

    params = TrainingParams(
        epochs=2, batch_size=16, monitor_max_samples=15, show_progress=False
    )
    fit(ToyLSTM(), train_set, Counting(), params)
    first, second = reads[: len(reads) // 2], reads[len(reads) // 2 :]
    assert len(reads) == 2 * 15 and first == second  # the same 15 beats every epoch
    assert len(set(first)) == 15 and set(first) != set(range(15))  # random, not a head


def test_monitor_max_samples_must_be_positive():
    with pytest.raises(ValueError, match=r"x\.monitor_max_samples' must be > 0"):
        TrainingParams.from_dict({"monitor_max_samples": 0}, where="x")
