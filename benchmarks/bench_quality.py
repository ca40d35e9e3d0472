"""Sample quality of the CPU preset against a plain baseline: same data, same wall clock, same threads.

Data: the two real slides of ../shared/data tiled at 1 um/px, 64-px patches, stride 32, kept by the
training filters (tissue >= 0.5, white <= 0.3). Each slide is cut into ``--block-um`` squares
coloured like a checkerboard: both methods train only on patches wholly inside "train" squares and
are scored only against patches wholly inside "test" squares (``pathgan.data.checkerboard_regions``;
the check that no test pixel is in any training patch runs on every call).

Methods, started together, each in its own process with ``--threads`` torch threads, each training
for ``--minutes`` of wall clock on the same in-memory patches (same sampler, same dihedral
augmentation), each saving its EMA generator at every ``--marks`` minute:

  (a) pathgan: ``pathgan.train.Trainer.train_step`` with the preset's TrainConfig and ModelConfig
  (b) baseline: ``quality_baseline.py``, a DCGAN with the simplest recipe known to work on small data
  (c) references with no training: real train squares vs test squares (what a perfect model of the
      training data would score), two random halves of the test patches (the sampling floor), and the
      training patches blurred with a Gaussian of sigma 1 px (a "blurry copy").

Measures against the test patches (n >= 1,000 fakes): Inception KID x1e3 (100 subsets of 500, mean
+- std), FID (full n; +- std over 10 bootstrap resamples of the fakes), improved precision and recall
(k = 3; +- std over 5 halves), per-pixel spread across samples, and a checkerboard score (the share of
spectral energy at max(|fx|, |fy|) >= 0.375 cycles/px, relative to the test patches'; 1 = like real).

Writes ``--work``/results.json, results.md (the README table), grid.png (samples side by side) and
kid_curve.png. ``--synthetic`` swaps the slides for generated textures (seconds; for the unit test).

``--score-model PATH`` trains nothing: it scores one finished model (a train-latent run directory or
an exported folder, e.g. ``models/``) the same way, at the same fixed latents, against the same test
squares, and writes ``--work``/model-<name>.json and model-<name>.png. The model must have been trained
with ``holdout_block_um`` equal to ``--block-um`` on these slides' train squares (it is checked).

Usage:  python benchmarks/bench_quality.py [--minutes 20] [--marks 5,20] [--seeds 0] [--n-fake 1000]
        [--preset pathgan/presets/train/pathologygan-64-cpu.yaml] [--baseline lr_g=2e-4 ...] [--work .bench/quality]
        python benchmarks/bench_quality.py --score-model models/pathgan-64-cpu-he [--n-fake 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))
SLIDES = (("CMU-1-Small-Region", "CMU-1-Small-Region.svs", ""), ("TCGA-CR-7395-01A-01-TS1", "TCGA-CR-7395-01A-01-TS1.svs", "0.5"))
SAMPLE_SEED = 20_261_202  # latents of every evaluation, the same for every method and mark
BASELINE = "plain baseline (DCGAN)"  # the method name of (b) in results and figures
HF_CUTOFF = 0.375  # cycles/px: the top quarter of the band, where 2x-upsampling grids put their energy


# ---------------------------------------------------------------------------------------------- data
def prepare(work: Path, *, block_um: float, synthetic: bool) -> Path:
    """Tile (once), split by the checkerboard and save the patches as uint8 arrays; returns the npz."""
    out = work / "data.npz"
    if out.exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    arrays = _synthetic_patches(block_um) if synthetic else _real_patches(work, block_um)
    _check_holdout(arrays)
    tmp = out.with_name("data.partial.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return out


def _real_patches(work: Path, block_um: float) -> dict[str, np.ndarray]:
    from pathgan.data import PatchDataset, SpatialHoldout

    if not (DATA / "slides").is_dir():
        sys.exit(f"bench_quality needs the real slides in {DATA}/slides (set PATHGAN_DATA), or --synthetic")
    stores = work / "stores"
    if not (stores / "tile_status.csv").exists():
        manifest = work / "manifest.csv"
        manifest.write_text("slide_id,path,mpp_override\n" + "".join(
            f"{sid},{DATA / 'slides' / name},{mpp}\n" for sid, name, mpp in SLIDES))
        subprocess.run([sys.executable, "-m", "pathgan.cli", "tile", "--manifest", str(manifest), "--out", str(stores),
                        "--mpp", "1.0", "--patch-px", "64", "--stride-px", "32", "--workers", "2", "--no-progress"],
                       check=True)
    paths = sorted(stores.glob("*.zarr"))
    arrays: dict[str, np.ndarray] = {}
    for part in ("train", "test"):
        ds = PatchDataset(paths, image_px=64, min_tissue_fraction=0.5, max_white_fraction=0.3, random_crop=False,
                          dihedral=False, holdout=SpatialHoldout(block_um=block_um, part=part))
        batch = ds.get_batch(np.arange(len(ds)))
        arrays[f"{part}_x"] = (batch["image"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        slide, patch = ds.locate(np.arange(len(ds)))
        from pathgan.store import PatchStore

        coords = np.concatenate([PatchStore(ds.stores[k].path).coords[patch[slide == k]] for k in np.unique(slide)])
        arrays[f"{part}_coords"] = coords
        arrays[f"{part}_slide"] = slide
    from pathgan.data import level0_mpp
    from pathgan.store import read_store_attrs

    attrs = [read_store_attrs(p) for p in paths]
    arrays["footprint0"] = np.array([np.broadcast_to(np.asarray(a["footprint0"], float), (2,)) for a in attrs])
    arrays["block0"] = np.array([[block_um / m for m in level0_mpp(a)] for a in attrs])
    arrays["slide_ids"] = np.array([a["slide_id"] for a in attrs])
    return arrays


def _synthetic_patches(block_um: float) -> dict[str, np.ndarray]:
    """Pink textures with purple dots on a 1 um/px grid of one 'slide': enough to exercise every step."""
    from pathgan.data import checkerboard_regions

    rng = np.random.default_rng(0)
    side, stride, px = 24, 32, 64
    coords = np.array([(x * stride, y * stride) for y in range(side) for x in range(side)], np.int64)
    base = np.array([225, 150, 190], np.float32) + rng.normal(0, 6, (len(coords), 1, 1, 3))
    x = np.broadcast_to(base, (len(coords), px, px, 3)).copy()
    dots = rng.random((len(coords), px, px)) > 0.93
    x[dots] = np.array([100, 60, 140], np.float32)
    x = np.clip(x + rng.normal(0, 4, x.shape), 0, 255).astype(np.uint8)
    region = checkerboard_regions(coords, px, block_um)
    out: dict[str, np.ndarray] = {}
    for code, part in ((0, "train"), (1, "test")):
        sel = region == code
        out[f"{part}_x"], out[f"{part}_coords"] = x[sel], coords[sel]
        out[f"{part}_slide"] = np.zeros(int(sel.sum()), np.int64)
    out["footprint0"] = np.array([[px, px]], float)
    out["block0"] = np.array([[block_um, block_um]], float)
    out["slide_ids"] = np.array(["synthetic"])
    return out


def _check_holdout(a: dict[str, np.ndarray]) -> None:
    """No pixel of a test patch lies in any training patch (from the level-0 coordinates)."""
    for k in range(len(a["slide_ids"])):
        tr = a["train_coords"][a["train_slide"] == k].astype(np.float64)
        te = a["test_coords"][a["test_slide"] == k].astype(np.float64)
        if not len(tr) or not len(te):
            continue
        fx, fy = a["footprint0"][k]
        # Two squares [x, x + f) overlap iff |dx| < f and |dy| < f.
        overlap = (np.abs(tr[:, None, 0] - te[None, :, 0]) < fx) & (np.abs(tr[:, None, 1] - te[None, :, 1]) < fy)
        if overlap.any():
            i, j = np.argwhere(overlap)[0]
            raise AssertionError(f"slide {a['slide_ids'][k]}: train patch at {tr[i]} overlaps test patch at {te[j]}")


# ------------------------------------------------------------------------------------------- workers
def _pairs(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        v = yaml.safe_load(value)
        out[key] = tuple(int(c) for c in str(v).split(",")) if key in ("g_channels", "d_channels") else v
    return out


def _preset(path: str, train_set: list[str] = (), model_set: list[str] = ()) -> tuple[Any, Any]:  # type: ignore[assignment]
    """The preset's TrainConfig and ModelConfig, with ``key=value`` overrides of either."""
    import yaml

    from pathgan.config import ModelConfig, TrainConfig, from_dict, to_dict
    from pathgan.models import get_config

    cfg = from_dict(TrainConfig, {**(yaml.safe_load(Path(path).read_text()) or {}), **_pairs(list(train_set))})
    model = {**to_dict(get_config(cfg.model)), **_pairs(list(model_set))}
    for key in ("g_channels", "d_channels"):
        model[key] = tuple(model[key])
    return cfg, from_dict(ModelConfig, model)


