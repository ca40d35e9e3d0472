"""The status table the batch commands print (tile, encode, translate): one aligned row per item."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["echo_status"]


def echo_status(rows: Sequence[Any], head: str, name: Callable[[Any], str]) -> None:
    """``name  status  patches  seconds  error`` for each :class:`~pathgan.stages._status.StatusRow`."""
    names = [name(r) for r in rows]
    width = max([len(n) for n in names] + [len(head)])
    click.echo(f"{head:<{width}}  {'status':<10}  {'patches':>8}  {'seconds':>8}  error")
    for n, r in zip(names, rows, strict=True):
        click.echo(f"{n:<{width}}  {r.status:<10}  {r.n_patches:>8}  {r.seconds:>8.1f}  {r.error}")
