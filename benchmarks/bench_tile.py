"""Throughput and memory of ``pathgan tile`` against a CLAM-style pipeline and the decode limit.

All methods process the same patches (the ones pathgan keeps) from the same gigapixel Aperio-like
slides, mosaicked from the real tissue in ../shared/data by ``make_slide.py``, in one run:

  (a) pathgan tile, LocalCluster of 2 single-threaded worker processes, JPEG q90 store: timed in
      process (cluster up, imports done) and end to end (the ``pathgan tile`` CLI, process start,
      imports and cluster start included)
  (b) CLAM-style: per-patch openslide read_region at level 0 + PIL resize + h5, 2 processes
  (c) decode limit: every overlapped level-0 JPEG tile decoded once, nothing written, 2 processes,
      by each decoder of ``baselines.DECODERS``: full size (imagecodecs) and 1/2 scale in the DCT
      domain (simplejpeg, OpenCV, Pillow ``draft``). pathgan decodes at 1/2 scale, so its limit is
      the fastest 1/2-scale decoder; the decoders' pixels are checked against openslide.

Equal work is counted both ways: patches per second (the same coordinates for every method) and
level-0 tiles decoded per second (pathgan's own count, ``tiles_decoded``, against the limit's).
``--batch N`` also tiles N slides of the largest size (different seeds) as one batch, and measures
every method on that batch in one timed call. Each method runs --repeat times, interleaved, after
the kernel has written back what the previous one wrote; the run with the median throughput is
reported (all runs are in the JSON). The page cache is warm: every slide is read once before timing.

Usage:  python benchmarks/bench_tile.py [--sizes 65536] [--batch 4] [--workers 2] [--repeat 3] [--out .bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baselines  # noqa: E402
import make_slide  # noqa: E402


def settle() -> None:
    """Flush dirty pages before a timed run, so that the kernel writing back what the previous
    method wrote (the CLAM-style h5 files are 160-600 MB) does not run during the next one."""
    os.sync()


def _worker_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ensure_slide(bench: Path, size: int, seed: int = 0) -> Path:
    path = bench / (f"bench_{size}.svs" if seed == 0 else f"bench_{size}_s{seed}.svs")
    if not path.exists():
        print(f"building {path} ({size} x {size * 3 // 4}) ...", flush=True)
        make_slide.build(str(path), size, size * 3 // 4, 0.25, 80, seed)
    return path


def warm(paths: list[Path]) -> None:
    """Read every slide once, so that all methods find it in the page cache."""
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def run_pathgan(slide: Path | list[Path], out: Path, workers: int) -> dict:
    from pathgan.config import TileConfig
    from pathgan.manifest import SlideEntry
    from pathgan.parallel import dask_client
    from pathgan.stages import tile_slides
    from pathgan.store import PatchStore

    slides = slide if isinstance(slide, list) else [slide]
    shutil.rmtree(out, ignore_errors=True)
    cfg = TileConfig()
    with dask_client(n_workers=workers, dashboard=False, memory_limit="2GiB") as client:
        client.run(lambda: __import__("pathgan.stages._tile_tasks"))  # imports are start-up, not tiling
        t0 = time.perf_counter()
        entries = [SlideEntry(slide_id=s.stem, path=s) for s in slides]
        rows = tile_slides(entries, out, cfg, client=client, progress=False)
        wall = time.perf_counter() - t0
        rss = sorted(client.run(_worker_peak_rss_mb).values())
    assert all(r.status == "done" for r in rows), rows
    stores = [PatchStore(out / f"{s.stem}.zarr") for s in slides]
    n = sum(len(st) for st in stores)
    size_mb = sum(f.stat().st_size for f in out.rglob("*.zarr/**/*") if f.is_file()) / 2**20
    return {"method": "pathgan_tile", "n_patches": n, "wall_s": round(wall, 2), "patches_per_s": round(n / wall, 1),
            "peak_rss_mb_per_worker": [round(r) for r in rss], "store_mb": round(size_mb, 1),
            "decode_scale": stores[0].attrs["decode_scale"], "tiles_decoded": sum(st.attrs["tiles_decoded"] for st in stores),
            "coords": stores[0].coords}


def run_cli(slides: list[Path], out: Path, workers: int, n_patches: int) -> dict:
    """``pathgan tile`` end to end: process start, imports, cluster start and shutdown included."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pathgan.cli", "tile", *map(str, slides), "--out", str(out), "--workers",
                    str(workers), "--no-progress"], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    return {"method": "pathgan_cli", "wall_s": round(wall, 2), "patches_per_s": round(n_patches / wall, 1)}


