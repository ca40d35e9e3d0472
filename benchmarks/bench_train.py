"""Training-step throughput per registered config: discriminator and generator images/s.

A D step is one discriminator update with the gradient penalty (double backward); a G step one
generator update. Both with style mixing and DiffAugment, as in training. On CUDA, -224 is also
measured with bf16 autocast + channels_last + torch.compile against plain fp32 in the same run.

Usage:  python benchmarks/bench_train.py [--device cpu|cuda] [--configs ...] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from pathgan.config import TrainConfig
from pathgan.models import get_config, list_configs, param_counts
from pathgan.train import Trainer

CPU_BATCH = {"pathologygan-56-cpu": 16, "pathologygan-56": 8, "pathologygan-112": 4, "pathologygan-224": 2,
             "pathologygan-448": 1}


class _RandomImages:
    """Stands in for a PatchDataset: the benchmark times the model, not the data."""

    def __init__(self, n: int, px: int) -> None:
        self.n, self.px = n, px

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: object) -> dict:
        return {"image": torch.rand(len(key.indices), 3, self.px, self.px)}  # type: ignore[attr-defined]


def measure(name: str, device: torch.device, batch: int, steps: int, **train_kw) -> dict:
    mc = get_config(name)
    cfg = TrainConfig(model=name, batch_size=batch, n_critic=1, steps=10**6, log_every=10**6,
                      sample_every=10**6, checkpoint_every=10**6, **train_kw)
    run_dir = Path(tempfile.mkdtemp())
    (run_dir / "samples").mkdir()
    (run_dir / "checkpoints").mkdir()
    t_build = time.perf_counter()
    tr = Trainer(cfg, mc, dataset=_RandomImages(batch, mc.image_px), run_dir=run_dir, device=device,
                 provenance={}, progress=False)
    build_s = time.perf_counter() - t_build
    real = torch.rand(batch, 3, mc.image_px, mc.image_px)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):  # warm-up (compilation, allocator, oneDNN primitives)
        tr.train_step(real)
    sync()
    # Time D-only steps (step % n_critic != 0) and D+G steps separately.
    tr.cfg = replace(cfg, n_critic=10**9)
    tr.step = 1
    t = time.perf_counter()
    for _ in range(steps):
        tr.train_step(real)
    sync()
    d_s = (time.perf_counter() - t) / steps
    tr.cfg = replace(cfg, n_critic=1)
    t = time.perf_counter()
    for _ in range(steps):
        tr.train_step(real)
    sync()
    dg_s = (time.perf_counter() - t) / steps
    g_s = max(dg_s - d_s, 1e-9)
    counts = param_counts(tr.model)
    return {"config": name, "device": str(device), "batch": batch, "build_s": round(build_s, 1),
            "d_img_per_s": round(batch / d_s, 1), "g_img_per_s": round(batch / g_s, 1),
            "step_s_d_plus_g": round(dg_s, 3), "params_g_m": round(counts["generator"] / 1e6, 1),
            "params_d_m": round(counts["discriminator"] / 1e6, 1), **{k: v for k, v in train_kw.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=None, help="override the per-config batch")
    ap.add_argument("--out", type=Path, default=Path(".bench/bench_train.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    names = args.configs or [n for n in list_configs() if n.startswith("pathologygan")]
    rows = []
    for name in names:
        batch = args.batch or (64 if device.type == "cuda" else CPU_BATCH.get(name, 4))
        rows.append(measure(name, device, batch, args.steps))
        print(json.dumps(rows[-1]), flush=True)
    if device.type == "cuda":
        rows.append(measure("pathologygan-224", device, args.batch or 64, args.steps,
                            precision="bf16", channels_last=True, compile=True))
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    print("\n| config | device | batch | D img/s | G img/s | s per D+G step | G params (M) | D params (M) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = " bf16+CL+compile" if r.get("compile") else ""
        print(f"| {r['config']}{extra} | {r['device']} | {r['batch']} | {r['d_img_per_s']} | {r['g_img_per_s']} "
              f"| {r['step_s_d_plus_g']} | {r['params_g_m']} | {r['params_d_m']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