def _baseline_cfg(pairs: list[str]) -> Any:
    from quality_baseline import BaselineConfig

    return BaselineConfig(**_pairs(pairs))


def worker(args: argparse.Namespace) -> None:
    """Train one method for ``--minutes`` and save its sampler at every mark (runs in a subprocess)."""
    import torch

    from pathgan.train.augment import random_dihedral

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = np.load(args.data)
    x_train = torch.from_numpy(data["train_x"]).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, 64, 64]
    n = x_train.shape[0]
    seed = args.seed
    if args.worker == "pathgan":
        import tempfile

        from pathgan.train import Trainer

        cfg, model_cfg = _preset(args.preset, args.train_set, args.model_set)
        cfg = dataclasses.replace(cfg, seed=seed)
        if model_cfg.image_px > x_train.shape[-1]:
            raise SystemExit(f"preset {model_cfg.name} draws {model_cfg.image_px} px; the benchmark's patches are "
                             f"{x_train.shape[-1]} px")
        crop_px = model_cfg.image_px  # a smaller model (the old 56-px preset) trains on random crops
        trainer = Trainer(cfg, model_cfg, dataset=None, run_dir=Path(tempfile.mkdtemp()), device=torch.device("cpu"),
                          provenance={}, progress=False)
        batch_size, step = cfg.batch_size, trainer.train_step

        def snapshot() -> dict[str, Any]:
            trainer.refresh_ema_stats()  # batch-norm generators only; outside the clock like the baseline's
            return {"method": "pathgan", "ema": trainer.ema.state_dict(), "model": dataclasses.asdict(model_cfg),
                    "train": dataclasses.asdict(cfg)}
    else:
        sys.path.insert(0, str(HERE))
        from quality_baseline import BaselineGAN

        bcfg = _baseline_cfg(args.baseline)
        gan = BaselineGAN(bcfg, seed)
        batch_size, step, crop_px = bcfg.batch_size, gan.train_step, bcfg.image_px

        def snapshot() -> dict[str, Any]:
            gan.standing_stats()
            return {"method": "baseline", "g_ema": gan.g_ema.state_dict(), "config": dataclasses.asdict(bcfg)}

    marks = sorted(float(m) for m in args.marks.split(","))
    rng = torch.Generator().manual_seed(seed + 7)
    perm, pos, steps, elapsed, mark = torch.randperm(n, generator=rng), 0, 0, 0.0, 0
    log = (out / "stats.jsonl").open("w")
    while mark < len(marks):
        t0 = time.perf_counter()
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=rng), 0
        real = x_train[perm[pos : pos + batch_size]]
        if crop_px < real.shape[-1]:
            oy, ox = (int(v) for v in torch.randint(0, real.shape[-1] - crop_px + 1, (2,), generator=rng))
            real = real[:, :, oy : oy + crop_px, ox : ox + crop_px]
        real = random_dihedral(real.float() / 255.0, rng)
        pos += batch_size
        losses = step(real)
        steps += 1
        elapsed += time.perf_counter() - t0
        if steps % 50 == 0:
            log.write(json.dumps({"step": steps, "kimg": steps * batch_size / 1000, "minutes": elapsed / 60,
                                  **{k: round(float(v), 5) for k, v in losses.items()}}) + "\n")
            log.flush()
        if elapsed >= marks[mark] * 60:
            snap = snapshot()  # outside the clock: the baseline's standing statistics are a sampling cost
            snap.update(step=steps, kimg=steps * batch_size / 1000, minutes=elapsed / 60, seed=seed)
            path = out / f"snap-{marks[mark]:g}min.pt"
            torch.save(snap, path.with_suffix(".partial"))
            os.replace(path.with_suffix(".partial"), path)
            print(f"[{args.worker} seed {seed}] {marks[mark]:g} min: {steps} steps, {steps * batch_size / 1000:.1f} kimg",
                  flush=True)
            mark += 1


