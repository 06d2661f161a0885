"""Precision: bf16 where it runs, fp32 otherwise, and a clear error for bf16 elsewhere."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from medlstm.core.machine import cpu_info, machine_line
from medlstm.core.precision import autocast, bf16_support, resolve_precision
from medlstm.core.training import TrainingParams, fit, seed_everything
from tests.conftest import requires_bf16


def test_auto_falls_back_to_fp32_with_one_log_line_saying_why(fake_bf16_probe, caplog):
    calls = fake_bf16_probe(works=False)
    with caplog.at_level(logging.INFO, logger="medlstm.core.precision"):
        assert resolve_precision("auto", where="pipe.training.precision") == "fp32"
        assert resolve_precision("auto", where="pipe.training.precision") == "fp32"
    assert calls == ["cpu"]  # probed once per process, then cached
    (line,) = [r.getMessage() for r in caplog.records]
    assert "pipe.training.precision=auto" in line
    assert "fp32" in line and "could not create a primitive descriptor" in line


def test_auto_takes_bf16_where_the_probe_succeeds(fake_bf16_probe):
    fake_bf16_probe(works=True)
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("bf16") == "bf16"


def test_auto_keeps_fp32_where_bf16_runs_but_does_not_pay(fake_bf16_probe, caplog):
    fake_bf16_probe(works=True, speedup=0.8)
    with caplog.at_level(logging.INFO, logger="medlstm.core.precision"):
        assert resolve_precision("auto", where="b.training.precision") == "fp32"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "training in fp32" in line and "0.80x as fast as fp32" in line
    # Asked for explicitly, bf16 is the user's call where it runs.
    assert resolve_precision("bf16") == "bf16"


def test_bf16_where_it_cannot_run_names_the_parameter_and_the_cpu(fake_bf16_probe):
    fake_bf16_probe(works=False)
    with pytest.raises(ValueError) as error:
        resolve_precision(
            "bf16", where="ecg_autoencoder.autoencoder.training.precision"
        )
    message = str(error.value)
    assert "'ecg_autoencoder.autoencoder.training.precision' asks for bf16" in message
    assert str(cpu_info()["model"]) in message
    assert "=auto" in message


def test_fp32_never_probes(fake_bf16_probe):
    calls = fake_bf16_probe(works=False)
    assert resolve_precision("fp32") == "fp32"
    assert calls == []


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="'x.training.precision' is 'fp16'"):
        resolve_precision("fp16", where="x.training.precision")
    with pytest.raises(ValueError, match="x.training.precision"):
        TrainingParams.from_dict({"precision": "half"}, where="x.training")


def test_the_real_probe_agrees_with_a_real_bf16_lstm():
    supported, reason = bf16_support("cpu")
    lstm = nn.LSTM(3, 5, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(2, 4, 3))
        out.float().sum().backward()
        ran = True
    except RuntimeError:
        ran = False
    assert supported == ran, reason


def test_the_probe_leaves_the_seeded_random_stream_alone(fake_bf16_probe):
    from medlstm.core import precision

    precision.bf16_support.cache_clear()  # the real probe, not cached
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    bf16_support("cpu")
    torch.testing.assert_close(torch.rand(3), expected)


def test_autocast_refuses_an_unresolved_precision():
    with pytest.raises(ValueError, match="resolved precision"):
        with autocast("auto"):
            pass


class _TinyLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, 8, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.out(h[-1])


def _train(precision: str):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, 2, generator=generator)
    y = (x[:, -1, 0] > 0).long() + (x[:, 0, 1] > 1).long()
    data = TensorDataset(x, y)
    params = TrainingParams(
        epochs=2, batch_size=16, precision=precision, show_progress=False, seed=1
    )
    seed_everything(params.seed)
    return fit(_TinyLSTM(), data, data, params)


def test_auto_without_bf16_trains_exactly_as_fp32(fake_bf16_probe):
    fake_bf16_probe(works=False)
    auto, fp32 = _train("auto"), _train("fp32")
    assert auto.precision == fp32.precision == "fp32"
    assert [r["train_loss"] for r in auto.history] == [
        r["train_loss"] for r in fp32.history
    ]


def test_fit_with_bf16_refused_on_a_cpu_without_it(fake_bf16_probe):
    fake_bf16_probe(works=False)
    with pytest.raises(ValueError, match="asks for bf16"):
        _train("bf16")


@requires_bf16
def test_the_speed_probe_times_both_precisions_and_keeps_the_random_stream():
    from medlstm.core import precision

    precision.bf16_speedup.cache_clear()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    speedup = precision.bf16_speedup("cpu")
    torch.testing.assert_close(torch.rand(3), expected)
    assert 0.05 < speedup < 20.0


@requires_bf16
def test_bf16_training_is_float32_at_the_loss_repeatable_and_differs_from_fp32():
    bf16, again, fp32 = _train("bf16"), _train("bf16"), _train("fp32")
    assert bf16.precision == "bf16"
    losses = [r["train_loss"] for r in bf16.history]
    assert all(np.isfinite(losses))
    assert losses == [r["train_loss"] for r in again.history]
    # bf16 really ran: its rounding moves the loss, but not far.
    fp32_losses = [r["train_loss"] for r in fp32.history]
    assert losses != fp32_losses
    np.testing.assert_allclose(losses, fp32_losses, rtol=0.05)
    assert next(bf16.model.parameters()).dtype == torch.float32


def test_machine_line_names_cpu_threads_instruction_sets_and_versions():
    line = machine_line(threads=2)
    assert line.startswith("machine: ")
    assert "2 threads" in line
    assert f"torch {torch.__version__}" in line and f"numpy {np.__version__}" in line
    if cpu_info()["flags_known"]:
        for name in ("AVX2", "AVX-512", "AVX-512-bf16", "AMX-bf16"):
            assert f"{name} yes" in line or f"{name} no" in line
