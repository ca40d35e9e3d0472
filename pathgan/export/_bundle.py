"""One loader for a trained latent model: a train-latent run directory or an exported model folder.

:func:`open_model` reads either into the same :class:`ModelBundle` (configs, EMA weights, the
encoder when fitted, class names, data provenance, ids and hashes), so ``LatentModel.load``,
``encode``, ``export-synthetic``, ``evaluate`` and ``export-model`` never ask which one they got.

Identity. ``checkpoint_sha256`` (and ``encoder_sha256``) name the weights, and are what encoded
latents record. A run's are the sha256 of its checkpoint files. A float32 export holds the same
tensors bit for bit, so it keeps them (latents encoded through the run stay valid through the
export, and the reverse); a float16 export's weights are rounded, so its ids are the sha256 of its
own safetensors files, and its model id gets a ``-fp16`` suffix.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pathgan.config import ModelConfig, from_dict
from pathgan.errors import ConfigError, PathganError
from pathgan.export._format import (
    CONFIG_FILE,
    ENCODER_FILE,
    GENERATOR_FILE,
    is_exported_model,
    read_export_config,
)
from pathgan.runs import RunDir

if TYPE_CHECKING:
    import torch

__all__ = ["ModelBundle", "ModelSource", "Networks", "StorageDtype", "open_model"]

ModelSource = Literal["run", "export"]
StorageDtype = Literal["float32", "float16"]
#: TrainConfig fields an export keeps: how patches were chosen and prepared (what evaluation and
#: encoding must repeat), and the headline training settings a model card states.
TRAIN_KEYS = ("model", "steps", "batch_size", "seed", "loss", "ema_decay", "diffaugment", "min_tissue_fraction",
              "max_white_fraction", "val_fraction", "holdout_block_um", "stain_augment", "labels")


class Networks(NamedTuple):
    """Modules built from a :class:`ModelBundle`, in eval mode without gradients."""

    mapping: Any
    generator: Any
    encoder: Any  # None without a fitted encoder


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """A trained latent model as read from disk, before it is put on a device.

    Attributes
    ----------
    source : ``"run"`` (a train-latent run directory) or ``"export"`` (a ``pathgan export-model`` folder).
    path : the folder it was read from.
    model_id : the latents name (``latents/<model_id>`` in stores): the run's folder name, or the
        ``model_id`` of an export's config.json.
    model_cfg : the architecture.
    generator_state : float32 CPU tensors of the EMA mapping network and generator, keys ``mapping.*``
        and ``generator.*`` (the state dict of ``ModuleDict(mapping=..., generator=...)``).
    checkpoint : file name of the run checkpoint the weights come from (``step-0000500.pt``).
    checkpoint_sha256 : identity of these generator weights (see the module docstring).
    step : training step of that checkpoint (None when not recorded).
    train : the training settings an export keeps (:data:`TRAIN_KEYS`).
    provenance : data provenance of the run (slides, patch MPP and size, fingerprint, class names, ...).
    class_names : the classes of a conditional model, in label order; empty when unconditional.
    encoder_state, encoder_channels, encoder_checkpoint, encoder_sha256 : the fitted encoder, or None.
    encoder_eval : the encoder's ``eval.json`` (w R^2, reconstruction errors), or None.
    dtype : how the weights were stored (a run: float32).
    source_checkpoint_sha256, source_encoder_sha256 : sha256 of the run's checkpoint files.
    run : the run directory when ``source == "run"``.
    config : an export's whole config.json (empty for a run).
    """

    source: ModelSource
    path: Path
    model_id: str
    model_cfg: ModelConfig
    generator_state: dict[str, torch.Tensor]
    checkpoint: str
    checkpoint_sha256: str
    step: int | None
    train: dict[str, Any]
    provenance: dict[str, Any]
    class_names: tuple[str, ...] = ()
    resize_mode: str = "crop"
    encoder_state: dict[str, torch.Tensor] | None = None
    encoder_channels: tuple[int, ...] | None = None
    encoder_checkpoint: str | None = None
    encoder_sha256: str | None = None
    encoder_eval: dict[str, Any] | None = None
    dtype: StorageDtype = "float32"
    source_checkpoint_sha256: str = ""
    source_encoder_sha256: str | None = None
    run: RunDir | None = None
    config: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- facts
    @property
    def image_px(self) -> int:
        return int(self.model_cfg.image_px)

    @property
    def z_dim(self) -> int:
        return int(self.model_cfg.z_dim)

    @property
    def w_dim(self) -> int:
        return int(self.model_cfg.w_dim)

    @property
    def mpp(self) -> float | None:
        """Microns per pixel of the images the model was trained on and draws (None when not recorded)."""
        value = self.provenance.get("patch_mpp")
        return None if value is None else float(value)

    @property
    def patch_px(self) -> tuple[int, ...]:
        """The distinct sizes of the stored patches it was trained on (cropped or resized to ``image_px``)."""
        value = self.provenance.get("patch_px")
        if value is None:
            return ()
        return tuple(int(v) for v in value) if isinstance(value, list | tuple) else (int(value),)

    @property
    def has_encoder(self) -> bool:
        return self.encoder_state is not None

    def describe(self) -> str:
        """``run PATH`` or ``exported model PATH``, for messages."""
        return f"run {self.path}" if self.source == "run" else f"exported model {self.path}"

    def encoder_hint(self) -> str:
        """What to do when an encoder is needed and this model has none."""
        if self.source == "run":
            return f"{self.path} has no trained encoder (encoder/ is missing or unfinished); run: pathgan train-encoder --run {self.path}"
        return (f"{self.path} is an exported model without an encoder; fit one on the run it came from "
                f"(pathgan train-encoder --run RUN) and export that run again")

    def default_stores(self) -> list[Path]:
        """The stores the model was trained on, where a command defaults to them.

        Raises
        ------
        ConfigError
            An exported model (it records its training stores only as provenance), or a run whose
            stores are no longer where it recorded them.
        """
        if self.run is None:
            raise ConfigError(f"{self.path} is an exported model: it records the stores it was trained on only as "
                              "provenance, not as data to read; give the stores with --stores")
        return self.run.existing_stores()

    # ----------------------------------------------------------------- modules
    def build(self, device: str | torch.device = "cpu") -> Networks:
        """The EMA mapping network, generator and (when fitted) encoder on ``device``, eval mode, no gradients."""
        import torch

        dev = torch.device(device)
        modules = _generator_modules(self.model_cfg)
        modules.load_state_dict(self.generator_state)
        modules = modules.requires_grad_(False).to(dev).eval()
        encoder = None
        if self.encoder_state is not None:
            encoder = _encoder_module(self.model_cfg, self.encoder_channels)
            encoder.load_state_dict(self.encoder_state)
            encoder = encoder.requires_grad_(False).to(dev).eval()
        return Networks(modules["mapping"], modules["generator"], encoder)


def open_model(path: str | Path, *, with_encoder: bool = True) -> ModelBundle:
    """Read a train-latent run directory (its latest checkpoint's EMA weights and, when fitted, its
    encoder) or an exported model folder into a :class:`ModelBundle`.

    ``with_encoder=False`` skips the encoder (and, for a run, the check that it was fitted to the
    latest checkpoint): commands that only generate do not need it.

    Raises
    ------
    PathganError
        Neither a run nor an export; a run without a checkpoint, or whose encoder was fitted to
        another checkpoint; an export with a missing file, another format version, a sha256 that
        does not match config.json, or tensors that do not fit the model config.json describes.
    """
    path = Path(path)
    if not path.is_dir():
        raise PathganError(f"{path} does not exist (expected a train-latent run directory or an exported model)")
    if (path / "config.yaml").is_file():
        return _open_run(path, with_encoder)
    if is_exported_model(path) or path.name.endswith(".partial"):
        return _open_export(path, with_encoder)
    raise PathganError(f"{path} is neither a train-latent run directory (no config.yaml) nor an exported model "
                       f"(no {CONFIG_FILE})")


# --------------------------------------------------------------------------------------- runs
def _open_run(path: Path, with_encoder: bool) -> ModelBundle:
    from pathgan.runs import file_sha256
    from pathgan.train import load_checkpoint

    run = RunDir.open(path, "latent")
    train_cfg, model_cfg = run.train_configs()
    ckpt_path = run.require_checkpoint()
    ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    sha = file_sha256(ckpt_path)
    data = run.provenance
    enc: dict[str, Any] = {}
    enc_path = run.encoder_checkpoint() if with_encoder else None
    if enc_path is not None:
        edata = load_checkpoint(enc_path, map_location="cpu")
        fitted = edata.get("provenance", {}).get("checkpoint_sha256")
        if fitted != sha:
            raise PathganError(
                f"the encoder in {run.encoder_dir} was fitted to another generator checkpoint "
                f"(sha256 {str(fitted)[:12]}, latest is {ckpt_path.name} with {sha[:12]}); "
                f"run pathgan train-encoder --run {run.path} --overwrite")
        enc_sha = file_sha256(enc_path)
        enc = {"encoder_state": dict(edata["encoder"]), "encoder_channels": tuple(int(c) for c in edata["channels"]),
               "encoder_checkpoint": enc_path.name, "encoder_sha256": enc_sha, "source_encoder_sha256": enc_sha,
               "encoder_eval": _read_json(run.encoder_dir / "eval.json")}
    step = ckpt.get("step")
    return ModelBundle(
        source="run", path=run.path, model_id=run.path.resolve().name, model_cfg=model_cfg,
        generator_state=dict(ckpt["ema"]), checkpoint=ckpt_path.name, checkpoint_sha256=sha,
        step=None if step is None else int(step),
        train={k: getattr(train_cfg, k) for k in TRAIN_KEYS}, provenance=data,
        class_names=tuple(data.get("class_names") or ()), resize_mode=str(data.get("resize_mode", "crop")),
        source_checkpoint_sha256=sha, run=run, **enc)


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------- exports
def _open_export(path: Path, with_encoder: bool) -> ModelBundle:
    cfg = read_export_config(path)
    cfg_path = path / CONFIG_FILE
    model_cfg = _model_config(cfg.get("model"), cfg_path)
    dtype = cfg.get("dtype")
    if dtype not in ("float32", "float16"):
        raise PathganError(f"{cfg_path}: dtype {dtype!r}; expected 'float32' or 'float16'")
    gen = _section(cfg, "generator", cfg_path)
    gen_state, gen_sha = _read_weights(path, gen, dtype, _generator_shapes(model_cfg, cfg_path), cfg_path)
    enc: dict[str, Any] = {}
    enc_section = cfg.get("encoder")
    if enc_section is not None and with_encoder:
        enc_section = _section(cfg, "encoder", cfg_path)
        channels = enc_section.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, int) for c in channels):
            raise PathganError(f"{cfg_path}: encoder.channels is {channels!r}; expected a list of integers")
        shapes = _encoder_shapes(model_cfg, tuple(channels), cfg_path)
        enc_state, enc_sha = _read_weights(path, enc_section, dtype, shapes, cfg_path)
        source_enc = str(enc_section.get("source_sha256", ""))
        enc = {"encoder_state": enc_state, "encoder_channels": tuple(channels),
               "encoder_checkpoint": str(enc_section.get("source_checkpoint", ENCODER_FILE)),
               "encoder_sha256": source_enc if dtype == "float32" and source_enc else enc_sha,
               "source_encoder_sha256": source_enc or None, "encoder_eval": enc_section.get("eval")}
    source_sha = str(gen.get("source_sha256", ""))
    model_id = cfg.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise PathganError(f"{cfg_path}: model_id is {model_id!r}; expected a non-empty name")
    class_names = cfg.get("class_names") or []
    if len(class_names) != model_cfg.n_classes:
        raise PathganError(f"{cfg_path}: {len(class_names)} class_names for a model of n_classes={model_cfg.n_classes}")
    step = gen.get("step")
    return ModelBundle(
        source="export", path=path, model_id=model_id, model_cfg=model_cfg, generator_state=gen_state,
        checkpoint=str(gen.get("source_checkpoint", GENERATOR_FILE)),
        checkpoint_sha256=source_sha if dtype == "float32" and source_sha else gen_sha,
        step=None if step is None else int(step), train=dict(cfg.get("train") or {}),
        provenance=dict(cfg.get("provenance") or {}), class_names=tuple(str(c) for c in class_names),
        resize_mode=str(cfg.get("resize_mode", "crop")), dtype=dtype, source_checkpoint_sha256=source_sha,
        config=cfg, **enc)


def _section(cfg: dict[str, Any], key: str, cfg_path: Path) -> dict[str, Any]:
    section = cfg.get(key)
    if not isinstance(section, dict) or not isinstance(section.get("file"), str) or not section.get("sha256"):
        raise PathganError(f"{cfg_path}: the {key!r} entry must name its file and sha256; found {section!r}")
    return section


def _model_config(data: Any, cfg_path: Path) -> ModelConfig:
    if not isinstance(data, dict):
        raise PathganError(f"{cfg_path}: 'model' must be a mapping of ModelConfig fields; found {type(data).__name__}")
    data = dict(data)
    for key in ("g_channels", "d_channels"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    try:
        return from_dict(ModelConfig, data)
    except ConfigError as err:
        raise PathganError(f"{cfg_path}: model: {err}") from err


def _read_weights(folder: Path, section: dict[str, Any], dtype: str, expected: dict[str, tuple[tuple[int, ...], bool]],
                  cfg_path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of ``section["file"]`` as float32, after checking its sha256, names, shapes and dtypes."""
    import torch
    from safetensors.torch import load

    name = section["file"]
    if Path(name).name != name:
        raise PathganError(f"{cfg_path}: file {name!r} must be a plain file name inside the model folder")
    file = folder / name
    if not file.is_file():
        raise PathganError(f"{file} is missing (listed in {CONFIG_FILE})")
    raw = file.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if sha != section["sha256"]:
        raise PathganError(f"{file}: sha256 {sha[:12]}... does not match {CONFIG_FILE}'s {str(section['sha256'])[:12]}... "
                           "(the file was changed or damaged)")
    try:
        state = load(raw)
    except Exception as err:  # safetensors raises its own SafetensorError
        raise PathganError(f"{file} is not a readable safetensors file: {err}") from err
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        raise PathganError(f"{file}: {len(missing)} tensor(s) the model in {CONFIG_FILE} needs are missing, "
                           f"e.g. {missing[0]!r}")
    if extra:
        raise PathganError(f"{file}: {len(extra)} tensor(s) are not part of the model in {CONFIG_FILE}, "
                           f"e.g. {extra[0]!r}")
    want_float = torch.float16 if dtype == "float16" else torch.float32
    out: dict[str, torch.Tensor] = {}
    for key, (shape, is_float) in expected.items():
        t = state[key]
        if tuple(t.shape) != shape:
            raise PathganError(f"{file}: tensor {key!r} has shape {list(t.shape)}; the model in {CONFIG_FILE} "
                               f"expects {list(shape)}")
        if is_float and t.dtype != want_float:
            raise PathganError(f"{file}: tensor {key!r} is {t.dtype}; {CONFIG_FILE} says dtype {dtype}")
        out[key] = t.float() if is_float else t
    return out, sha


