"""A small shared thread pool for the GIL-free parts of a slide's plan.

Tiling runs one single-threaded task per core, but each slide starts with a serial plan
(thumbnail, tissue masks, patch grid) that every one of its shards waits for; while it runs, the
other workers may have nothing to do. The plan's JPEG decoding (simplejpeg), colour
conversion (Pillow) and most of its array work (numpy, scipy.ndimage labelling) release the GIL,
so they are split over two threads. Called from one of the pool's own threads, the helpers run
inline (a pool task waiting on the pool could otherwise wait forever).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["PLAN_THREADS", "parallel_map", "run_beside"]

PLAN_THREADS = 2
_PREFIX = "pathgan-plan"

_T = TypeVar("_T")
_R = TypeVar("_R")
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there when needed."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PLAN_THREADS, thread_name_prefix=_PREFIX)
        return _pool


def _in_pool() -> bool:
    return threading.current_thread().name.startswith(_PREFIX)


def parallel_map(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[fn(x) for x in items]``, computed on :data:`PLAN_THREADS` threads (in order)."""
    items = list(items)
    if len(items) < 2 or _in_pool():
        return [fn(x) for x in items]
    return list(_get_pool().map(fn, items))


def run_beside(fn: Callable[..., _R], *args: Any, **kwargs: Any) -> Future[_R]:
    """Start ``fn(*args, **kwargs)`` on a pool thread while the caller goes on; ``.result()``
    returns its value or raises its exception."""
    if _in_pool():
        done: Future[_R] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as err:
            done.set_exception(err)
        return done
    return _get_pool().submit(fn, *args, **kwargs)
