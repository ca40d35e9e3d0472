"""The exported-model folder's layout and its light helpers (no torch: the CLI's ``--help`` stays fast).

::

    MODEL/
      config.json             format version, model config, data facts, model id, sha256 of each weights file
      generator.safetensors   EMA mapping network + generator: parameters and buffers (batch-norm running
                              statistics, spectral-norm vectors), names prefixed ``mapping.`` / ``generator.``
      encoder.safetensors     the fitted image -> w encoder (only when the run had one)
      MODEL_CARD.md           what it is, what it was trained on, how well it does, what it is not for

A folder is written as ``MODEL.partial/`` and renamed to ``MODEL`` when complete; ``config.json`` is
the last file written, so a half-written folder is never taken for a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pathgan.errors import PathganError

__all__ = ["CARD_FILE", "CONFIG_FILE", "ENCODER_FILE", "FORMAT", "FORMAT_VERSION", "GENERATOR_FILE",
           "PARTIAL_SUFFIX", "is_exported_model", "read_export_config", "resolve_model_id"]

FORMAT = "pathgan-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"
ENCODER_FILE = "encoder.safetensors"
CARD_FILE = "MODEL_CARD.md"
PARTIAL_SUFFIX = ".partial"


def is_exported_model(path: str | Path) -> bool:
    """True when ``path`` is a folder holding an exported model's ``config.json`` (and no run's ``config.yaml``)."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and not (path / "config.yaml").exists()


def read_export_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of the exported model in ``path``, checked to be of this pathgan's format version.

    Raises
    ------
    PathganError
        An unfinished export, no ``config.json``, not JSON, another format or format version.
    """
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        raise PathganError(f"{path} is an unfinished export (interrupted while it was written); "
                           "run pathgan export-model again")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise PathganError(f"{path} is not an exported pathgan model: {CONFIG_FILE} is missing")
    try:
        data = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PathganError(f"{cfg_path} is not readable JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise PathganError(f"{cfg_path} has format {found!r}; expected {FORMAT!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise PathganError(f"{cfg_path} has format_version {data.get('format_version')!r}; "
                           f"this pathgan reads {FORMAT_VERSION}")
    return data


def resolve_model_id(value: str | Path) -> str:
    """The latents name (``latents/<id>`` in a store) that ``value`` stands for.

    ``value`` may be a run directory (its name), an exported model folder (the ``model_id`` in its
    config.json) or already an id, which is returned unchanged. ``pathgan classify`` and ``pathgan
    roi`` accept any of the three.
    """
    path = Path(value)
    if is_exported_model(path):
        model_id = read_export_config(path).get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise PathganError(f"{path / CONFIG_FILE} has no model_id")
        return model_id
    if path.is_dir() and (path / "config.yaml").is_file():
        return path.resolve().name
    return str(value)
