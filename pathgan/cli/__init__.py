"""The ``pathgan`` command line: a thin click shell over :mod:`pathgan.stages`.

Commands live in small modules that register themselves on the one click group of ``_main``;
importing them here is what makes them part of ``pathgan``.
"""

from pathgan.cli import _export, _report, _translate  # noqa: F401  (register their commands)
from pathgan.cli._main import main

__all__ = ["main"]
