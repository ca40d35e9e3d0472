"""``pathgan train-latent``: patch stores -> a trained PathologyGAN run directory."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pathgan._lock import folder_lock
from pathgan.config import TrainConfig
from pathgan.errors import ConfigError
from pathgan.runs import RunDir
from pathgan.store import expand_stores

__all__ = ["train_latent", "training_splits"]


def training_splits(paths: list[Path], cfg: TrainConfig) -> dict[str, list[Path]]:
    """Slides to train on and slides held out whole, for ``cfg``.

    Without a spatial hold-out, ``cfg.val_fraction`` of the slides the manifest leaves unassigned go
    to ``val`` (:func:`pathgan.data.split_stores`). With ``cfg.holdout_block_um`` > 0 the held-out
    set is the "test" squares of every slide, so no unassigned slide is also held out whole: on a
    small set that would throw away a slide's training squares and leave its test squares out of
    ``pathgan evaluate`` (the first shipped model trained on one of the two shared slides this way).
    A manifest's ``split`` column still holds slides out either way.
    """
    from pathgan.data import split_stores

    val_fraction = 0.0 if cfg.holdout_block_um > 0 else cfg.val_fraction
    return split_stores(paths, val_fraction=val_fraction, seed=cfg.seed)


def _distributed() -> tuple[int, int]:
    """(rank, world) from torchrun's environment, initialising the process group once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def train_latent(
    stores: list[Path],
    cfg: TrainConfig,
    *,
    runs_root: Path = Path("runs"),
    device: str = "auto",
    resume: Path | None = None,
    progress: bool = True,
    steps_override: int | None = None,
    budget_override: float | None = None,
) -> Path:
    """Train (or resume) a run; returns the run directory.

    With ``resume`` the configuration saved in the run directory is used (``steps_override`` may
    extend it, ``budget_override`` sets this session's time budget in minutes; empty ``stores`` mean
    the stores the run recorded) and training continues bit-exactly from the latest checkpoint. A run stopped by its time budget
    (``cfg.time_budget_min``) ends with a checkpoint and samples like one that reached its steps.
    """
    import torch

    from pathgan.data import PatchDataset, SpatialHoldout, class_labels, describe
    from pathgan.device import select_device
    from pathgan.models import get_config
    from pathgan.store import SCHEMA_VERSION
    from pathgan.train import Trainer

    rank, world = _distributed()
    saved_names = None
    if resume is not None:
        resumed = RunDir.open(resume, "latent")
        cfg, model_cfg = resumed.train_configs()
        saved_names = resumed.provenance.get("class_names")
        stores = list(stores) or resumed.existing_stores()
        if steps_override is not None:
            cfg = replace(cfg, steps=steps_override)
        if budget_override is not None:
            cfg = replace(cfg, time_budget_min=float(budget_override))
    else:
        model_cfg = get_config(cfg.model)
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {world} processes")
    dev = select_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    paths = expand_stores(stores)
    splits = training_splits(paths, cfg)
    if not splits["train"]:
        raise ConfigError(f"no training slides among {len(paths)} store(s): check the manifest's split column")
    labels = None
    if cfg.labels:
        labels = class_labels(splits["train"], cfg.labels, names=saved_names)
        model_cfg = replace(model_cfg, n_classes=len(labels.names))
    dataset = PatchDataset(
        splits["train"],
        image_px=model_cfg.image_px,
        min_tissue_fraction=cfg.min_tissue_fraction,
        max_white_fraction=cfg.max_white_fraction,
        dihedral=True,
        seed=cfg.seed,
        transform=_stain_transform(cfg.stain_augment),
        labels=labels.per_store if labels is not None else None,
        holdout=SpatialHoldout(block_um=cfg.holdout_block_um, part="train") if cfg.holdout_block_um > 0 else None,
    )
    info = describe(dataset)
    provenance = {
        "store_schema": SCHEMA_VERSION,
        "patch_mpp": info["mpp"],
        "patch_px": info["patch_px"],
        "image_px": model_cfg.image_px,
        "resize_mode": info["resize_mode"],
        "data_fingerprint": info["fingerprint"],
        "train_slides": [p.stem for p in splits["train"]],
        "val_slides": [p.stem for p in splits["val"]],
        "n_train_patches": len(dataset),
        "holdout_block_um": cfg.holdout_block_um,
    }
    if labels is not None:
        provenance.update(class_names=list(labels.names), class_counts=labels.counts(), label_source=labels.source)
    if resume is not None:
        run_dir = resume
    else:
        run_dir = _shared_run_dir(runs_root, model_cfg.name, rank, world, lambda r, n: RunDir.create(r, n).path)
        if rank == 0:
            RunDir(run_dir).write_config({"train": asdict(cfg), "model": asdict(model_cfg), "data": provenance,
                                          "stores": [str(p) for p in paths]})

    # One writer per run: a second --resume of the same run fails fast (rank 0 holds the lock).
    with folder_lock(run_dir, "train-latent") if rank == 0 else contextlib.nullcontext():
        trainer = Trainer(cfg, model_cfg, dataset=dataset, run_dir=run_dir, device=dev,
                          provenance=provenance, rank=rank, world=world, progress=progress)
        if resume is not None:
            trainer.resume()
        if rank == 0:
            _record_session(RunDir(run_dir), dev, world, trainer.step, trainer.precision)
        trainer.run()
    return run_dir


def _record_session(run: RunDir, dev: Any, world: int, step: int, precision: str) -> None:
    """Append this session's hardware to ``config.yaml`` ``sessions`` (a resumed run may move machines).

    Only facts that describe the compute, never the machine's identity: no hostname, user or path.
    """
    data = run.config
    data["sessions"] = [*(data.get("sessions") or []), {**_hardware(dev, world, step), "precision": precision}]
    run.write_config(data)


def _hardware(dev: Any, world: int, step: int) -> dict[str, Any]:
    import torch

    cpu = _cpu_model()
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = "Apple MPS"
    else:
        name = cpu
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count() or 0
    return {"started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "from_step": int(step),
            "device": dev.type, "device_name": name, "processes": world, "cpu": cpu, "cpu_cores_usable": usable,
            "torch_threads": torch.get_num_threads(), "torch": str(torch.__version__),  # TorchVersion is no YAML str
            "cuda": None if torch.version.cuda is None else str(torch.version.cuda),
            "python": platform.python_version(), "os": f"{platform.system()} {platform.machine()}"}


def _cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _stain_transform(sigma: float) -> Any:
    if sigma <= 0:
        return None
    from functools import partial

    from pathgan.stain import hed_jitter

    return partial(hed_jitter, sigma=sigma)


def _shared_run_dir(root: Path, name: str, rank: int, world: int, make: Any) -> Path:
    """Rank 0 creates the run directory; the others receive its path."""
    if world == 1:
        return make(root, name)  # type: ignore[no-any-return]
    import torch.distributed as dist

    box = [str(make(root, name)) if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return Path(str(box[0]))
