"""Trained latent models as folders others can load: ``pathgan export-model`` and the one loader.

>>> from pathgan.export import export_model, open_model
>>> export_model("runs/00003-pathologygan-64-cpu", "models/tissue-64", dtype="float16")  # doctest: +SKIP
>>> bundle = open_model("models/tissue-64")    # or the run directory itself: the same ModelBundle  # doctest: +SKIP

An export holds the EMA mapping network + generator (and the encoder when one was fitted) as
``safetensors`` (no pickle), ``config.json`` and ``MODEL_CARD.md``; see :mod:`pathgan.export._format`.
"""

from __future__ import annotations

from pathgan.export._bundle import ModelBundle, ModelSource, Networks, StorageDtype, open_model
from pathgan.export._card import model_card
from pathgan.export._format import (
    CARD_FILE,
    CONFIG_FILE,
    ENCODER_FILE,
    FORMAT_VERSION,
    GENERATOR_FILE,
    is_exported_model,
    resolve_model_id,
)
from pathgan.export._write import export_model

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "ENCODER_FILE",
    "FORMAT_VERSION",
    "GENERATOR_FILE",
    "ModelBundle",
    "ModelSource",
    "Networks",
    "StorageDtype",
    "export_model",
    "is_exported_model",
    "model_card",
    "open_model",
    "resolve_model_id",
]
