"""Stain-normalisation throughput: pathgan.stain against torchstain and staintools, in one run.

Every method normalises the same 256x256 crops of the real H&E images in ../shared/data/images to
the same target (``torchstain_target.png``, fitted once per method, untimed). A method's time is
the wall time of normalising all crops, one warm-up crop excluded; images/s = crops / time.
Failures (staintools' Macenko asserts "Negative optical density" on valid H&E after its brightness
standardiser, its issue #33) are counted, not fatal, and their time is included.

  pathgan   numpy, one crop at a time; torch, all crops as one batch (CPU; also CUDA when present)
  torchstain 1.4.1  numpy backend (Macenko, Reinhard) and torch backend (Macenko), one crop at a time
  staintools 2.1.2  LuminosityStandardizer then StainNormalizer / ReinhardColorNormalizer, as its README

staintools is not a project dependency: ``make bench-stain`` builds ``.venv-stainbench`` with it and
runs this file single-threaded (OMP/MKL/OpenBLAS threads = 1, torch.set_num_threads(1)). Without
staintools or torchstain their rows say "not installed".

Usage:  python benchmarks/bench_stain.py [--crop 256] [--max-crops 64] [--out out/bench/stain.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.array(Image.alpha_composite(white, rgba).convert("RGB"))


def crops(images_dir: Path, size: int, limit: int) -> list[np.ndarray]:
    """``size`` crops of every image on a grid of stride ``size // 2`` from the top-left, in name order."""
    out = []
    for path in sorted(images_dir.glob("*")):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            continue
        img = load_rgb(path)
        for y in range(0, img.shape[0] - size + 1, size // 2):
            for x in range(0, img.shape[1] - size + 1, size // 2):
                out.append(np.ascontiguousarray(img[y : y + size, x : x + size]))
    return out[:: max(1, -(-len(out) // limit))]  # an even spread over all images, at most ``limit``


def timed(fn: Callable[[np.ndarray], Any], items: list[np.ndarray]) -> dict[str, Any]:
    """Run ``fn`` on every item (after one untimed warm-up); count exceptions by message."""
    with contextlib.suppress(Exception):
        fn(items[0].copy())
    failures: dict[str, int] = {}
    t0 = time.perf_counter()
    for item in items:
        try:
            fn(item.copy())  # staintools writes into its input
        except Exception as err:
            key = f"{type(err).__name__}: {err}"[:80]
            failures[key] = failures.get(key, 0) + 1
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images": len(items), "failed": sum(failures.values()), "failures": failures}


def timed_batch(fn: Callable[[], Any], n: int, sync: Callable[[], None] = lambda: None) -> dict[str, Any]:
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return {"seconds": time.perf_counter() - t0, "images": n, "failed": 0, "failures": {}}


def bench_pathgan(items: list[np.ndarray], target: np.ndarray) -> list[dict[str, Any]]:
    import torch

    from pathgan.stain import Macenko, Reinhard, Vahadane

    rows = []
    batch = torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).contiguous()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for cls in (Macenko, Vahadane, Reinhard):
        normaliser = cls().fit(target)
        rows.append({"library": "pathgan", "method": cls.method, "backend": "numpy",
                     **timed(normaliser.transform, items)})
        for device in devices:
            x = batch.to(device)
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            rows.append({"library": "pathgan", "method": cls.method, "backend": f"torch {device} (one batch)",
                         **timed_batch(lambda x=x, n=normaliser: n.transform(x), len(items), sync)})
    return rows


def bench_torchstain(items: list[np.ndarray], target: np.ndarray) -> list[dict[str, Any]]:
    try:
        import torch
        import torchstain
    except ImportError:
        return [{"library": "torchstain", "method": m, "backend": "-", "missing": True} for m in ("macenko", "reinhard")]
    rows = []
    mac = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
    mac.fit(target)
    rows.append({"library": "torchstain", "method": "macenko", "backend": "numpy",
                 **timed(lambda im: mac.normalize(I=im, stains=False), items)})
    mac_t = torchstain.normalizers.MacenkoNormalizer(backend="torch")
    mac_t.fit(torch.from_numpy(target).permute(2, 0, 1).contiguous())
    rows.append({"library": "torchstain", "method": "macenko", "backend": "torch cpu (per image)",
                 **timed(lambda im: mac_t.normalize(I=torch.from_numpy(im).permute(2, 0, 1), stains=False), items)})
    rein = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
    rein.fit(target)
    rows.append({"library": "torchstain", "method": "reinhard", "backend": "numpy", **timed(rein.normalize, items)})
    return rows


def bench_staintools(items: list[np.ndarray], target: np.ndarray) -> list[dict[str, Any]]:
    try:
        import staintools
    except ImportError:
        return [{"library": "staintools", "method": m, "backend": "-", "missing": True}
                for m in ("macenko", "vahadane", "reinhard")]
    standardize = staintools.LuminosityStandardizer.standardize
    rows = []
    for method in ("macenko", "vahadane"):
        normaliser = staintools.StainNormalizer(method=method)
        normaliser.fit(standardize(target.copy()))
        rows.append({"library": "staintools", "method": method, "backend": "numpy+spams",
                     **timed(lambda im, n=normaliser: n.transform(standardize(im)), items)})
    rein = staintools.ReinhardColorNormalizer()
    rein.fit(standardize(target.copy()))
    rows.append({"library": "staintools", "method": "reinhard", "backend": "numpy+opencv",
                 **timed(lambda im: rein.transform(standardize(im)), items)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base = {r["method"]: r["images"] / r["seconds"] for r in rows
            if r["library"] == "staintools" and not r.get("missing") and r["seconds"] > 0}
    lines = ["| method | library | backend | images/s | ms/image | vs staintools | failed |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['method']} | {r['library']} | not installed | - | - | - | - |")
            continue
        rate = r["images"] / r["seconds"]
        ratio = f"{rate / base[r['method']]:.1f}x" if r["method"] in base else "-"
        lines.append(f"| {r['method']} | {r['library']} | {r['backend']} | {rate:.1f} | {1000 / rate:.2f} | "
                     f"{ratio} | {r['failed']}/{r['images']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--max-crops", type=int, default=64)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "stain.json")
    args = parser.parse_args()
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")  # staintools and skimage warn per image
    images_dir = DATA / "images"
    if not images_dir.is_dir():
        sys.exit(f"no images at {images_dir} (set PATHGAN_DATA)")
    items = crops(images_dir, args.crop, args.max_crops)
    target = load_rgb(images_dir / "torchstain_target.png")
    print(f"{len(items)} crops of {args.crop}x{args.crop} from {images_dir}; target torchstain_target.png "
          f"{target.shape[1]}x{target.shape[0]}; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    rows = bench_pathgan(items, target) + bench_torchstain(items, target) + bench_staintools(items, target)
    order = {"macenko": 0, "vahadane": 1, "reinhard": 2}
    rows.sort(key=lambda r: (order[r["method"]], r["library"] != "pathgan", r["library"]))
    print(table(rows))
    for r in rows:
        for message, count in r.get("failures", {}).items():
            print(f"  {r['library']} {r['method']}: {count} x {message}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"crops": len(items), "crop_px": args.crop, "target": "torchstain_target.png",
            "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
