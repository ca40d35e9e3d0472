"""An untrained run on disk, made in a second and trained by nobody: what export tests need.

``export-model`` copies weights and facts; it does not care whether training improved them. So
the unit tests build the run directory by hand: a tiny model's freshly initialised EMA weights
(batch-norm running statistics set to non-trivial values, so that exporting them is tested), an
encoder fitted to that checkpoint, a ``stats.jsonl`` of two sessions, a hardware record and,
optionally, an ``eval-*.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from _tiny import TINY, register_tiny
from torch import nn

from pathgan.config import TrainConfig
from pathgan.models import Encoder, Generator, MappingNetwork, get_config
from pathgan.runs import RunDir, file_sha256
from pathgan.train import save_checkpoint

STEP = 40
EVAL = {"fid": 123.456, "kid_mean": 0.0412345, "kid_std": 0.0031234, "precision": 0.4375, "recall": 0.28125,
        "n_real": 32, "n_fake": 64, "fid_floor": 45.67, "fid_matched": 130.2, "n_floor": 16, "kid_subset_size": 16,
        "extractor": "random_projection_d2048_s0", "real_split": "val", "real_slides": ["c"], "image_px": 28}
SESSION = {"started_utc": "2026-01-02T03:04:05+00:00", "from_step": 0, "device": "cpu",
           "device_name": "Test CPU @ 1GHz", "processes": 1, "cpu": "Test CPU @ 1GHz", "cpu_cores_usable": 2,
           "torch_threads": 2, "torch": "2.13.0+cpu", "cuda": None, "python": "3.11.7", "os": "Linux x86_64"}


def make_untrained_run(root: Path, *, style: str = "adain", classes: tuple[str, ...] = (), encoder: bool = True,
                       evaluated: bool = True, stores: list[Path] | None = None, seed: int = 0) -> Path:
    """A train-latent run directory of the tiny model at step ``STEP``, never trained."""
    register_tiny()
    cfg = TrainConfig(model=TINY, batch_size=8, steps=STEP, seed=3, min_tissue_fraction=0.0, max_white_fraction=1.0,
                      val_fraction=0.2)
    model_cfg = dataclasses.replace(get_config(TINY), style=style, n_classes=len(classes))  # type: ignore[arg-type]
    run = RunDir.create(root, TINY)
    data: dict[str, Any] = {"store_schema": 3, "patch_mpp": 1.0, "patch_px": [32], "image_px": 28, "resize_mode": "crop",
                            "data_fingerprint": "f00dfeed12345678", "train_slides": ["a", "b"], "val_slides": ["c"],
                            "n_train_patches": 80, "holdout_block_um": 0.0}
    if classes:
        data.update(class_names=list(classes), class_counts={c: 40 for c in classes}, label_source="manifest")
    run.write_config({"train": asdict(cfg), "model": asdict(model_cfg), "data": data,
                      "stores": [str(p) for p in (stores or [])], "sessions": [SESSION, {**SESSION, "from_step": 20}]})
    torch.manual_seed(seed)
    modules = nn.ModuleDict({"mapping": MappingNetwork.from_config(model_cfg), "generator": Generator(model_cfg)})
    g = torch.Generator().manual_seed(seed + 1)
    for name, buf in modules.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(0.3 * torch.randn(buf.shape, generator=g))
        elif name.endswith("running_var"):
            buf.copy_(0.5 + torch.rand(buf.shape, generator=g))
        elif name.endswith("num_batches_tracked"):
            buf.fill_(STEP)
    ckpt = run.checkpoints_dir / f"step-{STEP:07d}.pt"
    save_checkpoint(ckpt, {"step": STEP, "ema": modules.state_dict(), "provenance": data})
    if encoder:
        (run.encoder_dir / "checkpoints").mkdir(parents=True)
        enc = Encoder(model_cfg)
        enc.w_mean.copy_(torch.randn(enc.w_mean.shape, generator=g))
        enc.w_std.copy_(0.5 + torch.rand(enc.w_std.shape, generator=g))
        save_checkpoint(run.encoder_dir / "checkpoints" / "step-000005.pt",
                        {"kind": "encoder", "step": 5, "encoder": enc.state_dict(), "channels": list(enc.channels),
                         "provenance": {"checkpoint_sha256": file_sha256(ckpt), "run_id": run.name}})
        (run.encoder_dir / "eval.json").write_text(json.dumps(
            {"w_r2": 0.4321, "n_generated": 64, "real_split": "val", "n_real": 16, "real_recon_mse": 0.0123,
             "real_mean_w_mse": 0.0456}))
    rows = [{"step": s, "train_min": m, "d_img_per_s": r} for s, m, r in
            [(10, 1.0, 50.0), (20, 2.5, 60.0), (30, 0.75, 70.0), (40, 1.5, 80.0)]]  # 2.5 + 1.5 minutes
    run.stats_path.write_text("".join(json.dumps({**r, "kimg": r["step"] * 8 / 1000}) + "\n" for r in rows))
    if evaluated:
        (run.path / f"eval-step-{STEP:07d}-random-n64.json").write_text(
            json.dumps({**EVAL, "checkpoint": ckpt.name}))
        (run.path / "eval-step-0000020-random-n64.json").write_text(
            json.dumps({**EVAL, "kid_mean": 0.9, "checkpoint": "step-0000020.pt"}))
    return run.path
