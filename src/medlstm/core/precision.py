"""Numeric precision of training and prediction: fp32, or bf16 autocast where it runs.

bf16 autocast roughly doubles LSTM throughput on CPUs with AVX-512-bf16, but on an
AVX2-only CPU oneDNN has no bf16 LSTM and fails mid-training ("could not create a
primitive descriptor for the LSTM forward propagation primitive"). So bf16 is never
assumed: a tiny LSTM forward and backward is tried once per process and device.

- ``fp32``: always float32.
- ``bf16``: bf16 autocast; where it cannot run, `resolve_precision` raises an error
  naming the parameter and the CPU (the preflight hook calls it before any node).
- ``auto``: bf16 where the probe succeeds, else fp32, with one log line saying why.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator

import torch
from torch import nn

from medlstm.core.machine import cpu_info

logger = logging.getLogger(__name__)

CHOICES = ("auto", "fp32", "bf16")


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


def _cpu_name() -> str:
    info = cpu_info()
    if not info["flags_known"]:
        return str(info["model"])
    name = f"{info['model']}; {', '.join(info['features']) or 'no AVX2'}"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{name}; oneDNN capped at {cap}" if cap else name


def resolve_precision(
    requested: str, device_type: str = "cpu", where: str = "training.precision"
) -> str:
    """The precision a run will use, ``fp32`` or ``bf16``, for the ``requested`` one.

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
    if (requested, device_type) not in _logged:
        # Once per process: the preflight check names the parameter first, and every
        # later training in the run would only repeat it.
        _logged.add((requested, device_type))
        logger.info("%s=%s: training in %s because %s.", where, requested, used, reason)
    return used


_logged: set[tuple[str, str]] = set()


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """bf16 autocast for ``precision='bf16'``, nothing for ``fp32`` (a resolved value)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(
            f"autocast takes a resolved precision (fp32 or bf16), got {precision!r}."
        )
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield
