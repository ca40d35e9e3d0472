"""Run directories as a type: ``runs/00012-pathologygan-64-cpu/`` opened, read and created in one place.

Every training command writes a self-describing folder, and every command that uses a trained
model reads one back. :class:`RunDir` is that folder: what it holds, where, and how to read it,
so ``evaluate``, ``train-encoder``, ``encode``, ``export-synthetic``, ``translate``,
:meth:`pathgan.latents.LatentModel.load` and the training loops never rebuild a path or parse
``config.yaml`` themselves::

    config.yaml                 resolved configs + data provenance + the stores it was trained on
                                + ``sessions``: the hardware of each train-latent session (no hostname)
    stats.jsonl                 one JSON object per logged step
    samples/step-0000500.png    EMA samples from fixed seeds
    checkpoints/step-0000500.pt model, EMA, optimisers, RNG states, step, provenance
    encoder/                    train-encoder's output (train-latent runs only)
    .pathgan.lock               held while a process writes the run (pathgan._lock)

Light: no torch, no numpy at import (the CLI's ``--help`` stays fast).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pathgan._io import atomic_path, atomic_write_bytes
from pathgan.config import ModelConfig, TrainConfig, TranslateConfig, from_dict
from pathgan.errors import ConfigError, PathganError

__all__ = ["CONFIG_FILE", "ENCODER_DIR", "STATS_FILE", "RunDir", "RunKind", "file_sha256", "latest_checkpoint",
           "save_grid", "write_yaml"]

RunKind = Literal["latent", "translate"]
CONFIG_FILE = "config.yaml"
STATS_FILE = "stats.jsonl"
ENCODER_DIR = "encoder"
_RUN_RE = re.compile(r"^(\d{5})-")
_COMMAND = {"latent": "train-latent", "translate": "train-translate"}


def _kind_of(data: dict[str, Any], path: Path) -> RunKind:
    if "translate" in data:
        return "translate"
    if "train" in data and "model" in data:
        return "latent"
    raise PathganError(f"{path} has neither 'train' + 'model' (train-latent) nor 'translate' "
                       f"(train-translate) sections; found {sorted(data)}")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    """``data`` as YAML at ``path``, written atomically and durably."""
    import yaml

    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the highest step in ``folder/checkpoints`` (None when there is none)."""
    ckpts = sorted((Path(folder) / "checkpoints").glob("step-*.pt"))
    return ckpts[-1] if ckpts else None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, cached beside it in ``<name>.sha256`` (keyed by size and mtime).

    Checkpoints are written once, atomically, so the cache stays valid; a rewritten file changes
    its mtime and is hashed again.
    """
    path = Path(path)
    st = path.stat()
    key = f"{st.st_size}:{st.st_mtime_ns}"
    cache = path.with_name(path.name + ".sha256")
    try:
        cached_key, digest = cache.read_text().split()
        if cached_key == key:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    with contextlib.suppress(OSError):  # a read-only run directory still works, without the cache
        cache.write_text(f"{key} {digest}\n")
    return digest


@dataclass(frozen=True)
class RunDir:
    """One run directory. Create with :meth:`create`, open an existing one with :meth:`open`."""

    path: Path

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, root: Path, name: str) -> RunDir:
        """Make ``root/NNNNN-name`` with the next free number (never reuses an existing folder)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
        for n in range(max(numbers, default=-1) + 1, 100_000):
            path = root / f"{n:05d}-{name}"
            try:
                path.mkdir()
            except FileExistsError:  # another process took it; try the next number
                continue
            (path / "samples").mkdir()
            (path / "checkpoints").mkdir()
            return cls(path)
        raise PathganError(f"no free run number under {root} (00000-99999 are all taken)")

    @classmethod
    def open(cls, path: str | Path, kind: RunKind | None = None) -> RunDir:
        """An existing run; with ``kind``, one made by that command.

        Raises
        ------
        PathganError : no such folder, no ``config.yaml``, an unreadable one, or a run of another kind.
        """
        run = cls(Path(path))
        if not run.path.is_dir():
            raise PathganError(f"run directory {run.path} does not exist")
        if not run.config_path.is_file():
            if (run.path / "config.json").is_file():  # pathgan.export's layout (not imported: runs stays light)
                raise PathganError(f"{run.path} is an exported model (config.json), not a run directory; "
                                   "this needs the run it was exported from")
            raise PathganError(f"{run.path} is not a pathgan run directory (no {CONFIG_FILE})")
        if kind is None:
            run.kind  # noqa: B018 - a readable config.yaml of a known kind, or the error that says why not
        else:
            run._config_of(kind)
        return run

    # ------------------------------------------------------------------ layout
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def stats_path(self) -> Path:
        return self.path / STATS_FILE

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def encoder_dir(self) -> Path:
        """Where ``train-encoder`` puts its output (``encoder.partial/`` while it trains)."""
        return self.path / ENCODER_DIR

    def checkpoints(self) -> list[Path]:
        """Every checkpoint, oldest first."""
        return sorted(self.checkpoints_dir.glob("step-*.pt"))

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.path)

    def require_checkpoint(self) -> Path:
        """The latest checkpoint; a :class:`PathganError` that says how to make one when there is none."""
        path = self.latest_checkpoint()
        if path is None:
            raise PathganError(f"{self.path} has no checkpoint yet (checkpoints/step-*.pt); "
                               f"train it with pathgan {_COMMAND[self.kind]} first")
        return path

    def encoder_checkpoint(self) -> Path | None:
        """The finished encoder's latest checkpoint (None when ``train-encoder`` has not finished)."""
        return latest_checkpoint(self.encoder_dir)

    # ------------------------------------------------------------------ config.yaml
    @property
    def config(self) -> dict[str, Any]:
        """The whole saved ``config.yaml`` (read afresh: a run being written may change it)."""
        import yaml

        try:
            data = yaml.safe_load(self.config_path.read_text())
        except FileNotFoundError:
            raise PathganError(f"{self.path} is not a pathgan run directory (no {CONFIG_FILE})") from None
        except yaml.YAMLError as err:
            raise PathganError(f"{self.config_path} is not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise PathganError(f"{self.config_path} holds {type(data).__name__}, expected a mapping")
        return data

    @property
    def kind(self) -> RunKind:
        return _kind_of(self.config, self.config_path)

    def _config_of(self, kind: RunKind) -> dict[str, Any]:
        """``config.yaml``, read once, checked to be a ``kind`` run's."""
        data = self.config
        found = _kind_of(data, self.config_path)
        if found != kind:
            raise PathganError(f"{self.path} is a {_COMMAND[found]} run; this needs a {_COMMAND[kind]} run")
        return data

    def train_configs(self) -> tuple[TrainConfig, ModelConfig]:
        """The resolved ``TrainConfig`` and ``ModelConfig`` of a train-latent run."""
        data = self._config_of("latent")
        model = dict(data["model"])
        for key in ("g_channels", "d_channels"):
            model[key] = tuple(model[key])
        return from_dict(TrainConfig, data["train"]), from_dict(ModelConfig, model)

    def translate_config(self) -> TranslateConfig:
        """The resolved ``TranslateConfig`` of a train-translate run."""
        return from_dict(TranslateConfig, self._config_of("translate")["translate"])

    @property
    def provenance(self) -> dict[str, Any]:
        """What the run was trained on: slides, MPP, patch size, data fingerprint, class names, ..."""
        return dict(self.config.get("data") or {})

    def stores(self, domain: str | None = None) -> list[Path]:
        """The stores the run was trained on, as recorded (train-translate: those of ``domain`` a or b)."""
        stores = self.config.get("stores") or []
        if isinstance(stores, dict):
            if domain is None:
                raise PathganError(f"{self.path} is a train-translate run: name the domain (a or b)")
            stores = stores.get(domain) or []
        return [Path(p) for p in stores]

    def existing_stores(self, domain: str | None = None) -> list[Path]:
        """:meth:`stores`, or a :class:`PathganError` naming those that are no longer where they were."""
        stores = self.stores(domain)
        missing = [str(p) for p in stores if not p.exists()]
        if not stores or missing:
            raise ConfigError(f"the stores listed in {self.config_path} are not found "
                              f"({missing or 'none listed'}); give the stores with --stores")
        return stores

    def write_config(self, data: dict[str, Any]) -> None:
        write_yaml(self.config_path, data)


def save_grid(path: Path, images: Any, ncols: int = 8, pad: int = 2) -> None:
    """Save ``uint8 [N, H, W, 3]`` images as one PNG grid (white padding)."""
    import numpy as np
    from PIL import Image

    n, h, w, _ = images.shape
    rows = -(-n // ncols)
    grid = np.full((rows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(grid).save(tmp)
