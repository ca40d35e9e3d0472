"""``pathgan export-model``: a train-latent run -> a folder someone else can load (safetensors, no pickle)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pathgan import __version__
from pathgan._faults import fault_point
from pathgan._io import atomic_replace, fsync_tree
from pathgan.errors import ConfigError, PathganError
from pathgan.export._bundle import ModelBundle, Networks, StorageDtype, open_model
from pathgan.export._card import evaluations, model_card, training_time
from pathgan.export._format import (
    CARD_FILE,
    CONFIG_FILE,
    ENCODER_FILE,
    FORMAT,
    FORMAT_VERSION,
    GENERATOR_FILE,
    PARTIAL_SUFFIX,
    is_exported_model,
)

if TYPE_CHECKING:
    import torch

__all__ = ["FP16_CHECK_IMAGES", "export_model"]

#: Noise-free samples compared between the float32 and float16 weights of a float16 export.
FP16_CHECK_IMAGES = 16
_FP16_MAX = 65504.0


def export_model(run: str | Path, out: str | Path, *, dtype: StorageDtype = "float32",
                 overwrite: bool = False) -> Path:
    """Write the latest EMA mapping network + generator of ``run`` (and its encoder, when fitted) to ``out``.

    ``out`` gets ``generator.safetensors``, ``encoder.safetensors`` (with an encoder),
    ``config.json`` and ``MODEL_CARD.md``. It is built as ``out.partial/`` and renamed when
    complete, so ``out`` never holds half an export. ``dtype="float16"`` halves the files; loading
    casts back to float32, and the export records how far its images are from the float32 ones.

    Parameters
    ----------
    run : a ``pathgan train-latent`` run directory with a checkpoint.
    out : the folder to create.
    dtype : ``float32`` (bit-identical weights) or ``float16``.
    overwrite : replace an existing exported model at ``out`` (never another kind of folder).

    Returns
    -------
    Path : ``out``.

    Raises
    ------
    ConfigError
        A bad ``dtype``; ``out`` exists (without ``overwrite``, or is not an exported model); ``run``
        is already an exported model; a weight does not fit float16.
    PathganError
        ``run`` is not a train-latent run, has no checkpoint, or its encoder is stale.
    """
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"dtype={dtype!r} is not allowed; expected 'float32' or 'float16'")
    run, out = Path(run), Path(out)
    if is_exported_model(run):
        raise ConfigError(f"{run} is already an exported model; export-model takes the train-latent run it came from")
    _check_out(out, overwrite)
    bundle = open_model(run)
    assert bundle.run is not None
    model_id = bundle.model_id + ("-fp16" if dtype == "float16" else "")
    from pathgan.store import check_run_id

    check_run_id(model_id)

    gen_bytes = _safetensors(bundle.generator_state, dtype, model_id, GENERATOR_FILE)
    enc_bytes = (_safetensors(bundle.encoder_state, dtype, model_id, ENCODER_FILE)
                 if bundle.encoder_state is not None else None)
    nets = bundle.build("cpu")
    cfg = _config(bundle, model_id, dtype, nets, gen_bytes, enc_bytes)

    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)  # a leftover of an interrupted export to this folder
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    try:
        (partial / GENERATOR_FILE).write_bytes(gen_bytes)
        if enc_bytes is not None:
            (partial / ENCODER_FILE).write_bytes(enc_bytes)
        (partial / CARD_FILE).write_text(model_card(cfg, folder=out.name))
        # config.json last: a folder without it is never taken for a model.
        (partial / CONFIG_FILE).write_text(json.dumps(cfg, indent=1, allow_nan=False) + "\n")
        fault_point("export.before_rename")
        fsync_tree(partial)
        if (out.exists() or out.is_symlink()) and not overwrite:
            raise ConfigError(f"{out} appeared while this export was running; nothing was replaced")
        atomic_replace(partial, out)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)
        raise
    return out


def _check_out(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite")
    if not out.is_dir() or out.is_symlink():
        raise ConfigError(f"--out {out} is not a folder; nothing was replaced")
    if not is_exported_model(out) and any(out.iterdir()):
        raise ConfigError(f"--out {out} is a folder that is not an exported pathgan model; --overwrite only "
                          "replaces an earlier export, so nothing was replaced")


def _safetensors(state: dict[str, torch.Tensor] | None, dtype: str, model_id: str, name: str) -> bytes:
    """``state`` as safetensors bytes: floating tensors in ``dtype``, integer buffers as they are."""
    import torch
    from safetensors.torch import save

    assert state is not None
    tensors = {}
    for key, t in state.items():
        t = t.detach().cpu()
        if t.is_floating_point():
            if dtype == "float16":
                big = t[torch.isfinite(t)].abs()
                if big.numel() and float(big.max()) > _FP16_MAX:
                    raise ConfigError(f"{name}: tensor {key!r} holds {float(big.max()):.4g}, beyond float16's "
                                      f"{_FP16_MAX:g}; export it with dtype float32")
                t = t.to(torch.float16)
            else:
                t = t.to(torch.float32)
        tensors[key] = t.contiguous().clone()  # no shared storage: safetensors refuses aliases
    return bytes(save(tensors, metadata={"format": "pt", "pathgan_model_id": model_id, "dtype": dtype}))


def _n_params(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _config(bundle: ModelBundle, model_id: str, dtype: str, nets: Networks, gen_bytes: bytes,
            enc_bytes: bytes | None) -> dict[str, Any]:
    """The export's config.json: everything a loader and the model card need, nothing machine-specific."""
    assert bundle.run is not None
    run = bundle.run
    model = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(bundle.model_cfg).items()}
    gen = {"file": GENERATOR_FILE, "sha256": hashlib.sha256(gen_bytes).hexdigest(), "bytes": len(gen_bytes),
           "parameters": {"mapping": _n_params(nets.mapping), "generator": _n_params(nets.generator)},
           "source_checkpoint": bundle.checkpoint, "source_sha256": bundle.source_checkpoint_sha256, "step": bundle.step}
    enc = None
    if enc_bytes is not None:
        enc = {"file": ENCODER_FILE, "sha256": hashlib.sha256(enc_bytes).hexdigest(), "bytes": len(enc_bytes),
               "parameters": _n_params(nets.encoder), "channels": list(bundle.encoder_channels or ()),
               "source_checkpoint": bundle.encoder_checkpoint, "source_sha256": bundle.source_encoder_sha256,
               "eval": bundle.encoder_eval}
    evals, others = evaluations(run.path, bundle.checkpoint)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "pathgan_version": __version__,
        "exported_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_run": run.path.resolve().name,
        "dtype": dtype,
        "image_px": bundle.image_px,
        "z_dim": bundle.z_dim,
        "w_dim": bundle.w_dim,
        "mpp": bundle.mpp,
        "patch_px": list(bundle.patch_px),
        "resize_mode": bundle.resize_mode,
        "class_names": list(bundle.class_names),
        "model": model,
        "train": dict(bundle.train),
        "generator": gen,
        "encoder": enc,
        "float16_check": _fp16_check(bundle, nets) if dtype == "float16" else None,
        "provenance": _json_safe(bundle.provenance),
        # Where the run read its patches from, as it recorded them: for the record, never read by a loader.
        "training_stores": [str(p) for p in run.stores()],
        "training": {"time": training_time(run.stats_path), "sessions": list(run.config.get("sessions") or [])},
        "evaluations": evals,
        "evaluations_of_other_checkpoints": others,
    }


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(data, allow_nan=False)))
    except (TypeError, ValueError) as err:
        raise PathganError(f"the run's data provenance is not JSON-safe: {err}") from err


