"""Finding patch stores among the paths a user gives (stores and folders of stores)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pathgan.errors import ConfigError

__all__ = ["expand_each_store", "expand_stores"]


def expand_stores(paths: Iterable[str | Path], option: str = "--stores") -> list[Path]:
    """Store paths from a mix of ``*.zarr`` stores and folders holding them (sorted, unique).

    Raises
    ------
    ConfigError
        No path given, a path does not exist, or a folder holds no ``<slide_id>.zarr`` store; the
        message names ``option`` (the command-line option the paths came from) and the path.
    """
    given = [Path(p) for p in paths]
    if not given:
        raise ConfigError(f"{option}: no stores given; expected <slide_id>.zarr patch stores or folders of them")
    out: list[Path] = []
    for p in given:
        if not p.exists():
            raise ConfigError(f"{option} {p}: does not exist; expected a <slide_id>.zarr patch store or a folder of them")
        if p.suffix == ".zarr":
            out.append(p)
            continue
        found = sorted(q for q in p.glob("*.zarr") if q.is_dir())
        if not found:
            raise ConfigError(f"{option} {p}: no <slide_id>.zarr stores in this folder (run pathgan tile first)")
        out.extend(found)
    return sorted(dict.fromkeys(out))


def expand_each_store(paths: Iterable[str | Path], option: str | None = None) -> list[tuple[Path, str]]:
    """``(store, error)`` per store, in argument order, for batch commands that record a bad path as
    a failed row and go on: folders expand to their ``*.zarr``; a missing path or a folder without
    stores comes back with its error instead of raising. Each store appears once. With ``option``
    (the command-line argument the paths came from) every error is :func:`expand_stores`' and names
    it; without, a missing path is just "<path> does not exist"."""
    out: dict[Path, str] = {}
    for item in map(Path, paths):
        if option is None and not item.exists():
            out.setdefault(item, f"{item} does not exist")
            continue
        try:
            for path in expand_stores([item], option or "--stores"):
                out.setdefault(path, "")
        except ConfigError as err:
            out.setdefault(item, str(err))
    return list(out.items())
