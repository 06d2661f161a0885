"""Numeric precision of training and prediction: fp32, or bf16 autocast where it runs.

bf16 autocast roughly doubles LSTM throughput on CPUs with AVX-512-bf16, but on an
AVX2-only CPU oneDNN has no bf16 LSTM and fails mid-training ("could not create a
primitive descriptor for the LSTM forward propagation primitive"). So bf16 is never
assumed: a tiny LSTM forward and backward is tried once per process and device.

- ``fp32``: always float32.
- ``bf16``: bf16 autocast; where it cannot run, `resolve_precision` raises an error
  naming the parameter and the CPU (the preflight hook calls it before any node).
- ``auto``: bf16 where it runs *and pays*, else fp32, with one log line saying why.
  Running is not enough: on an AVX-512-bf16 Xeon without AMX a bf16 LSTM step was
  measured slower than fp32 (0.8x), on an AMD Zen 5 twice as fast. So on a CPU,
  ``auto`` also times one small LSTM training step in both precisions (about 0.3 s,
  once per process) and takes bf16 only at `MIN_SPEEDUP` or more. On CUDA it takes
  bf16 wherever the device supports it (Ampere and later), else fp16 autocast, whose
  narrow range `fit` guards with a gradient scaler.

A resolved precision is ``fp32``, ``bf16`` or ``fp16`` (CUDA, from ``auto`` only).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterator

import torch
from torch import nn

from medlstm.core.machine import cpu_info, isa_caps

logger = logging.getLogger(__name__)

CHOICES = ("auto", "fp32", "bf16")
RESOLVED = ("fp32", "bf16", "fp16")
# bf16 costs precision; below this speed-up over fp32, auto keeps fp32. The margin
# keeps timing noise from flipping the choice on machines where both run alike.
MIN_SPEEDUP = 1.25


@functools.cache
def bf16_support(device_type: str = "cpu") -> tuple[bool, str]:
    """Whether bf16 autocast trains an LSTM on this device, and why (cached)."""
    if device_type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, f"CUDA device {torch.cuda.get_device_name(0)} supports bf16"
        return False, "the CUDA device does not support bf16"
    try:
        _probe_lstm_bf16(device_type)
    except RuntimeError as error:
        # oneDNN's message goes on with advice on its own verbose mode: first sentence.
        first = str(error).strip().split(". ")[0].rstrip(".")
        return False, f"a bf16 LSTM does not run on this CPU ({_cpu_name()}): {first}"
    return True, f"a bf16 LSTM forward and backward ran on this CPU ({_cpu_name()})"


def _probe_lstm_bf16(device_type: str) -> None:
    """Forward and backward of a tiny LSTM under bf16 autocast; raises where it cannot."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # the caller's seeded stream stays as it is
        lstm = nn.LSTM(4, 8, batch_first=True).to(device_type)
    x = torch.randn(2, 3, 4, generator=generator).to(device_type)
    with torch.enable_grad(), torch.autocast(device_type, dtype=torch.bfloat16):
        out, _ = lstm(x)
    out.float().sum().backward()


@functools.cache
def bf16_speedup(device_type: str = "cpu") -> float:
    """fp32 time / bf16 time of one small LSTM training step here (cached).

    Call only where `bf16_support` is true. Best of ten interleaved timings each,
    after two warm-up rounds, so a busy moment slows both alike.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lstm = nn.LSTM(32, 128, num_layers=2, batch_first=True).to(device_type)
        x = torch.randn(64, 48, 32, device=device_type)

    def step(precision: str) -> float:
        started = time.perf_counter()
        with torch.enable_grad(), autocast(precision, device_type):
            out, _ = lstm(x)
        out.float().square().mean().backward()
        return time.perf_counter() - started

    best = {"fp32": math.inf, "bf16": math.inf}
    for i in range(12):
        for precision in ("fp32", "bf16"):
            seconds = step(precision)
            if i >= 2:  # oneDNN builds its kernels on the first calls
                best[precision] = min(best[precision], seconds)
    lstm.zero_grad(set_to_none=True)
    return best["fp32"] / best["bf16"]


def _cpu_name() -> str:
    info = cpu_info()
    if not info["flags_known"]:
        return str(info["model"])
    name = f"{info['model']}; {', '.join(info['features']) or 'no AVX2'}"
    cap = isa_caps().get("ONEDNN_MAX_CPU_ISA")  # oneDNN runs torch's LSTMs
    return f"{name}; oneDNN capped at {cap}" if cap else name


def resolve_precision(
    requested: str, device_type: str = "cpu", where: str = "training.precision"
) -> str:
    """The precision a run will use, ``fp32``, ``bf16`` or (CUDA) ``fp16``, for the
    ``requested`` one.

    Raises:
        ValueError: ``requested`` is not one of `CHOICES`, or is ``bf16`` where bf16
            cannot run; the message names ``where`` and the CPU or device.
    """
    if requested not in CHOICES:
        raise ValueError(
            f"Parameter '{where}' is {requested!r}; expected one of {CHOICES}."
        )
    if requested == "fp32":
        return "fp32"
    supported, reason = bf16_support(device_type)
    if requested == "bf16" and not supported:
        raise ValueError(
            f"Parameter '{where}' asks for bf16, but {reason}. "
            f"Set {where}=auto (bf16 where it runs, else fp32) or fp32."
        )
    used = "bf16" if supported else "fp32"
    if requested == "auto" and not supported and device_type == "cuda":
        # Every CUDA GPU runs fp16 autocast; tensor cores make it pay as bf16 would.
        used = "fp16"
        reason = f"{reason}; fp16 autocast with a gradient scaler instead"
    if requested == "auto" and supported and device_type == "cpu":
        speedup = bf16_speedup(device_type)
        if speedup < MIN_SPEEDUP:
            used = "fp32"
            reason = (
                f"bf16 runs on this CPU ({_cpu_name()}) but a bf16 LSTM training step "
                f"is {speedup:.2f}x as fast as fp32 (auto wants >= {MIN_SPEEDUP}x)"
            )
        else:
            reason = f"{reason}, {speedup:.2f}x as fast as fp32"
    if (requested, device_type) not in _logged:
        # Once per process: the preflight check names the parameter first, and every
        # later training in the run would only repeat it.
        _logged.add((requested, device_type))
        logger.info("%s=%s: training in %s because %s.", where, requested, used, reason)
    return used


_logged: set[tuple[str, str]] = set()


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """bf16 or fp16 autocast for ``precision='bf16'`` / ``'fp16'``, nothing for
    ``fp32`` (a resolved value)."""
    if precision not in RESOLVED:
        raise ValueError(
            f"autocast takes a resolved precision {RESOLVED}, got {precision!r}."
        )
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    with torch.autocast(device_type, dtype=dtype, enabled=precision != "fp32"):
        yield