def _fp16_check(bundle: ModelBundle, nets: Networks) -> dict[str, Any]:
    """Noise-free images of the float32 and the float16-rounded networks from the same z, compared."""
    import torch

    from pathgan.data._transforms import to_uint8_nhwc
    from pathgan.models import render

    rounded = {k: (v.half().float() if v.is_floating_point() else v) for k, v in bundle.generator_state.items()}
    from dataclasses import replace

    half = replace(bundle, generator_state=rounded, encoder_state=None).build("cpu")
    z = torch.from_numpy(_z(FP16_CHECK_IMAGES, bundle.z_dim))
    k = bundle.model_cfg.n_classes
    c = torch.arange(FP16_CHECK_IMAGES) % k if k else None
    with torch.no_grad():
        a = to_uint8_nhwc(render(nets.generator, nets.mapping(z, c), noise=False)).astype("int16")
        b = to_uint8_nhwc(render(half.generator, half.mapping(z, c), noise=False)).astype("int16")
    diff = abs(a - b)
    return {"n_images": FP16_CHECK_IMAGES, "seed": 0, "max_abs_diff": int(diff.max()),
            "mean_abs_diff": round(float(diff.mean()), 4)}


def _z(n: int, z_dim: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).standard_normal((n, z_dim)).astype(np.float32)