def train_both(args: argparse.Namespace, data: Path, seed: int) -> dict[str, Path]:
    """Start both workers together and wait for both."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    procs, outs = [], {}
    for method in ("pathgan", "baseline"):
        out = Path(args.work) / f"seed{seed}" / method
        if all((out / f"snap-{m:g}min.pt").exists() for m in _marks(args)):
            outs[method] = out
            continue
        cmd = [sys.executable, __file__, "--worker", method, "--seed", str(seed), "--data", str(data), "--out", str(out),
               "--marks", ",".join(f"{m:g}" for m in _marks(args)), "--threads", str(args.threads),
               "--preset", args.preset, *_repeat("--baseline", args.baseline), *_repeat("--train-set", args.train_set),
               *_repeat("--model-set", args.model_set)]
        procs.append(subprocess.Popen(cmd, env=env))
        outs[method] = out
    if any(p.wait() for p in procs):
        raise SystemExit("a training worker failed")
    return outs


def _repeat(flag: str, values: list[str]) -> list[str]:
    """``[flag, v1, flag, v2, ...]``: a repeatable option on a worker's command line."""
    return [x for v in values for x in (flag, v)]


def _marks(args: argparse.Namespace) -> list[float]:
    marks = {float(m) for m in args.marks.split(",") if float(m) <= args.minutes} | {float(args.minutes)}
    return sorted(marks)


