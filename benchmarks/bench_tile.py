"""Throughput and memory of ``pathgan tile`` against a CLAM-style pipeline and the decode limit.

All three process the same patches (the ones pathgan keeps) from the same gigapixel Aperio-like
slides, mosaicked from the real tissue in ../shared/data by ``make_slide.py``, in one run:

  (a) pathgan tile, LocalCluster of 2 single-threaded worker processes, JPEG q90 store
  (b) CLAM-style: per-patch openslide read_region at level 0 + PIL resize + h5, 2 processes
  (c) decode limit: every overlapped level-0 JPEG tile decoded once, nothing written, 2 processes

Each method runs --repeat times (default 3), interleaved, after the kernel has written back what the
previous one wrote; the run with the median throughput is reported (all throughputs are in the JSON).

Usage:  python benchmarks/bench_tile.py [--sizes 32768 65536] [--workers 2] [--repeat 3] [--out .bench/results]
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


def ensure_slide(bench: Path, size: int) -> Path:
    path = bench / f"bench_{size}.svs"
    if not path.exists():
        print(f"building {path} ({size} x {size * 3 // 4}) ...", flush=True)
        make_slide.build(str(path), size, size * 3 // 4, 0.25, 80, 0)
    return path


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


def run_cli(slide: Path, out: Path, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pathgan.cli", "tile", str(slide), "--out", str(out), "--workers",
                    str(workers), "--no-progress"], check=True, capture_output=True)
    return time.perf_counter() - t0


def _median_run(runs: list[dict]) -> dict:
    """The run with the median throughput, with every run's throughput and the peak RSS over all."""
    ordered = sorted(runs, key=lambda r: r["patches_per_s"])
    pick = dict(ordered[len(ordered) // 2])
    pick["patches_per_s_runs"] = [r["patches_per_s"] for r in runs]
    if "peak_rss_mb_per_worker" in pick:
        pick["peak_rss_mb_per_worker"] = [max(r["peak_rss_mb_per_worker"][i] for r in runs)
                                          for i in range(len(pick["peak_rss_mb_per_worker"]))]
    return pick


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32768, 65536], help="slide widths (height = 3/4)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs of each method, interleaved (a, b, c, c, a, b, ...); the median is reported")
    ap.add_argument("--bench-dir", type=Path, default=Path(".bench"))
    ap.add_argument("--out", type=Path, default=Path(".bench/results"))
    args = ap.parse_args()
    args.bench_dir.mkdir(exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        slide = ensure_slide(args.bench_dir, size)
        runs: dict[str, list[dict]] = {"a": [], "b": [], "c1": [], "c2": []}
        coords = None
        for _ in range(max(1, args.repeat)):
            settle()
            a = run_pathgan(slide, args.out / f"stores_{size}", args.workers)
            coords = a.pop("coords")
            runs["a"].append(a)
            settle()
            runs["b"].append(baselines.clam_style(str(slide), coords, 512, 256, args.workers,
                                                  str(args.out / f"clam_{size}.h5")))
            settle()
            runs["c1"].append(baselines.decode_limit(str(slide), coords, 512, args.workers, scale=1))
            settle()
            runs["c2"].append(baselines.decode_limit(str(slide), coords, 512, args.workers, scale=2))
        assert coords is not None
        a, b, c1, c2 = (_median_run(runs[k]) for k in ("a", "b", "c1", "c2"))
        n_tiles = len(baselines.needed_tiles(coords, 512, baselines.level0_tile_info(str(slide))))
        settle()
        cli = run_cli(slide, args.out / f"cli_{size}", args.workers)
        row = {"slide": f"{size}x{size * 3 // 4}", "n_patches": a["n_patches"], "unique_tiles": n_tiles,
               "pathgan": a, "clam_style": b, "decode_full": c1, "decode_half": c2, "cli_wall_s": round(cli, 1)}
        row["ratio_vs_decode_full"] = round(a["patches_per_s"] / c1["patches_per_s"], 2)
        row["ratio_vs_clam"] = round(a["patches_per_s"] / b["patches_per_s"], 2)
        results.append(row)
        print(json.dumps(row, indent=1, default=str), flush=True)
    if len(args.sizes) > 1:
        # A batch: later slides are planned while earlier ones are cut, as in real cohorts.
        slides = [ensure_slide(args.bench_dir, size) for size in args.sizes]
        batch_runs = []
        for _ in range(max(1, args.repeat)):
            settle()
            a = run_pathgan(slides, args.out / "stores_batch", args.workers)
            a.pop("coords")
            batch_runs.append(a)
        a = _median_run(batch_runs)
        per = [r for r in results]
        c_time = sum(r["n_patches"] / r["decode_full"]["patches_per_s"] for r in per)
        b_time = sum(r["n_patches"] / r["clam_style"]["patches_per_s"] for r in per)
        n = sum(r["n_patches"] for r in per)
        row = {"slide": "batch of all above", "n_patches": a["n_patches"], "pathgan": a,
               "clam_style": {"patches_per_s": round(n / b_time, 1)},
               "decode_full": {"patches_per_s": round(n / c_time, 1)}, "decode_half": {"patches_per_s": "-"},
               "cli_wall_s": "-"}
        row["ratio_vs_decode_full"] = round(a["patches_per_s"] / row["decode_full"]["patches_per_s"], 2)
        row["ratio_vs_clam"] = round(a["patches_per_s"] / row["clam_style"]["patches_per_s"], 2)
        results.append(row)
    (args.out / "bench_tile.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n| slide | patches | (a) pathgan tile p/s | (b) CLAM-style p/s | (c) decode full p/s | (c) decode 1/2 p/s "
          "| (a)/(c full) | (a)/(b) | peak RSS/worker (a) | end-to-end CLI s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['slide']} | {r['n_patches']} | {r['pathgan']['patches_per_s']} | {r['clam_style']['patches_per_s']} "
              f"| {r['decode_full']['patches_per_s']} | {r['decode_half']['patches_per_s']} | {r['ratio_vs_decode_full']} "
              f"| {r['ratio_vs_clam']} | {max(r['pathgan']['peak_rss_mb_per_worker'])} MB | {r['cli_wall_s']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
