"""``python -m pathgan.cli``."""

from pathgan.cli import main

main()
