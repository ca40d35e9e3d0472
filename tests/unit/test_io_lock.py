"""Durable atomic writes (fsync before the rename, the directory after) and the one-writer folder lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pathgan import _io
from pathgan._lock import LOCK_NAME, folder_lock, read_lock
from pathgan.errors import LockError, PathganError


class _Recorder:
    """Wraps os.fsync / os.replace / os.open to log, in order, what was synced and renamed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.fd_paths: dict[int, str] = {}
        real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

        def open_(path, flags, *a, **k):  # type: ignore[no-untyped-def]
            fd = real_open(path, flags, *a, **k)
            self.fd_paths[fd] = str(path)
            return fd

        def fsync(fd):  # type: ignore[no-untyped-def]
            path = self.fd_paths.get(fd) or os.readlink(f"/proc/self/fd/{fd}")
            self.events.append(("fsync", str(path)))
            real_fsync(fd)

        def replace(src, dst):  # type: ignore[no-untyped-def]
            self.events.append(("replace", f"{src} -> {dst}"))
            real_replace(src, dst)

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)


def test_atomic_write_syncs_data_before_rename_and_directory_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _Recorder(monkeypatch)
    target = tmp_path / "metrics.json"
    _io.atomic_write_bytes(target, b'{"a": 1}')
    assert target.read_bytes() == b'{"a": 1}'
    kinds = [k for k, _ in rec.events]
    assert kinds == ["fsync", "replace", "fsync"], rec.events
    assert rec.events[0][1].endswith(".partial")  # the temporary file's data first
    assert rec.events[2][1] == str(tmp_path)  # then the directory that holds the new name
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_atomic_path_leaves_old_file_and_no_temporary_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), _io.atomic_path(target, suffix=".png") as tmp:
        assert tmp.name.endswith(".partial.png")
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_atomic_replace_of_a_folder_syncs_parent_and_removes_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new, old = tmp_path / "out.partial", tmp_path / "out"
    new.mkdir()
    (new / "a.txt").write_text("new")
    old.mkdir()
    (old / "b.txt").write_text("old")
    _io.fsync_tree(new)
    rec = _Recorder(monkeypatch)
    _io.atomic_replace(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # trash removed
    assert rec.events[-1] == ("fsync", str(tmp_path))


def test_fsync_tree_syncs_every_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s" / "c" / "0").mkdir(parents=True)
    for name in ("zarr.json", "s/zarr.json", "s/c/0/0"):
        (tmp_path / name).write_bytes(b"x")
    rec = _Recorder(monkeypatch)
    _io.fsync_tree(tmp_path)
    synced = {Path(p).relative_to(tmp_path).as_posix() for k, p in rec.events if k == "fsync"}
    assert synced == {".", "zarr.json", "s", "s/zarr.json", "s/c", "s/c/0", "s/c/0/0"}


def test_store_completion_is_synced_before_the_final_name_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's completion attrs and every shard are fsynced before the rename that makes it visible."""
    from _tiny import make_tiny_store

    rec = _Recorder(monkeypatch)
    final = make_tiny_store(tmp_path / "s.zarr", n=40, seed=0)
    renames = [i for i, (k, v) in enumerate(rec.events) if k == "replace" and v.endswith(f"-> {final}")]
    assert renames, rec.events
    before = {p for k, p in rec.events[: renames[-1]] if k == "fsync"}
    tmp = next(p for k, p in rec.events[: renames[-1]] if k == "fsync" and p.endswith("zarr.json"))
    written = {str(p) for p in Path(tmp).parent.rglob("*")} if Path(tmp).exists() else set()
    assert not written  # the temporary name is gone: it was renamed
    shards = {Path(p).relative_to(Path(tmp).parent).as_posix() for p in before if "/c/" in p}
    assert {f"patches/c/{i}/0/0/0" for i in range(3)} <= shards  # 40 patches, 16 per shard: 3 shard files
    assert Path(tmp).name == "zarr.json" and str(Path(tmp).parent) in before  # the attrs that say complete
    assert rec.events[renames[-1] + 1] == ("fsync", str(final.parent))


# ------------------------------------------------------------------------------------------ folder lock
_HOLD = """
import sys, time
from pathlib import Path
from pathgan._lock import folder_lock
with folder_lock(Path(sys.argv[1]), "tile"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A second process that holds the lock on tmp_path/out until the test ends."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield out, proc
    proc.kill()
    proc.wait()


def test_second_writer_gets_a_clear_error_naming_the_owner(holder) -> None:  # type: ignore[no-untyped-def]
    out, proc = holder
    with pytest.raises(LockError) as err, folder_lock(out, "tile"):
        pass
    msg = str(err.value)
    assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and LOCK_NAME in msg
    assert isinstance(err.value, PathganError)
    assert read_lock(out)["pid"] == proc.pid  # the owner's lock is untouched


def test_lock_of_a_killed_process_is_recovered(holder) -> None:  # type: ignore[no-untyped-def]
    out, proc = holder
    proc.kill()  # kill -9: no cleanup ran
    proc.wait()
    assert read_lock(out)["pid"] == proc.pid  # the stale lock is still there
    with folder_lock(out, "tile") as path:
        assert read_lock(out)["pid"] == os.getpid()
        assert path == out / LOCK_NAME
    assert read_lock(out) is None  # released
    assert [p.name for p in out.iterdir()] == []  # no stale-lock leftovers


def _write_lock(folder: Path, **owner: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps(owner))


def test_reused_pid_is_stale_but_another_host_is_not(tmp_path: Path) -> None:
    # A live pid (our parent) whose recorded start time differs: the pid was reused, the owner is gone.
    _write_lock(tmp_path, pid=os.getppid(), host=socket.gethostname(), start_time="1", started=time.time(),
                token="old")
    with folder_lock(tmp_path, "train-latent"):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    _write_lock(tmp_path, pid=1, host="some-other-node", start_time="1", started=time.time(), token="x")
    with pytest.raises(LockError, match="some-other-node"), folder_lock(tmp_path, "train-latent"):
        pass


def test_empty_lock_file_is_stale_only_after_a_grace_period(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(LockError, match="left no record"), folder_lock(tmp_path, "tile"):
        pass
    old = time.time() - 60
    os.utime(tmp_path / LOCK_NAME, (old, old))
    with folder_lock(tmp_path, "tile"):
        assert read_lock(tmp_path)["pid"] == os.getpid()


def test_release_never_removes_a_lock_that_is_not_ours(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "tile"):
        _write_lock(tmp_path, pid=1, host="elsewhere", token="theirs")  # someone broke ours and took it
    assert read_lock(tmp_path)["token"] == "theirs"
