"""``python tests/_cli_tiny.py ARGS...``: the pathgan CLI with the tests' tiny model registered.

Subprocess tests (kill -9 at a fault point, then rerun) need a model small enough to train in
seconds; the registry is per process, so this wrapper registers it before handing over to click.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _tiny import register_tiny

register_tiny()

from pathgan.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