# ---------------------------------------------------------------------------------------- evaluation
def _extractor(name: str) -> Any:
    from pathgan.metrics import InceptionExtractor, RandomProjectionExtractor

    return InceptionExtractor() if name == "inception" else RandomProjectionExtractor(dim=64)


def _features(ext: Any, images: Any) -> np.ndarray:
    from pathgan.metrics import extract_features

    return extract_features(ext, (images[i : i + 100] for i in range(0, len(images), 100)))


def checker_energy(images: Any) -> float:
    """Share of the grey images' spectral energy (DC removed) at max(|fx|, |fy|) >= HF_CUTOFF cycles/px."""
    import torch

    grey = images.float().mean(dim=1)
    grey = grey - grey.mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(grey).abs().square().mean(dim=0)
    fy = torch.fft.fftfreq(grey.shape[1]).abs()[:, None]
    fx = torch.fft.fftfreq(grey.shape[2]).abs()[None, :]
    return float(power[torch.maximum(fx, fy) >= HF_CUTOFF].sum() / power.sum())


def score(real_f: np.ndarray, fake_f: np.ndarray, fakes: Any, real_images: Any, *, seed: int = 0) -> dict[str, Any]:
    """Every measure of one set of fakes against the test patches, each with its spread."""
    import torch

    from pathgan.metrics import fid_from_features, kid, precision_recall

    rng = np.random.default_rng(seed)
    m = max(2, min(500, len(real_f) // 2, len(fake_f) // 2))
    kid_m, kid_s = kid(real_f, fake_f, n_subsets=100, subset_size=m, seed=seed)
    fid = fid_from_features(real_f, fake_f)
    boot = [fid_from_features(real_f, fake_f[rng.integers(0, len(fake_f), len(fake_f))]) for _ in range(10)]
    pr = []
    for _ in range(5):
        ri = rng.choice(len(real_f), min(len(real_f), max(4, len(real_f) // 2)), replace=False)
        fi = rng.choice(len(fake_f), min(len(fake_f), max(4, len(fake_f) // 2)), replace=False)
        pr.append(precision_recall(real_f[ri], fake_f[fi], k=3))
    p_full, r_full = precision_recall(real_f, fake_f, k=3)
    spreads = []
    for _ in range(5):
        idx = torch.from_numpy(rng.choice(len(fakes), max(2, len(fakes) // 2), replace=False))
        spreads.append(float(fakes[idx].float().std(dim=0).mean()))
    return {
        "kid_x1e3": kid_m * 1e3, "kid_x1e3_std": kid_s * 1e3, "kid_subset": m,
        "fid": fid, "fid_std": float(np.std(boot)),
        "precision": p_full, "precision_std": float(np.std([p for p, _ in pr])),
        "recall": r_full, "recall_std": float(np.std([r for _, r in pr])),
        "spread": float(fakes.float().std(dim=0).mean()), "spread_std": float(np.std(spreads)),
        "checker": checker_energy(fakes) / checker_energy(real_images),
        "n_fake": len(fake_f), "n_real": len(real_f),
    }


def generate(snap: dict[str, Any], n: int) -> Any:
    """``n`` samples [n, 3, 64, 64] in [0, 1] of a snapshot's EMA generator at the fixed latents."""
    import torch

    gen = torch.Generator().manual_seed(SAMPLE_SEED)
    with torch.no_grad():
        if snap["method"] == "pathgan":
            from torch import nn

            from pathgan.config import ModelConfig, from_dict
            from pathgan.models import Generator, MappingNetwork, render

            model = dict(snap["model"])
            for key in ("g_channels", "d_channels"):
                model[key] = tuple(model[key])
            mc = from_dict(ModelConfig, model)
            mods = nn.ModuleDict({"mapping": MappingNetwork.from_config(mc), "generator": Generator(mc)})
            mods.load_state_dict(snap["ema"])
            mods.eval()
            parts = []
            for s in range(0, n, 100):
                z = torch.randn(min(100, n - s), mc.z_dim, generator=gen)
                parts.append(render(mods["generator"], mods["mapping"](z), rng=gen).clamp(0, 1))
            return torch.cat(parts)
        sys.path.insert(0, str(HERE))
        from quality_baseline import BaselineConfig
        from quality_baseline import Generator as BaseG

        cfg_d = dict(snap["config"])
        for key in ("g_channels", "d_channels"):
            cfg_d[key] = tuple(cfg_d[key])
        bcfg = BaselineConfig(**cfg_d)
        g = BaseG(bcfg)
        g.load_state_dict(snap["g_ema"])
        g.eval()
        return torch.cat([g(torch.randn(min(100, n - s), bcfg.z_dim, generator=gen)).clamp(0, 1)
                          for s in range(0, n, 100)])


def score_model(args: argparse.Namespace) -> int:
    """Score one finished model (run or export) against the test squares; see the module docstring."""
    import torch

    from pathgan.export import open_model
    from pathgan.models import render

    bundle = open_model(args.score_model, with_encoder=False)
    block = float(bundle.train.get("holdout_block_um") or 0.0)
    if block != args.block_um:
        sys.exit(f"{args.score_model}: trained with holdout_block_um={block:g}, but the test squares here are "
                 f"--block-um {args.block_um:g}; its training patches could overlap them, so the score would mean "
                 "nothing. Train with --set holdout_block_um=" f"{args.block_um:g} or pass its --block-um.")
    data = np.load(prepare(args.work, block_um=args.block_um, synthetic=args.synthetic))
    nets = bundle.build("cpu")
    gen = torch.Generator().manual_seed(SAMPLE_SEED)
    with torch.no_grad():
        fakes = torch.cat([render(nets.generator, nets.mapping(torch.randn(min(100, args.n_fake - s), bundle.z_dim,
                                                                           generator=gen)), rng=gen).clamp(0, 1).float()
                           for s in range(0, args.n_fake, 100)])
    ext = _extractor(args.extractor)
    cache = args.work / f"features-{args.extractor}"
    cache.mkdir(exist_ok=True)
    test, real_f = test_set(data, ext, cache, fakes.shape[-1])
    scores = score(real_f, _features(ext, fakes), fakes, test)
    name = Path(args.score_model).resolve().name
    out = {"model": str(args.score_model), "model_id": bundle.model_id, "checkpoint": bundle.checkpoint,
           "step": bundle.step, "dtype": bundle.dtype, "extractor": args.extractor, "block_um": args.block_um,
           "n_test": len(test), "n_train_squares": len(data["train_x"]), "sample_seed": SAMPLE_SEED, "scores": scores}
    (args.work / f"model-{name}.json").write_text(json.dumps(out, indent=1))
    draw({}, [("real, test squares", test[torch.from_numpy(np.random.default_rng(1).permutation(len(test)))]),
              (f"{name}", fakes)], args.work, name=f"model-{name}.png", curve=False)
    print(json.dumps(out | {"scores": {k: round(v, 3) if isinstance(v, float) else v for k, v in scores.items()}}))
    print(f"wrote {args.work / f'model-{name}.json'} and model-{name}.png")
    return 0


def test_set(data: Any, ext: Any, cache: Path, px: int) -> tuple[Any, np.ndarray]:
    """The test-square patches as floats [N, 3, px, px] (centre crops when px < 64) and their features."""
    import torch

    test = torch.from_numpy(data["test_x"]).permute(0, 3, 1, 2).float() / 255.0
    name = "test_features.npy"
    if px < test.shape[-1]:
        o = (test.shape[-1] - px) // 2
        test, name = test[:, :, o : o + px, o : o + px], f"test_features_{px}px.npy"
    return test, _cached(cache / name, lambda: _features(ext, test))


def evaluate_snapshot(path: Path, data: Any, ext: Any, cache: Path, n: int, seed: int) -> tuple[dict[str, Any], Any]:
    """(run record with scores, the fakes) of one saved snapshot, scored against the test squares."""
    import torch

    snap = torch.load(path, weights_only=False)
    fakes = generate(snap, n)
    test, real_f = test_set(data, ext, cache, fakes.shape[-1])
    run = {"steps": snap["step"], "kimg": snap["kimg"], "minutes_trained": snap["minutes"],
           "scores": score(real_f, _features(ext, fakes), fakes, test, seed=seed)}
    return run, fakes


def references(data: Any, ext: Any, real_f: np.ndarray, test: Any, cache: Path) -> dict[str, Any]:
    """Real train squares, blurred train squares and a random half of the test patches vs the test patches."""
    import torch
    import torch.nn.functional as F

    train = torch.from_numpy(data["train_x"]).permute(0, 3, 1, 2).float() / 255.0
    feats = _cached(cache / "train_features.npy", lambda: _features(ext, train))
    k = torch.arange(-3, 4, dtype=torch.float32)
    g1 = torch.exp(-(k**2) / 2.0)
    g1 = g1 / g1.sum()
    blurred = F.conv2d(F.pad(train, (3, 3, 3, 3), mode="reflect"), (g1[:, None] * g1[None, :]).expand(3, 1, 7, 7),
                       groups=3)
    feats_blur = _cached(cache / "train_blur_features.npy", lambda: _features(ext, blurred))
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(real_f))
    half_a, half_b = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    return {
        "real train squares": score(real_f, feats, train, test),
        "real, Gaussian blur sigma 1 px": score(real_f, feats_blur, blurred, test),
        "real vs real (random halves of the test squares)": score(real_f[half_a], real_f[half_b], test[half_b],
                                                                 test[half_a]),
    }


def _cached(path: Path, make: Any) -> np.ndarray:
    if path.exists():
        return np.load(path)
    arr = make()
    np.save(path, arr)
    return arr


# -------------------------------------------------------------------------------------------- report
def _fmt(r: dict[str, Any], key: str, digits: int = 1) -> str:
    return f"{r[key]:.{digits}f} +- {r[key + '_std']:.{digits}f}" if key + "_std" in r else f"{r[key]:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    rows = ["| method | minutes | steps (kimg) | KID x1e3 | FID | precision / recall (k = 3) | per-pixel spread "
            f"(real {results['real_spread']:.3f}) | checkerboard (real = 1) |",
            "|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        r = run["scores"]
        rows.append(f"| {run['method']} (seed {run['seed']}) | {run['minutes']:g} | {run['steps']:,} ({run['kimg']:.0f}) | "
                    f"{_fmt(r, 'kid_x1e3')} | {_fmt(r, 'fid', 0)} | {_fmt(r, 'precision', 2)} / {_fmt(r, 'recall', 2)} | "
                    f"{_fmt(r, 'spread', 3)} | {r['checker']:.2f} |")
    for name, r in results["references"].items():
        rows.append(f"| {name} | | | {_fmt(r, 'kid_x1e3')} | {_fmt(r, 'fid', 0)} | {_fmt(r, 'precision', 2)} / "
                    f"{_fmt(r, 'recall', 2)} | {_fmt(r, 'spread', 3)} | {r['checker']:.2f} |")
    return "\n".join(rows) + "\n"


def draw(results: dict[str, Any], panels: list[tuple[str, Any]], work: Path, *, name: str = "grid.png",
         curve: bool = True) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(panels)
    fig, axes = plt.subplots(1, cols, figsize=(3.1 * cols, 3.5), dpi=110)
    for ax, (title, images) in zip(np.atleast_1d(axes), panels, strict=True):
        grid = images[:36].permute(0, 2, 3, 1).numpy()
        px = grid.shape[1]
        g = np.ones((6 * (px + 2), 6 * (px + 2), 3))
        for i, im in enumerate(grid):
            r, c = divmod(i, 6)
            g[r * (px + 2) : r * (px + 2) + px, c * (px + 2) : c * (px + 2) + px] = im
        ax.imshow(g, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(work / name)
    plt.close(fig)
    if curve:
        draw_curve(results, work)


def draw_curve(results: dict[str, Any], work: Path) -> None:
    """KID x1e3 against training minutes, one line per method and seed, references as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=110)
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    for method in methods:
        runs = [r for r in results["runs"] if r["method"] == method]
        for seed in sorted({r["seed"] for r in runs}):
            pts = sorted((r["minutes"], r["scores"]["kid_x1e3"], r["scores"]["kid_x1e3_std"]) for r in runs if r["seed"] == seed)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts],
                        fmt="s--" if method == BASELINE else "o-", ms=4, capsize=2, label=f"{method} (seed {seed})")
    right = max([r["minutes"] for r in results["runs"]] + [1.0]) * 1.05
    ax.set_xlim(0, right)
    for name, r in results["references"].items():
        ax.axhline(r["kid_x1e3"], lw=0.8, ls=":", color="grey")
        ax.text(right, r["kid_x1e3"], name.split(" (")[0] + " ", fontsize=6, va="bottom", ha="right", color="grey")
    ax.set_xlabel("training minutes (wall clock, one thread each)")
    ax.set_ylabel("KID x1e3 vs held-out squares")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=-1.5)
    ax.legend(fontsize=7, frameon=False, loc="center right")
    fig.tight_layout()
    fig.savefig(work / "kid_curve.png")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget per method (wall clock)")
    ap.add_argument("--marks", default="5,20,60", help="minutes at which both methods are sampled (<= --minutes)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; each repeats the whole comparison")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per method (both run at once)")
    ap.add_argument("--preset", default=str(REPO / "pathgan" / "presets" / "train" / "pathologygan-64-cpu.yaml"))
    ap.add_argument("--baseline", action="append", default=[], metavar="KEY=VALUE",
                    help="override a BaselineConfig field (quality_baseline.py); repeatable")
    ap.add_argument("--n-fake", type=int, default=1000, help="generated samples per evaluation (>= 1000 for KID)")
    ap.add_argument("--block-um", type=float, default=384.0, help="side of the checkerboard squares (microns)")
    ap.add_argument("--extractor", choices=("inception", "random"), default="inception")
    ap.add_argument("--work", type=Path, default=REPO / ".bench" / "quality")
    ap.add_argument("--synthetic", action="store_true", help="generated textures instead of the slides (tests)")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a TrainConfig field of the preset; repeatable")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a ModelConfig field of the preset's model; repeatable")
    ap.add_argument("--replot", action="store_true",
                    help="redraw kid_curve.png and results.md from --work/results.json (no training or scoring)")
    ap.add_argument("--score-model", metavar="PATH", help="score a finished run or exported model; trains nothing")
    ap.add_argument("--worker", choices=("pathgan", "baseline"), help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    if args.worker:
        worker(args)
        return 0
    if args.score_model:
        return score_model(args)
    if args.replot:
        results = json.loads((args.work / "results.json").read_text())
        draw_curve(results, args.work)
        (args.work / "results.md").write_text(table(results))
        print(table(results))
        return 0
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = args.work
    t_start = time.time()
    data_path = prepare(work, block_um=args.block_um, synthetic=args.synthetic)
    data = np.load(data_path)
    print(f"data: {len(data['train_x'])} train-square and {len(data['test_x'])} test-square patches", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    outs = {seed: train_both(args, data_path, seed) for seed in seeds}
    ext = _extractor(args.extractor)
    cache = work / f"features-{args.extractor}"
    cache.mkdir(exist_ok=True)
    test, real_f = test_set(data, ext, cache, data["test_x"].shape[1])
    results: dict[str, Any] = {"runs": [], "real_spread": float(test.std(dim=0).mean()), "n_test": len(test),
                               "n_train": len(data["train_x"]), "block_um": args.block_um, "minutes": args.minutes,
                               "threads": args.threads, "extractor": args.extractor, "synthetic": args.synthetic,
                               "preset": args.preset, "baseline": args.baseline,
                               "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(),
                                           "python": platform.python_version(), "torch": torch.__version__}}
    last: dict[str, Any] = {}
    for seed, methods in outs.items():
        for method, out in methods.items():
            for m in _marks(args):
                name = Path(args.preset).stem if method == "pathgan" else BASELINE
                run, fakes = evaluate_snapshot(out / f"snap-{m:g}min.pt", data, ext, cache, args.n_fake, seed)
                run = {"method": name, "seed": seed, "minutes": m, **run}
                results["runs"].append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "scores"} | {
                    k: round(v, 3) for k, v in run["scores"].items() if isinstance(v, float)}), flush=True)
                if seed == seeds[0]:
                    last[name] = fakes
    results["references"] = references(data, ext, real_f, test, cache)
    results["wall_minutes"] = (time.time() - t_start) / 60
    (work / "results.json").write_text(json.dumps(results, indent=1))
    (work / "results.md").write_text(table(results))
    train = torch.from_numpy(data["train_x"]).permute(0, 3, 1, 2).float() / 255.0
    gen = np.random.default_rng(1)
    panels = [("real, test squares", test[torch.from_numpy(gen.permutation(len(test)))]),
              ("real, train squares", train[torch.from_numpy(gen.permutation(len(train)))])]
    panels += [(f"{name} @ {_marks(args)[-1]:g} min", fakes) for name, fakes in last.items()]
    draw(results, panels, work)
    print(table(results))
    print(f"wrote {work / 'results.json'}, results.md, grid.png, kid_curve.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
