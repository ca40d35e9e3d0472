"""One writer per output folder: a lock file that names its owner and is recovered after a crash.

Two ``pathgan tile`` runs into the same ``--out``, or two ``train-latent --resume`` on the same
run, would each delete the other's partial stores or write checkpoints over each other. The first
one takes ``FOLDER/.pathgan.lock``, created with ``O_CREAT | O_EXCL`` (atomic on local disks and
NFSv3+), holding the owner's pid, host, process start time and command; the second gets a
:class:`~pathgan.errors.LockError` that says who holds the folder and since when.

A lock whose owner is gone (same host, and its pid is not running, or is running but started at
another time: the pid was reused) is stale: it is moved aside atomically and the lock is taken
again, so a run killed with ``kill -9`` never needs a hand to clean up; whoever takes the lock also
removes the temporary files such a run left (:func:`pathgan._io.remove_stale_temporaries`). A lock from another host
cannot be checked and is only ever removed by a person; the message says which file to delete.
Light (standard library only), so any layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pathgan._io import remove_stale_temporaries
from pathgan.errors import LockError

__all__ = ["LOCK_NAME", "folder_lock", "read_lock"]

LOCK_NAME = ".pathgan.lock"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the ")" that closes the command name (which may hold spaces).
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def read_lock(folder: Path) -> dict[str, Any] | None:
    """The owner recorded in ``folder``'s lock (None when unlocked; ``{}`` when unreadable)."""
    path = Path(folder) / LOCK_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _is_stale(owner: dict[str, Any], path: Path) -> bool:
    """True when the lock's owner is certainly gone."""
    if not owner:  # written half by a process killed between create and write: stale after a grace period
        try:
            return time.time() - path.stat().st_mtime > 10.0
        except FileNotFoundError:
            return True
    if owner.get("host") != socket.gethostname():
        return False
    pid = int(owner.get("pid", -1))
    if pid <= 0 or not _alive(pid):
        return True
    recorded, now = owner.get("start_time"), _start_time(pid)
    return recorded is not None and now is not None and recorded != now


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "an owner that left no record (the lock file is empty)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("started", 0))))
    return f"pid {owner.get('pid')} on {owner.get('host')} since {since} ({owner.get('command', '?')})"


def _break_stale(path: Path, owner: dict[str, Any]) -> None:
    """Move the stale lock ``owner`` aside. If another process recovered it first and already holds a
    fresh lock at ``path``, that lock is what gets moved: it is linked back (``link`` never overwrites)."""
    aside = path.with_name(f"{LOCK_NAME}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    try:
        moved = json.loads(aside.read_text() or "{}")
    except (OSError, ValueError):
        moved = {}
    if isinstance(moved, dict) and moved.get("token") != owner.get("token"):
        with contextlib.suppress(FileExistsError, OSError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[Path]:
    """Hold ``folder/.pathgan.lock`` for the duration of the block; ``what`` names the job in messages.

    Raises
    ------
    LockError : another live process holds the folder (or one on another host that cannot be checked).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start_time": _start_time(os.getpid()),
          "started": time.time(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
          "token": uuid.uuid4().hex}
    for _attempt in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(folder)
            if owner is None:
                continue  # released between our open and our read: try again
            if not _is_stale(owner, path):
                raise LockError(f"{folder} is in use by another pathgan {what}: {_describe(owner)}. Wait for it to "
                                f"finish; if that process is gone for good, delete {path}") from None
            _break_stale(path, owner)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me))
            fh.flush()
            os.fsync(fh.fileno())
        break
    else:
        raise LockError(f"could not take the lock {path} after 5 attempts (other processes keep taking it)")
    remove_stale_temporaries(folder)  # ours now: any temporary file here belongs to a dead writer
    try:
        yield path
    finally:
        owner = read_lock(folder)
        if owner is not None and owner.get("token") == me["token"]:
            path.unlink(missing_ok=True)
