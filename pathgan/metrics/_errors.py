"""Errors raised by pathgan.metrics."""

from __future__ import annotations

from pathgan.errors import PathganError

__all__ = ["MissingWeightsError"]


class MissingWeightsError(PathganError, FileNotFoundError):
    """The Inception weights for FID/KID could not be found; the message says how to get them."""
