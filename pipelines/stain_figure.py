"""Before/after strip of stain normalisation and CycleGAN translation (the README's figure).

    python pipelines/stain_figure.py --a out/translate/tiles/CMU-1-Small-Region.zarr \
        --b out/translate/tiles/TCGA-CR-7395-01A-01-TS1.zarr \
        [--translated out/translate/cmu-as-tcga/CMU-1-Small-Region.zarr] --out docs/stain_strip.jpg

Rows: 8 patches of domain A (spread over its nuclei density), the same patches normalised to
domain B by Macenko, Vahadane and Reinhard (each fitted once to a 4 x 4 montage of 16 B patches),
their CycleGAN translation A -> B when ``--translated`` (the output store of ``pathgan translate``,
whose rows match A's) is given, and 8 patches of B for reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _spread(store, n: int) -> np.ndarray:
    """``n`` tissue-rich patch indices spread evenly over the store's nuclei-density ranks."""
    from pathgan.latents import nuclei_density

    idx = np.flatnonzero(np.asarray(store.tissue_fraction) >= 0.9)
    dens = nuclei_density(store.read(idx))
    order = idx[np.argsort(dens, kind="stable")]
    return np.sort(order[np.linspace(0, len(order) - 1, n).round().astype(int)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="Store of the domain to normalise (A).")
    ap.add_argument("--b", type=Path, required=True, help="Store of the target domain (B).")
    ap.add_argument("--translated", type=Path, help="pathgan translate's output store of A (rows match A's).")
    ap.add_argument("--out", type=Path, default=Path("out/stain_strip.png"))
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args(argv)

    from pathgan.latents import grid
    from pathgan.stain import Macenko, Reinhard, Vahadane
    from pathgan.store import PatchStore

    a, b = PatchStore(args.a), PatchStore(args.b)
    ia, ib = _spread(a, args.n), _spread(b, 16)
    xa = a.read(ia)
    tiles = b.read(ib)  # [16, P, P, 3] -> a 4 x 4 montage as the normalisers' target
    p = tiles.shape[1]
    target = tiles.reshape(4, 4, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(4 * p, 4 * p, 3)
    rows = [xa] + [cls().fit(target).transform(xa) for cls in (Macenko, Vahadane, Reinhard)]
    names = ["A: " + a.slide_id, "Macenko -> B", "Vahadane -> B", "Reinhard -> B"]
    if args.translated is not None:
        t = PatchStore(args.translated)
        if not np.array_equal(np.asarray(t.coords)[ia], np.asarray(a.coords)[ia]):
            print(f"{args.translated}: its coords do not match {args.a}; is it translated from it?", file=sys.stderr)
            return 2
        rows.append(t.read(ia))
        names.append("CycleGAN A -> B")
    rows.append(b.read(_spread(b, args.n)))
    names.append("B: " + b.slide_id)
    fig = grid(np.stack(rows), row_labels=names, title="stain normalisation and translation, 0.5 um/px")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jpeg = args.out.suffix.lower() in (".jpg", ".jpeg")
    fig.savefig(args.out, dpi=110, bbox_inches="tight", pil_kwargs={"quality": 85} if jpeg else None)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
