"""Named fault points: where the fault tests kill a run, on purpose, at an exact moment.

``kill -9`` at a random time mostly lands in the long phases (decoding, a training step) and
rarely in the short ones that matter most (between a shard write and the rename that marks a
store complete). Each such moment is marked in the code with ``fault_point("name")``; in normal
runs that is one dictionary lookup and nothing else. Two environment variables, read once:

``PATHGAN_FAULT=name:n``
    On the ``n``-th time this process (or, for Dask workers, any process of the run that shares the
    setting) reaches point ``name``, kill the whole process group with SIGKILL: the driver, its Dask
    workers and their threads die together, as on a power cut, with no ``finally`` and no cleanup.
``PATHGAN_FAULT_LOG=path``
    Append one line per point reached (``pid name``) so a test can count the points of an
    uninterrupted run and choose a moment to kill at, and prove afterwards that it was reached.

The counts are per process; a test that kills at the ``n``-th shard write of a Dask run picks
``n`` from the worker's own count. Light (standard library only), so any layer may use it.
"""

from __future__ import annotations

import os
import signal

__all__ = ["fault_point"]

_SPEC = os.environ.get("PATHGAN_FAULT", "")
_LOG = os.environ.get("PATHGAN_FAULT_LOG", "")
_TARGET, _, _N = _SPEC.partition(":")
_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Mark a moment where a crash must lose nothing; kills the process group when told to."""
    if not _SPEC and not _LOG:
        return
    n = _COUNTS[name] = _COUNTS.get(name, 0) + 1
    if _LOG:
        with open(_LOG, "a") as fh:
            fh.write(f"{os.getpid()} {name}\n")
    if name == _TARGET and str(n) == _N:
        if _LOG:
            with open(_LOG, "a") as fh:
                fh.write(f"{os.getpid()} KILL {name}:{n}\n")
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:  # not in a group of its own: the process alone
            os.kill(os.getpid(), signal.SIGKILL)