def _generator_modules(cfg: ModelConfig) -> Any:
    from torch import nn

    from pathgan.models import Generator, MappingNetwork

    # The EMA state dict of a run is that of this ModuleDict: the same keys.
    return nn.ModuleDict({"mapping": MappingNetwork.from_config(cfg), "generator": Generator(cfg)})


def _encoder_module(cfg: ModelConfig, channels: tuple[int, ...] | None) -> Any:
    from pathgan.models import Encoder

    return Encoder(cfg, channels)


def _generator_shapes(cfg: ModelConfig, cfg_path: Path) -> dict[str, tuple[tuple[int, ...], bool]]:
    try:
        return _generator_shapes_of(cfg)
    except ConfigError as err:
        raise PathganError(f"{cfg_path}: model: {err}") from err


@functools.lru_cache(maxsize=8)
def _generator_shapes_of(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Name -> (shape, is floating point) of every tensor the model's EMA state holds."""
    state = _generator_modules(cfg).state_dict()
    return {k: (tuple(v.shape), v.is_floating_point()) for k, v in state.items()}


def _encoder_shapes(cfg: ModelConfig, channels: tuple[int, ...], cfg_path: Path) -> dict[str, tuple[tuple[int, ...], bool]]:
    try:
        state = _encoder_module(cfg, channels).state_dict()
    except ConfigError as err:
        raise PathganError(f"{cfg_path}: encoder: {err}") from err
    return {k: (tuple(v.shape), v.is_floating_point()) for k, v in state.items()}
