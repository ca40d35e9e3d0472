"""The ``pathgan`` command line: a thin click shell over :mod:`pathgan.stages`."""

from pathgan.cli._main import main

__all__ = ["main"]
