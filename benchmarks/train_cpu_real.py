"""The CPU reference run, through the command line as a user runs it: tile the real slides, train the
CPU preset (``pathologygan-64-cpu``, pathgan/presets/train/) for ``--minutes`` with the checkerboard spatial
hold-out (``holdout_block_um``), then ``pathgan evaluate`` against the held-out test squares.

Writes into ``--work`` (default .bench/train_cpu): the stores, the run directory, KID/FID results
and ``loss_curve.png``; prints a summary for README.

Usage:  OMP_NUM_THREADS=2 python benchmarks/train_cpu_real.py [--minutes 20] [--work .bench/train_cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def loss_curve(run_dir: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    step = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    for key, label in (("loss_d", "D loss"), ("loss_g", "G loss"), ("gp", "gradient penalty")):
        ax.plot(step, [r.get(key, np.nan) for r in rows], label=label, lw=1)
    ax.set_xlabel("discriminator step")
    ax.legend(frameon=False)
    ax.set_title(f"{run_dir.name}")
    fig.tight_layout()
    fig.savefig(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget (train-latent --minutes)")
    ap.add_argument("--config", default="pathologygan-64-cpu", help="train preset name or YAML file (train-latent --config)")
    ap.add_argument("--block-um", type=float, default=384.0, help="side of the held-out checkerboard squares")
    ap.add_argument("--work", type=Path, default=REPO / ".bench" / "train_cpu")
    ap.add_argument("--n-eval", type=int, default=1000)
    args = ap.parse_args()
    if not (DATA / "slides").is_dir():
        sys.exit(f"needs the real slides at {DATA} (set PATHGAN_DATA)")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.csv"
    # No split column: both slides train; TCGA-CR-7395 has no MPP in the file (0.5 is an assumption).
    manifest.write_text("slide_id,path,mpp_override\n"
                        f"CMU-1-Small-Region,{DATA / 'slides' / 'CMU-1-Small-Region.svs'},\n"
                        f"TCGA-CR-7395-01A-01-TS1,{DATA / 'slides' / 'TCGA-CR-7395-01A-01-TS1.svs'},0.5\n")
    pathgan = [sys.executable, "-m", "pathgan.cli"]
    stores = work / "stores"
    run([*pathgan, "tile", "--manifest", str(manifest), "--out", str(stores), "--mpp", "1.0", "--patch-px", "64",
         "--stride-px", "32", "--workers", "2", "--no-progress"])
    runs = work / "runs"
    t0 = time.time()
    run([*pathgan, "train-latent", "--stores", str(stores), "--config", str(args.config),
         "--minutes", f"{args.minutes:g}", "--set", f"holdout_block_um={args.block_um:g}", "--set", "val_fraction=0", "--out", str(runs), "--device", "cpu", "--no-progress"])
    minutes = (time.time() - t0) / 60
    run_dir = sorted(runs.iterdir())[-1]
    loss_curve(run_dir, work / "loss_curve.png")
    stats = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    results = {"run_dir": str(run_dir), "wall_minutes": round(minutes, 1), "budget_minutes": args.minutes,
               "steps": max(r["step"] for r in stats), "config": str(args.config)}
    for extractor in ("random", "inception"):
        try:
            run([*pathgan, "evaluate", "--run", str(run_dir), "--stores", str(stores), "--n", str(args.n_eval),
                 "--extractor", extractor])
        except subprocess.CalledProcessError as err:
            results[f"{extractor}_error"] = str(err)
    for f in sorted(run_dir.glob("eval-*.json")):
        results[f.stem] = json.loads(f.read_text())
    (work / "summary.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
