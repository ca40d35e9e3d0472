"""Report material built without Dask or training: a stores folder that looks like a ``pathgan tile``
batch (every status, a hostile slide id, a store the table does not list, one slide without a
preview PNG) and run directories of each kind, with known numbers to check the pages against."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from _synth import paint_tissue
from PIL import Image

from pathgan.config import TrainConfig, TranslateConfig
from pathgan.models import get_config
from pathgan.runs import RunDir, write_yaml
from pathgan.store import create_store, finalize_store, temp_path_for, write_shard
from pathgan.tissue import render_preview

THUMB_MPP = (8.0, 6.0)  # um per thumbnail pixel (x, y): unequal on purpose, so x*y is checked
MPP0 = 0.5  # level-0 um/px
FOOT0 = 128  # level-0 px per patch (64 px at 1 um/px)
HOSTILE_ID = "<script>window.__pwned=1</script>"
HOSTILE_ERROR = '<img src=x onerror="window.__pwned=2"> & "quoted" failure'
MPP_ERROR = "slide 'nompp.svs' has no usable microns-per-pixel in its metadata; add an mpp_override"


def make_store(folder: Path, slide_id: str, n: int, seed: int, *, mpp_source: str = "metadata",
               preview: bool = True) -> Path:
    """A complete 64-px zstd store of ``n`` patches on a painted thumbnail (96 x 64 px at
    :data:`THUMB_MPP`), with its tissue and pen masks, QC arrays and (``preview``) previews/<id>.png."""
    rng = np.random.default_rng(seed)
    thumb, tissue = paint_tissue(96, 64, [(0.35, 0.5, 0.12 + 0.02 * (seed % 5)), (0.7, 0.45, 0.15)], seed=seed)
    pen = np.zeros_like(tissue)
    pen[5:8, 5:20] = True
    cell_x, cell_y = FOOT0 * MPP0 / THUMB_MPP[0], FOOT0 * MPP0 / THUMB_MPP[1]  # thumbnail px per patch
    cells = [(gx, gy) for gy in range(int(64 // cell_y)) for gx in range(int(96 // cell_x))]
    n_grid = len(cells)
    frac = [tissue[int(gy * cell_y):int((gy + 1) * cell_y), int(gx * cell_x):int((gx + 1) * cell_x)].mean()
            for gx, gy in cells]
    order = np.argsort(frac, kind="stable")[::-1][:n]
    coords = np.array([[cells[i][0] * FOOT0, cells[i][1] * FOOT0] for i in sorted(order)], np.int64).reshape(-1, 2)
    patches = rng.integers(0, 255, size=(n, 64, 64, 3), dtype=np.uint8)
    blur = rng.lognormal(-2.0 + seed * 0.1, 0.5, size=n).astype(np.float32)
    white = rng.beta(1, 6, size=n).astype(np.float32)
    pen_frac = np.where(rng.random(n) < 0.1, 0.02, 0.0).astype(np.float32)
    path = folder / f"{slide_id}.zarr"
    tmp = temp_path_for(path)
    create_store(tmp, coords_xy=coords, tissue_fraction=np.ones(n), pen_fraction=pen_frac, patch_px=64,
                 patches_per_shard=16, codec="zstd", jpeg_quality=90, thumbnail=thumb, tissue_mask=tissue,
                 pen_mask=pen)
    for s in range(0, n, 16):
        write_shard(tmp, s, patches[s : s + 16], blur[s : s + 16], white[s : s + 16])
    attrs = {"slide_id": slide_id, "source": {"path": f"/slides/{slide_id}.svs", "size_bytes": 1,
                                              "sha256_first_mib": str(seed), "mpp": [MPP0, MPP0],
                                              "mpp_source": mpp_source},
             "mpp_requested": 1.0, "mpp_effective": [1.0, 1.0], "source_level": 0, "footprint0": [FOOT0, FOOT0],
             "patch_px": 64, "stride_px": 64, "n_patches": n, "n_grid": n_grid, "thumbnail_mpp": list(THUMB_MPP),
             "config": {}, "pathgan_version": "test"}
    finalize_store(tmp, path, attrs)
    if preview:
        boxes = np.concatenate([coords, coords + FOOT0], axis=1) * MPP0 / np.array(THUMB_MPP * 2)
        big = [np.repeat(np.repeat(a, 4, 0), 4, 1) for a in (thumb, tissue, pen)]
        (folder / "previews").mkdir(exist_ok=True)
        Image.fromarray(render_preview(big[0], big[1], big[2], boxes * 4)).save(folder / "previews" / f"{slide_id}.png")
    return path


#: (slide_id, status, n_patches, seconds, error) as pathgan tile writes them; a store exists for
#: every row that is not failed.
STATUS_ROWS = [
    ("CMU-like-alpha", "done", 40, 3.25, ""),
    ("TCGA-like-beta", "done", 12, 11.5, ""),
    ("gamma", "skipped", 25, 0.0, ""),
    ("delta", "no_tissue", 0, 0.75, "no patch passed the tissue and pen thresholds"),
    ("nompp", "failed", 0, 0.5, MPP_ERROR),
    (HOSTILE_ID, "failed", 0, 0.25, HOSTILE_ERROR),
    ("TCGA-like-epsilon", "done", 7, 2.0, ""),
]
UNLISTED = ("old-store", 5)  # a store in the folder that the table does not list


def make_batch(folder: Path) -> Path:
    """The stores folder of :data:`STATUS_ROWS` plus :data:`UNLISTED`; ``TCGA-like-beta`` has no
    preview PNG (the report draws it from the store) and an ``mpp_override`` source."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (sid, status, n, _s, _e) in enumerate(STATUS_ROWS):
        if status != "failed":
            make_store(folder, sid, n, seed=i + 1, mpp_source="mpp_override" if "beta" in sid else "metadata",
                       preview="beta" not in sid)
    make_store(folder, UNLISTED[0], UNLISTED[1], seed=99)
    with (folder / "tile_status.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["slide_id", "status", "n_patches", "seconds", "error", "store"])
        for sid, status, n, s, e in STATUS_ROWS:
            w.writerow([sid, status, n, f"{s:.2f}", e, "" if status == "failed" else str(folder / f"{sid}.zarr")])
    return folder


def _png(path: Path, colour: tuple[int, int, int], px: int = 66) -> None:
    img = np.zeros((px, px, 3), np.uint8)
    img[:] = colour
    img[::8] = 255
    Image.fromarray(img).save(path)


#: stats.jsonl keys a train-latent run logs, and how the report groups them
LATENT_KEYS = {"Losses": ["loss_d", "loss_g"], "Gradient norms": ["grad_norm_d", "grad_norm_g"],
               "Throughput": ["d_img_per_s"], "Other": ["gp"]}
SAMPLE_STEPS = (0, 10, 20, 30, 40)
EVAL_STEPS = {20: 0.150, 40: 0.090}  # step -> kid_mean


def make_latent_run(root: Path, *, partial_last_line: bool = True) -> Path:
    """A train-latent run directory with 20 logged steps, a sample grid per :data:`SAMPLE_STEPS`
    (each its own colour), two checkpoints, two ``eval-*.json`` and, if asked, a stats line cut off
    mid-write (as read while training goes on)."""
    run = RunDir.create(root, "pathologygan-64-cpu")
    cfg = TrainConfig(model="pathologygan-64-cpu", batch_size=8, steps=40)
    run.write_config({"train": asdict(cfg), "model": asdict(get_config("pathologygan-64-cpu")),
                      "data": {"patch_mpp": 1.0, "train_slides": ["a", "b"], "data_fingerprint": "abc123"},
                      "stores": ["/data/a.zarr", "/data/b.zarr"]})
    lines = []
    for step in range(2, 42, 2):
        lines.append(json.dumps({"step": step, "kimg": step * 8 / 1000, "gp": 0.1, "loss_d": 1.0 / step,
                                 "grad_norm_d": 2.0, "loss_g": 2.0 + step / 40, "grad_norm_g": 3.0,
                                 "d_img_per_s": None if step == 2 else 90.0 + step, "train_min": step / 60,
                                 "time": 1.0e9 + step}))
    text = "\n".join(lines) + "\n" + ('{"step": 42, "loss_d": 0.' if partial_last_line else "")
    run.stats_path.write_text(text)
    for i, step in enumerate(SAMPLE_STEPS):
        _png(run.samples_dir / f"step-{step:07d}.png", (40 * i + 20, 120, 200 - 40 * i))
    for step in (20, 40):
        (run.checkpoints_dir / f"step-{step:07d}.pt").write_bytes(b"\0" * (1000 * step))
    for step, kid in EVAL_STEPS.items():
        (run.path / f"eval-step-{step:07d}-inception-n1000.json").write_text(json.dumps(
            {"fid": 300.0 * kid, "kid_mean": kid, "kid_std": 0.004, "precision": 0.1, "recall": 0.0,
             "n_real": 1000, "n_fake": 1000, "fid_floor": 20.0, "extractor": "inception", "real_split": "val",
             "checkpoint": f"step-{step:07d}.pt", "image_px": 64}))
    return run.path


def make_translate_run(root: Path) -> Path:
    """A train-translate run directory: CycleGAN loss keys, sec_per_step, eval.json, one sample grid."""
    run = RunDir.create(root, "cyclegan-cpu")
    run.write_config({"translate": asdict(TranslateConfig()), "data": {"domains": {"a": {"stores": ["/a.zarr"]},
                                                                                   "b": {"stores": ["/b.zarr"]}}},
                      "stores": {"a": ["/a.zarr"], "b": ["/b.zarr"]}})
    run.stats_path.write_text("".join(json.dumps({"step": s, "loss_g": 3.0 - s / 100, "loss_cycle_a": 1.0,
                                                  "loss_d_b": 0.25, "sec_per_step": 0.5}) + "\n" for s in (10, 20)))
    _png(run.samples_dir / "step-0000020.png", (200, 100, 150))
    (run.path / "eval.json").write_text(json.dumps({"a2b": {"stain_distance_before": 0.3, "after": 0.1}, "n_eval": 16}))
    return run.path


def make_encoder_dir(run_dir: Path) -> Path:
    """``run_dir/encoder/`` as train-encoder leaves it."""
    enc = run_dir / "encoder"
    (enc / "checkpoints").mkdir(parents=True)
    write_yaml(enc / "config.yaml", {"encoder": {"steps": 30, "batch_size": 8},
                                     "fitted_to": {"run_id": run_dir.name, "generator_checkpoint": "step-0000040.pt"}})
    (enc / "stats.jsonl").write_text("".join(json.dumps({"step": s, "loss_w": 1 - s / 40, "loss": 1 - s / 40,
                                                         "w_r2": s / 40, "img_per_s": 100.0}) + "\n" for s in (10, 20, 30)))
    (enc / "checkpoints" / "step-000030.pt").write_bytes(b"\0" * 10)
    (enc / "eval.json").write_text(json.dumps({"w_r2": 0.75, "real_recon_mse": 0.04, "step": 30}))
    _png(enc / "recon.png", (180, 90, 160))
    return enc
