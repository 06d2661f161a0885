"""Forward + backward time per batch: NumPy LSTM (medlstm.scratch) vs torch.nn.LSTM.

Both sides run the same work on the CPU: a one-layer LSTM + dense layer over a
batch, mean squared error on the last timestep, and the gradients of every
parameter. Runs alternate between the two implementations so that load from
other processes hits both alike; the medians are printed with their ratio.

Run (1 thread each, allocator tuned as in docs/lstm_scratch.md):

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        nice python benchmarks/bench_lstm_scratch.py

Options: ``--hidden 32 64 128 --batch 32 --length 50 --features 16 --threads 1
--dtype float32 float64 --repeats 40``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from medlstm.core.machine import machine_line
from medlstm.core.threads import limit_threads
from medlstm.scratch import LSTMModel, mse_loss


def numpy_step(model: LSTMModel, x: np.ndarray, target: np.ndarray) -> None:
    """One forward + backward pass of the NumPy model."""
    y, _, cache = model.forward(x)
    _, d_last = mse_loss(y[:, -1], target)
    dy = np.zeros_like(y)
    dy[:, -1] = d_last
    model.backward(cache, dy)


def torch_step(
    lstm: torch.nn.LSTM, head: torch.nn.Linear, x: torch.Tensor, target: torch.Tensor
) -> None:
    """One forward + backward pass of the torch model."""
    lstm.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    out, _ = lstm(x)
    torch.nn.functional.mse_loss(head(out[:, -1]), target).backward()


def bench(
    hidden: int, batch: int, length: int, features: int, dtype: str, repeats: int
) -> tuple[float, float]:
    """Median seconds per batch for (NumPy, torch)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, length, features)).astype(dtype)
    target = rng.normal(size=(batch, 1)).astype(dtype)
    model = LSTMModel(features, hidden, 1, dtype=dtype, seed=0)
    torch_dtype = getattr(torch, dtype)
    lstm = torch.nn.LSTM(features, hidden, batch_first=True).to(torch_dtype)
    head = torch.nn.Linear(hidden, 1).to(torch_dtype)
    x_t, target_t = torch.from_numpy(x), torch.from_numpy(target)

    runs = {
        "numpy": lambda: numpy_step(model, x, target),
        "torch": lambda: torch_step(lstm, head, x_t, target_t),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):  # warm-up: allocator, BLAS and oneDNN kernel selection
        for run in runs.values():
            run()
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return statistics.median(times["numpy"]), statistics.median(times["torch"])


def main() -> None:
    """Parse options, run every size and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    limit_threads(args.threads)
    print(machine_line(), flush=True)  # noqa: T201
    print(  # noqa: T201
        f"batch {args.batch}, length {args.length}, features {args.features}, "
        f"{args.threads} thread(s), torch {torch.__version__}, numpy {np.__version__}, "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}\n"
        f"{'dtype':>8} {'hidden':>6} {'numpy ms':>9} {'torch ms':>9} {'numpy/torch':>11}"
    )
    for dtype in args.dtype:
        for hidden in args.hidden:
            t_np, t_torch = bench(
                hidden, args.batch, args.length, args.features, dtype, args.repeats
            )
            print(  # noqa: T201
                f"{dtype:>8} {hidden:>6} {t_np * 1e3:9.2f} {t_torch * 1e3:9.2f} "
                f"{t_np / t_torch:11.2f}"
            )


if __name__ == "__main__":
    main()
