"""Independent tasks run in this process or fanned out to a Dask cluster.

One knob block, ``parallel``, in any pipeline's parameters::

    parallel:
      backend: sequential   # sequential | dask
      n_workers: null       # dask, local cluster: worker processes (null = CPU count)
      scheduler_address: null  # dask: an existing scheduler, e.g. tcp://10.0.0.5:8786

With ``backend: dask`` and no ``scheduler_address``, the environment variable
``MEDLSTM_DASK_SCHEDULER`` names an existing cluster; with neither, a local cluster
of ``n_workers`` single-threaded processes is started for the call and closed after.
Results come back in the order of the tasks, so the output does not depend on the
backend or on which worker finished first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from medlstm.core.params import check_complete_block, check_known_keys

logger = logging.getLogger(__name__)

SCHEDULER_ENV = "MEDLSTM_DASK_SCHEDULER"
BACKENDS = ("sequential", "dask")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ParallelParams:
    """A ``parallel`` parameters block, validated. Every field comes from the block
    (its comments in conf/base say what each does): no default here can drift from it."""

    backend: str
    n_workers: int | None
    scheduler_address: str | None

    @classmethod
    def from_dict(
        cls, values: dict[str, Any] | None, where: str = "parallel"
    ) -> ParallelParams:
        """Build from the YAML block; an unknown or missing key, an unknown backend or
        a worker count below 1 is an error naming ``where``."""
        values = {} if values is None else values
        check_known_keys(values, cls.__dataclass_fields__, where)
        check_complete_block(values, cls.__dataclass_fields__, where)
        params = cls(**values)
        if params.backend not in BACKENDS:
            raise ValueError(
                f"Parameter '{where}.backend' is {params.backend!r}; expected one of "
                f"{BACKENDS}."
            )
        if params.n_workers is not None and (
            isinstance(params.n_workers, bool)
            or not isinstance(params.n_workers, int)
            or params.n_workers < 1
        ):
            raise ValueError(
                f"Parameter '{where}.n_workers' must be null or an integer >= 1, got "
                f"{params.n_workers!r}."
            )
        return params

    def address(self) -> str | None:
        """The scheduler to connect to: the parameter, else the environment, else
        None (start a local cluster)."""
        return self.scheduler_address or os.environ.get(SCHEDULER_ENV) or None

    def workers(self) -> int:
        """Worker processes of a local cluster: ``n_workers`` or the CPU count."""
        return self.n_workers or os.cpu_count() or 1


# Records read where no parallel block applies (one recording, the tests' excerpts):
# in this process.
IN_PROCESS = ParallelParams(
    backend="sequential", n_workers=None, scheduler_address=None
)


@contextmanager
def dask_client(params: ParallelParams) -> Iterator[Any]:
    """A ``dask.distributed.Client`` on the configured cluster, closed on exit (and
    the local cluster with it, when one was started here)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError(
            "parallel.backend: dask needs dask[distributed] (pip install "
            "'dask[distributed]')."
        ) from err
    address = params.address()
    if address:
        logger.info("Dask: connecting to the scheduler at %s.", address)
        with Client(address) as client:
            yield client
        return
    n = params.workers()
    logger.info("Dask: starting a local cluster of %d worker processes.", n)
    # One thread per process: the tasks are NumPy/SciPy loops that hold the GIL
    # between calls, so processes, not threads, give the speed-up.
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def map_tasks(
    fn: Callable[[T], R], items: Sequence[T], params: ParallelParams
) -> list[R]:
    """``[fn(item) for item in items]``, on the configured backend.

    ``fn`` and the items must pickle (a module-level function and plain data or
    paths) for the dask backend. An exception in a task is raised here unchanged.
    """
    if params.backend == "sequential" or len(items) == 0:
        return [fn(item) for item in items]
    with dask_client(params) as client:
        futures = client.map(fn, list(items), pure=False)
        return client.gather(futures)
