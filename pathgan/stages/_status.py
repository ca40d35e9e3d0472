"""One status-row type for the batch commands: tile (a row per slide), encode and translate (a row
per store). Every batch command records a bad input as a ``failed`` row with its reason and goes
on with the others; the CLI prints the rows and exits 1 when any failed."""

from __future__ import annotations

from dataclasses import dataclass

from pathgan.errors import PathganError

__all__ = ["StatusRow", "describe_error"]


@dataclass(kw_only=True)
class StatusRow:
    """``status``: tile ``done | skipped | no_tissue | failed``; encode ``encoded | skipped | failed``;
    translate ``translated | failed``. ``store`` is the store written (tile) or read (encode,
    translate); ``out`` the store a translation wrote."""

    slide_id: str
    status: str
    n_patches: int = 0
    seconds: float = 0.0
    error: str = ""
    store: str = ""
    out: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def describe_error(err: BaseException) -> str:
    """One line for a status table: known errors as their message, bugs with their type."""
    if isinstance(err, PathganError):
        return str(err).replace("\n", " ")
    return f"{type(err).__name__}: {err}".replace("\n", " ")
