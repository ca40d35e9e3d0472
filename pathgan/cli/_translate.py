"""``pathgan`` commands of the translate layer (registered on the group in :mod:`pathgan.cli._main`)."""

from __future__ import annotations

from pathgan.cli._main import main

__all__: list[str] = []

_ = main
