"""What machine a number was measured on.

Machines of one kind differ: the same 2-core cloud instance may be an AVX-512 CPU with
bf16 instructions or an AVX2-only one, and an LSTM epoch takes twice as long on one as
on the other. Every benchmark prints `machine_line` first, and every figure in the
docs carries that line.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import numpy as np
import torch

# /proc/cpuinfo flag -> the name people know it by.
_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX-512-bf16",
    "amx_bf16": "AMX-bf16",
}


# Variables that make oneDNN (torch's LSTMs) and MKL (matmul) use fewer instructions.
_ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


@functools.cache
def cpu_info() -> dict[str, object]:
    """The CPU's model name and which of AVX2, AVX-512, AVX-512-bf16 and AMX it has.

    Read from /proc/cpuinfo (Linux); elsewhere the model is `platform.processor()`
    and the features are unknown (empty).
    """
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if flags and model:
                break
    return {
        "model": model or "unknown CPU",
        "features": [name for flag, name in _FEATURES.items() if flag in flags],
        "flags_known": bool(flags),
    }


def isa_caps() -> dict[str, str]:
    """The variables in force that cap oneDNN's or MKL's instruction set."""
    return {name: os.environ[name] for name in _ISA_CAPS if os.environ.get(name)}


def machine_line(threads: int | None = None) -> str:
    """One line naming the machine, e.g. ``machine: AMD EPYC 7B13 | 2 threads | AVX2
    yes, AVX-512 no, AVX-512-bf16 no, AMX-bf16 no | torch 2.13.0, numpy 2.3.1``."""
    info = cpu_info()
    threads = threads or torch.get_num_threads()
    if info["flags_known"]:
        features = ", ".join(
            f"{name} {'yes' if name in info['features'] else 'no'}"
            for name in _FEATURES.values()
        )
    else:
        features = "instruction sets unknown"
    gpu = (
        f" | CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    )
    # An AVX-512 CPU whose math libraries are capped to AVX2 is neither machine.
    caps = "".join(f" | {name}={value}" for name, value in isa_caps().items())
    return (
        f"machine: {info['model']} | {threads} thread{'s' if threads != 1 else ''} | "
        f"{features}{caps}{gpu} | torch {torch.__version__}, numpy {np.__version__}"
    )
