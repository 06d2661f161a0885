"""CUDA and mixed-precision decisions (tested without a GPU by faking one), and the
per-epoch callbacks of `fit`."""

from __future__ import annotations

import pytest
import torch

from medlstm.core import precision, training
from medlstm.core.training import (
    TrainingParams,
    epoch_callback,
    fit,
    resolve_device,
    seed_everything,
)
from tests.core.toy import ToyLSTM, toy_data, train


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch):
    """``fake(bf16=...)``: torch reports a CUDA device with or without bf16."""

    def reset() -> None:
        precision.bf16_support.cache_clear()
        precision._logged.clear()

    def fake(bf16: bool) -> None:
        reset()
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")

    yield fake
    reset()


def test_auto_device_takes_cuda_when_present_else_the_cpu(monkeypatch, fake_cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="'training.device' is 'cuda'"):
        resolve_device("cuda")
    fake_cuda(bf16=True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cpu").type == "cpu"


def test_auto_precision_on_a_bf16_gpu_is_bf16(fake_cuda, caplog):
    fake_cuda(bf16=True)
    with caplog.at_level("INFO", logger="medlstm.core.precision"):
        assert resolve_precision_cuda("auto") == "bf16"
    assert "Fake GPU supports bf16" in caplog.text
    assert resolve_precision_cuda("bf16") == "bf16"
    assert resolve_precision_cuda("fp32") == "fp32"


def test_auto_precision_on_an_older_gpu_is_fp16_and_bf16_is_refused(fake_cuda):
    fake_cuda(bf16=False)
    assert resolve_precision_cuda("auto") == "fp16"
    with pytest.raises(ValueError, match="'m.training.precision' asks for bf16"):
        resolve_precision_cuda("bf16")


def test_cpu_precision_never_becomes_fp16(fake_bf16_probe):
    fake_bf16_probe(works=False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="resolved precision"):
        with precision.autocast("half"):
            pass


def resolve_precision_cuda(requested: str) -> str:
    return precision.resolve_precision(requested, "cuda", where="m.training.precision")


def _fit(model=None, on_epoch_end=None, **overrides):
    params = TrainingParams.from_dict(
        {"epochs": 3, "batch_size": 16, "lr": 0.01, "show_progress": False, "seed": 7}
        | overrides
    )
    seed_everything(params.seed)
    model = model or ToyLSTM()
    return fit(model, *toy_data(), params, on_epoch_end=on_epoch_end)


def test_fp16_trains_through_a_gradient_scaler(monkeypatch):
    # fp16 is resolved on CUDA only; here the CPU stands in for the GPU, so the
    # scaled step, the unscaling before clipping and the autocast dtype really run.
    monkeypatch.setattr(training, "resolve_precision", lambda *a, **k: "fp16")
    steps: list[float] = []
    real_step = torch.amp.GradScaler.step

    def counting_step(self, optimizer, *args, **kwargs):
        steps.append(self.get_scale())
        return real_step(self, optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", counting_step)
    dtypes: list[torch.dtype] = []
    real_autocast = torch.autocast

    def spy_autocast(device_type, dtype=None, enabled=True, **kwargs):
        if enabled:
            dtypes.append(dtype)
        return real_autocast(device_type, dtype=dtype, enabled=enabled, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy_autocast)
    # A CPU has no fp16 LSTM kernels; linear layers have them.
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(30, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 2),
    )
    result = _fit(model=model, grad_clip_norm=1.0)
    assert result.precision == "fp16"
    assert set(dtypes) == {torch.float16}
    assert len(steps) == 3 * 5  # 72 training samples, batches of 16, 3 epochs
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fp32_takes_no_scaler(monkeypatch):
    made: list[str] = []
    real = torch.amp.GradScaler.__init__

    def spy(self, *args, **kwargs):
        made.append("scaler")
        real(self, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "__init__", spy)
    assert train(None, epochs=1).precision == "fp32"
    assert made == []


def test_on_epoch_end_sees_every_epoch_and_its_metrics():
    seen: list[tuple[int, float]] = []
    outer: list[int] = []
    with epoch_callback(lambda epoch, record: outer.append(epoch)):
        result = _fit(on_epoch_end=lambda e, r: seen.append((e, r["val_loss"])))
    assert seen == [(r["epoch"], r["val_loss"]) for r in result.history]
    assert outer == [1, 2, 3]
    # Outside the block the callback is gone.
    train(None, epochs=1)
    assert outer == [1, 2, 3]


class Stop(Exception):
    pass


def test_an_exception_in_the_callback_stops_training_and_propagates():
    epochs: list[int] = []

    def stop_after_two(epoch: int, record: dict) -> None:
        epochs.append(epoch)
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop), epoch_callback(stop_after_two):
        train(None, epochs=5)
    assert epochs == [1, 2]
