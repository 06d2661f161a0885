"""How many CPU threads torch and the BLAS / OpenMP libraries behind NumPy use.

One place sets both: a torch setting alone leaves NumPy's BLAS (the NumPy LSTM, the
baselines) on every core, and on a CPU shared with other jobs spare threads spin and
wait for each other's time slices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits


def _check(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"A thread count must be an integer >= 1, got {count!r}.")


@contextlib.contextmanager
def thread_limits(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads and ``count`` BLAS and
    OpenMP threads (None: leave both as they are); the caller's settings come back
    afterwards, also after an error."""
    if count is None:
        yield
        return
    _check(count)
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(before)


def limit_threads(count: int) -> None:
    """Use ``count`` torch, BLAS and OpenMP threads for the rest of the process (a
    script's setting; code inside a process uses `thread_limits`)."""
    _check(count)
    torch.set_num_threads(count)
    threadpool_limits(limits=count)
