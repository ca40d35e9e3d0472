"""Run the augmentation experiment on a real slide: ``python pipelines/augmentation_experiment/run.py``.

Tiles the slide (default: CMU-1-Small-Region from ``PATHGAN_DATA`` or ../shared/data) at 0.5 um/px,
then runs :func:`experiment.run_experiment` and prints the result tables. See experiment.py for
the design; README.md ("Augmentation experiment") for the measured result.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from experiment import ExperimentConfig, run_experiment  # noqa: E402


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", type=Path, help="Slide file [CMU-1-Small-Region.svs of the shared data].")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "augmentation_experiment")
    ap.add_argument("--n-per-class", type=_ints, default=(50, 100, 200), help="Comma-separated [50,100,200].")
    ap.add_argument("--seeds", type=_ints, default=(0, 1, 2, 3, 4), help="Comma-separated [0,1,2,3,4].")
    ap.add_argument("--synth-ratio", type=float, default=1.0, help="Synthetic per real patch of each class [1].")
    ap.add_argument("--gan-steps", type=int, default=1500)
    ap.add_argument("--cnn-steps", type=int, default=400)
    ap.add_argument("--truncation", type=float, default=1.0)
    ap.add_argument("--tail", type=float, default=0.5, help="Class = lowest / highest fraction of nuclei density [0.5].")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or None)
    args = ap.parse_args(argv)

    import torch

    from pathgan.config import TileConfig
    from pathgan.manifest import SlideEntry
    from pathgan.parallel import dask_client
    from pathgan.stages import tile_slides

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))
    slide = args.slide or data / "slides" / "CMU-1-Small-Region.svs"
    if not slide.is_file():
        print(f"no slide at {slide}: pass --slide or set PATHGAN_DATA to the shared data folder", file=sys.stderr)
        return 2
    cfg = ExperimentConfig(n_per_class=args.n_per_class, seeds=args.seeds, synth_ratio=args.synth_ratio,
                           gan_steps=args.gan_steps, cnn_steps=args.cnn_steps, truncation=args.truncation, tail=args.tail,
                           gan_config="pathologygan-56-cpu")
    stores = args.out / "stores"
    with dask_client(n_workers=1, dashboard=False) as client:
        rows = tile_slides([SlideEntry(slide_id=slide.stem, path=slide)], stores,
                           TileConfig(mpp=cfg.mpp, patch_px=cfg.patch_px, stride_px=cfg.stride_px, codec="zstd"),
                           client=client, overwrite=False, progress=False)
    if rows[0].status == "failed":
        print(f"tiling {slide} failed: {rows[0].error}", file=sys.stderr)
        return 1
    result = run_experiment(stores / f"{slide.stem}.zarr", args.out, cfg)
    print(f"data: {result['data']}")
    print((args.out / "results.md").read_text())
    print(f"results: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
