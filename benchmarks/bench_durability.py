"""What durable writes cost: ``pathgan tile`` before and after fsync was added, on the same slide.

Every store is now fsynced file by file before the rename that marks it complete, and every
atomic file write fsyncs the file and its directory (README "Design": crashes, power cuts). This
runs ``pathgan tile`` end to end (CLI, 2 workers, JPEG q90, the tiling benchmark's settings) from
two checkouts, interleaved: this tree and a baseline tree at the commit before fsync (a
``git worktree``), ``--repeat`` times each on the same gigapixel slide (``bench_tile.py``'s
65536 x 49152 mosaic of the real tissue), after ``os.sync()`` so that one run's write-back does not
land in the next. The stores of both are checked to be byte-identical except for the attributes
that say which code wrote them.

Usage:  git worktree add /tmp/base 56833e1
        python benchmarks/bench_durability.py --baseline-tree /tmp/base [--size 65536] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


def run_tile(tree: Path, slide: Path, out: Path, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "pathgan.cli", "tile", str(slide), "--out", str(out), "--workers", str(workers),
           "--mpp", "0.5", "--patch-px", "256", "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - t0


def same_patches(a: Path, b: Path) -> bool:
    """Every chunk file of every array equal (zarr.json of the root differs only by the version)."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "zarr.json")
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "zarr.json") and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, required=True, help="checkout of the commit before fsync")
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bench-dir", type=Path, default=REPO / ".bench")
    args = ap.parse_args()
    from bench_tile import ensure_slide

    args.bench_dir.mkdir(exist_ok=True)
    slide = ensure_slide(args.bench_dir, args.size)
    work = args.bench_dir / "durability"
    times: dict[str, list[float]] = {"before (no fsync)": [], "now (fsync)": []}
    trees = {"before (no fsync)": args.baseline_tree.resolve(), "now (fsync)": REPO}
    for i in range(args.repeat):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))
        for name in order:
            t = run_tile(trees[name], slide, work / name.split()[0], args.workers)
            times[name].append(t)
            print(f"{name}: {t:.2f} s", flush=True)
    store = f"{slide.stem}.zarr"
    identical = same_patches(work / "before" / store, work / "now" / store)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"slide": slide.name, "workers": args.workers, "repeat": args.repeat, "seconds": times,
              "median_s": med, "overhead": med["now (fsync)"] / med["before (no fsync)"] - 1,
              "chunks_identical": identical}
    (work / "bench_durability.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
