"""One exception hierarchy for pathgan.

Every error pathgan raises on purpose derives from :class:`PathganError`, so the CLI can turn
all of them into a clean message and a non-zero exit code, and batch jobs can record them per
slide without catching unrelated bugs.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GeoJSONError",
    "InputTypeError",
    "LockError",
    "ManifestError",
    "MissingMPPError",
    "PathganError",
    "ResolutionError",
    "SchemaMismatchError",
    "ShapeError",
    "SlideOpenError",
    "StainError",
    "StoreError",
    "StoreExistsError",
]


class PathganError(Exception):
    """Base class of every error pathgan raises deliberately."""


class ConfigError(PathganError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class ManifestError(PathganError, ValueError):
    """The slide manifest is malformed; the message names the row and column."""


class SlideOpenError(PathganError):
    """A slide file cannot be opened or decoded by any backend."""


class MissingMPPError(PathganError):
    """A slide carries no usable microns-per-pixel and none was given in the manifest."""


class ResolutionError(PathganError):
    """The requested resolution cannot be produced from the slide without upsampling."""


class StoreError(PathganError):
    """A patch store is missing, incomplete or unreadable."""


class SchemaMismatchError(StoreError):
    """A patch store was written with another schema version or another configuration."""


class ShapeError(PathganError, ValueError):
    """A tensor reached a model boundary with the wrong shape; the message names both shapes."""


class GeoJSONError(PathganError, ValueError):
    """A GeoJSON document is malformed; the message lists every problem found."""


class StainError(PathganError, ValueError):
    """An image given to stain normalisation or augmentation is invalid (shape, dtype, range), or a
    stain target has no tissue; the message names what was received and what is allowed."""


class LockError(PathganError):
    """An output folder is held by another running pathgan process; the message names the owner."""


class InputTypeError(PathganError, TypeError):
    """An argument of the wrong type or dtype (e.g. a numpy array where a float tensor in [0, 1] is
    expected); the message names what was received and what is allowed."""


class StoreExistsError(StoreError, FileExistsError):
    """A store's final name appeared while it was being written (another writer got there first)."""
