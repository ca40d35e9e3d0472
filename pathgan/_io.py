"""Durable, atomic file writes: the one way pathgan writes a file that must never look complete half-written.

A rename is atomic but not durable by itself: after a power loss the directory entry can be on disk
before the data it names, and the "complete" file reads as zeros. Every write here therefore

1. writes a uniquely named temporary sibling (``.NAME.<pid>-<rand>.partial``),
2. flushes it and ``fsync``s it,
3. renames it onto the final name,
4. ``fsync``s the directory, so the rename itself survives.

A crash at any point leaves the old file or the new one, never half of one, and the temporary
file is removed when the write fails. Light (no numpy or torch), so any layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from pathgan._faults import fault_point

__all__ = ["atomic_path", "atomic_replace", "atomic_write_bytes", "atomic_write_text", "fsync_dir", "fsync_file",
           "fsync_tree", "remove_stale_temporaries"]


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk (its contents, not its directory entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush the directory ``path`` itself (the names in it: a rename, a new file) to the disk.

    A no-op where the platform cannot open a directory (Windows); there a rename is already durable.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):  # pragma: no cover - Windows
        return
    try:
        with contextlib.suppress(OSError):  # some file systems (e.g. some network mounts) refuse it
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """``fsync`` every file and directory under ``root`` (and ``root``): before a folder is renamed complete."""
    root = Path(root)
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


_TEMP = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.(partial|trash)")


def remove_stale_temporaries(folder: Path, depth: int = 2) -> list[Path]:
    """Remove the temporary files and trash folders of writes that a crash interrupted, in ``folder``
    and its subfolders up to ``depth`` levels (``*.zarr`` stores are not entered). Only safe while
    holding the folder's lock (:func:`pathgan._lock.folder_lock`): then no live writer owns them.
    Returns what was removed."""
    import shutil

    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _TEMP.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        elif depth > 1 and entry.is_dir() and not entry.is_symlink() and not entry.name.endswith(".zarr"):
            removed += remove_stale_temporaries(entry, depth - 1)
    return removed


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


@contextlib.contextmanager
def atomic_path(path: Path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary path to write ``path``'s contents to; renamed onto ``path`` (durably) on success.

    For writers that want a file name (Pillow, h5py, pandas). ``suffix`` is appended to the
    temporary name when the writer picks its format from the extension (``".png"``)::

        with atomic_path(out / "grid.png", suffix=".png") as tmp:
            image.save(tmp)
    """
    path = Path(path)
    base = _tmp_name(path)
    tmp = base.with_name(base.name + suffix)
    try:
        yield tmp
        fsync_file(tmp)
        fault_point("io.before_rename")
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (see the module docstring)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_replace(src: Path, dst: Path, *, trash: Path | None = None) -> None:
    """Rename the finished ``src`` (a file or a folder whose contents are already synced) onto ``dst``.

    A folder already at ``dst`` is first moved aside (to ``trash``, by default a hidden sibling) and
    removed after, so ``dst`` is never half old and half new; the parent directory is synced after
    the rename. Pass a ``trash`` name that the caller's resume logic cleans up after a crash.
    """
    import shutil

    src, dst = Path(src), Path(dst)
    if dst.is_dir() and not dst.is_symlink():
        trash = trash or dst.with_name(f".{dst.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.trash")
        fault_point("io.before_rename")
        os.replace(dst, trash)
        fault_point("io.between_renames")
        os.replace(src, dst)
        fsync_dir(dst.parent)
        shutil.rmtree(trash, ignore_errors=True)
        return
    fault_point("io.before_rename")
    os.replace(src, dst)
    fsync_dir(dst.parent)