def clam_batch(slides: list[Path], coord_sets: list, out: Path, workers: int) -> dict:
    """The CLAM-style pipeline over a batch: slide after slide (as CLAM's script runs), one timing."""
    t0 = time.perf_counter()
    n = 0
    for slide, coords in zip(slides, coord_sets, strict=True):
        r = baselines.clam_style(str(slide), coords, 512, 256, workers, str(out / f"clam_{slide.stem}.h5"))
        n += r["n_patches"] if "n_patches" in r else len(coords)
    wall = time.perf_counter() - t0
    return {"method": "clam_style_batch", "n_patches": n, "wall_s": round(wall, 2), "patches_per_s": round(n / wall, 1)}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median throughput, with every run's throughput and the peak RSS over all."""
    ordered = sorted(runs, key=lambda r: r["patches_per_s"])
    pick = dict(ordered[len(ordered) // 2])
    pick["patches_per_s_runs"] = [r["patches_per_s"] for r in runs]
    if "peak_rss_mb_per_worker" in pick:
        pick["peak_rss_mb_per_worker"] = [max(r["peak_rss_mb_per_worker"][i] for r in runs)
                                          for i in range(len(pick["peak_rss_mb_per_worker"]))]
    return pick


def measure(name: str, slides: list[Path], out_dir: Path, workers: int, repeat: int) -> dict:
    """Every method on ``slides`` (one slide, or a batch), interleaved ``repeat`` times."""
    decoders = [d for d in baselines.DECODERS if baselines.decoder_available(d)]
    runs: dict[str, list[dict]] = {k: [] for k in ("a", "cli", "b", *decoders)}
    coord_sets = None
    for _ in range(max(1, repeat)):
        settle()
        a = run_pathgan(slides if len(slides) > 1 else slides[0], out_dir / f"stores_{name}", workers)
        a.pop("coords")
        runs["a"].append(a)
        if coord_sets is None:
            from pathgan.store import PatchStore

            coord_sets = [PatchStore(out_dir / f"stores_{name}" / f"{s.stem}.zarr").coords for s in slides]
        settle()
        runs["cli"].append(run_cli(slides, out_dir / f"cli_{name}", workers, a["n_patches"]))
        settle()
        runs["b"].append(clam_batch(slides, coord_sets, out_dir, workers))
        for d in decoders:
            settle()
            runs[d].append(baselines.decode_limit([str(s) for s in slides], coord_sets, 512, workers, decoder=d))
    med = {k: _median_run(v) for k, v in runs.items()}
    a = med["a"]
    same_scale = [d for d in decoders if baselines.DECODERS[d] == a["decode_scale"]]
    limit = max(same_scale, key=lambda d: med[d]["tiles_per_s"])
    lim = med[limit]
    # Equal work in tiles: the tiles the patches need (the limit's unique count), whatever pathgan
    # decoded (its own count, which can be higher at shard edges, is reported beside it).
    a["tiles_per_s"] = round(lim["n_tiles"] / a["wall_s"], 1)
    med["cli"]["tiles_per_s"] = round(lim["n_tiles"] / med["cli"]["wall_s"], 1)
    row = {"slide": name, "n_slides": len(slides), "n_patches": a["n_patches"], "tiles_decoded": a["tiles_decoded"],
           "limit_tiles": lim["n_tiles"], "pathgan": a, "cli": med["cli"], "clam_style": med["b"],
           "limits": {d: med[d] for d in decoders}, "same_scale_limit": limit,
           "ratio_in_process": round(a["tiles_per_s"] / lim["tiles_per_s"], 2),
           "ratio_end_to_end": round(med["cli"]["tiles_per_s"] / lim["tiles_per_s"], 2),
           "ratio_vs_clam": round(a["patches_per_s"] / med["b"]["patches_per_s"], 2),
           "ratio_vs_clam_end_to_end": round(med["cli"]["patches_per_s"] / med["b"]["patches_per_s"], 2)}
    print(json.dumps(row, indent=1, default=str), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32768, 65536], help="slide widths (height = 3/4)")
    ap.add_argument("--batch", type=int, default=4, help="slides of the largest size tiled as one batch (0: none)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs of each method, interleaved (a, cli, b, c..., a, ...); the median is reported")
    ap.add_argument("--bench-dir", type=Path, default=Path(".bench"))
    ap.add_argument("--out", type=Path, default=Path(".bench/results"))
    args = ap.parse_args()
    args.bench_dir.mkdir(exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    slides = {size: ensure_slide(args.bench_dir, size) for size in args.sizes}
    batch = [ensure_slide(args.bench_dir, max(args.sizes), seed) for seed in range(args.batch)]
    warm([*slides.values(), *batch])
    results: dict[str, object] = {"machine": {"cpu_count": os.cpu_count()}, "workers": args.workers,
                                  "repeat": args.repeat, "page_cache": "warm (every slide read once before timing)"}
    from pathgan.store import PatchStore

    rows = [measure(f"{size}x{size * 3 // 4}", [slide], args.out, args.workers, args.repeat)
            for size, slide in slides.items()]
    # The decoders' pixels against openslide, on tiles under the patches pathgan kept (its store from above).
    size = max(args.sizes)
    first = slides[size]
    coords = PatchStore(args.out / f"stores_{size}x{size * 3 // 4}" / f"{first.stem}.zarr").coords
    results["verify_decoders"] = baselines.verify_decoders(str(first), coords, 512)
    print(json.dumps({"verify_decoders": results["verify_decoders"]}), flush=True)
    if args.batch:
        rows.append(measure(f"batch of {args.batch} x {max(args.sizes)}", batch, args.out, args.workers, args.repeat))
    results["rows"] = rows
    (args.out / "bench_tile.json").write_text(json.dumps(results, indent=1, default=str))
    print(table(rows))
    return 0


def table(rows: list[dict]) -> str:
    """The README table: equal work per second (tiles and patches), in process and end to end."""
    out = ["| slide | patches | tiles decoded (pathgan / needed) | pathgan tiles/s in-process / end-to-end "
           "| same-scale limit tiles/s (decoder) | full-size limit tiles/s | ratio in-process / end-to-end "
           "| pathgan p/s | CLAM-style p/s | vs CLAM in-process / end-to-end | peak RSS/worker |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, lim = r["pathgan"], r["limits"][r["same_scale_limit"]]
        full = r["limits"].get("full-imagecodecs", {}).get("tiles_per_s", "-")
        out.append(f"| {r['slide']} | {r['n_patches']} | {r['tiles_decoded']} / {r['limit_tiles']} "
                   f"| {a['tiles_per_s']} / {r['cli']['tiles_per_s']} | {lim['tiles_per_s']} ({r['same_scale_limit']}) "
                   f"| {full} | **{r['ratio_in_process']}** / **{r['ratio_end_to_end']}** | {a['patches_per_s']} "
                   f"| {r['clam_style']['patches_per_s']} | {r['ratio_vs_clam']} / {r['ratio_vs_clam_end_to_end']} "
                   f"| {max(a['peak_rss_mb_per_worker'])} MB |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
