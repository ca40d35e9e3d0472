"""Dask client set-up. No domain logic lives here.

By default a ``LocalCluster`` of single-threaded worker processes (one per core, each with a
memory limit); with ``scheduler`` an existing dask.distributed cluster is used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pathgan.errors import ConfigError

__all__ = ["dask_client", "default_workers"]


def default_workers() -> int:
    """Cores this process may use (respects CPU affinity, e.g. in containers and SLURM jobs)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _local_cluster_config() -> dict[str, Any]:
    """Settings for the LocalCluster pathgan starts (an existing cluster is left as configured).

    Its workers are single-threaded processes that keep every core busy with CPU-bound tasks,
    so Dask's own periodic work competes with them for the same cores:

    - the statistical profiler (it walks the busy thread's stack every 10 ms for the dashboard's
      profile page) is off, and the event-loop tick and system monitor run less often;
    - ``MALLOC_TRIM_THRESHOLD_`` is not set in the workers. Dask sets it to 64 KiB to return
      freed memory to the OS at once, which also switches off glibc's adaptive mmap threshold:
      every large temporary array is then mapped and page-faulted afresh (slide tiling allocates
      a few MB per patch batch and ~100 MB of temporaries per thumbnail analysis). Memory stays
      bounded either way: each task's working set is freed before the next.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return {
        "distributed.worker.profile.enabled": False,
        "distributed.admin.tick.interval": "500ms",
        "distributed.admin.system-monitor.interval": "2s",
        "distributed.nanny.pre-spawn-environ": environ,
    }


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    memory_limit: str = "2GiB",
    dashboard: bool = True,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``; the cluster it created (if any) is closed on exit.

    Parameters
    ----------
    scheduler : address of an existing scheduler (``tcp://host:8786``); None starts a LocalCluster.
    n_workers : worker processes of the LocalCluster (default: usable cores).
    memory_limit : per-worker memory limit of the LocalCluster (Dask spills, pauses, then restarts).
    dashboard : serve the LocalCluster dashboard on a free port.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({err})") from err
        try:
            yield client
        finally:
            client.close()
        return
    workers = n_workers or default_workers()
    if workers < 1:
        raise ConfigError(f"workers={workers} is not allowed; expected >= 1")
    with (
        dask.config.set(_local_cluster_config()),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0" if dashboard else None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
