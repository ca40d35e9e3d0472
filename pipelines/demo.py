"""``make demo``: tile the real slides, train the small CPU PathologyGAN briefly (to show training
works), then, with the pretrained model shipped in ``models/`` (the same preset trained far longer
on the same slides; the demo's own short run where it is missing), encode every patch, draw an
interpolation strip and a vector-arithmetic figure, then a classifier on the latents, an ROI GeoJSON
for one slide and 64 exported synthetic patches, and a before/after strip of stain normalisation
(the first slide to the second's stains).

Uses ``$PATHGAN_DATA`` or ../shared/data; where neither exists it says so and tiles a generated
synthetic slide instead. Built only on pathgan's public API (pipelines are never imported by it).
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "demo"
PRESET = "pathologygan-64-cpu"
# The CPU preset trained for hours on the two shared slides, exported with its encoder (README,
# "The pretrained model"); PATHGAN_DEMO_MODEL names another run or export, "" uses the demo's run.
PRETRAINED = Path(os.environ.get("PATHGAN_DEMO_MODEL", REPO / "models" / "tissue-64-cpu"))


def _manifest_for(data: Path) -> Path:
    """The repository's example manifest, re-pointed at ``data``."""
    rows = list(csv.DictReader((REPO / "slides_manifest.csv").open()))
    path = OUT / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "path": str(data / "slides" / Path(r["path"]).name)})
    return path


def _synthetic_slide(path: Path) -> Path:
    """A 4096 x 3072 Aperio-like slide at 0.25 um/px with H&E-coloured blobs (no real data here)."""
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    h, w = 3072, 4096
    yy, xx = np.mgrid[0:h, 0:w]
    tissue = ((xx - 1300) ** 2 + (yy - 1500) ** 2 < 900**2) | ((xx - 3000) ** 2 + (yy - 1400) ** 2 < 700**2)
    img = np.full((h, w, 3), 240, np.uint8)
    nuclei = rng.random((h // 4, w // 4)).repeat(4, 0).repeat(4, 1) > 0.8
    img[tissue] = np.where(nuclei[tissue, None], [95, 60, 140], [222, 140, 185]).astype(np.uint8)
    desc = f"Aperio Image Library v12.0.0 \n{w}x{h} [0,0 {w}x{h}] (256x256) JPEG/RGB Q=90|AppMag = 40|MPP = 0.25"
    kw = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 90}, metadata=None)
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, tile=(256, 256), description=desc, **kw)
        tw.write(np.asarray(Image.fromarray(img).reduce(16)), description="Aperio thumbnail", **kw)
        tw.write(np.asarray(Image.fromarray(img).reduce(4)), tile=(256, 256), description="Aperio level", **kw)
    return path


def main() -> int:
    from pathgan.config import TileConfig
    from pathgan.manifest import discover_slides, read_manifest
    from pathgan.parallel import dask_client
    from pathgan.stages import tile_slides

    data = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))
    OUT.mkdir(parents=True, exist_ok=True)
    if (data / "slides").is_dir():
        print(f"demo: tiling the real slides in {data / 'slides'} (manifest: slides_manifest.csv)")
        entries = read_manifest(_manifest_for(data))
    else:
        print(f"demo: no real data at {data} (set PATHGAN_DATA to the shared data folder); "
              "tiling a generated synthetic slide instead")
        synth = OUT / "synthetic"
        synth.mkdir(exist_ok=True)
        _synthetic_slide(synth / "synthetic.svs")
        entries = discover_slides(synth)
    stores = OUT / "stores"
    with dask_client(dashboard=True) as client:
        print(f"dask dashboard: {client.dashboard_link}")
        rows = tile_slides(entries, stores, TileConfig(), client=client, overwrite=True)
        for r in rows:
            print(f"  {r.slide_id:<28} {r.status:<9} {r.n_patches:>6} patches  {r.seconds:6.1f} s  {r.error}")
        if any(r.status == "failed" for r in rows):
            return 1
        # The 64-px CPU model trains on 64-px patches at 1 um/px, overlapping by half.
        small = OUT / "stores-1um-64px"
        tile_slides(entries, small, TileConfig(mpp=1.0, patch_px=64, stride_px=32), client=client,
                    overwrite=True, progress=False)
    print(f"stores:   {stores}/<slide_id>.zarr  (open with pathgan.store.PatchStore)")
    print(f"previews: {stores / 'previews'}")
    print(f"status:   {stores / 'tile_status.csv'}")
    return train_briefly(small)


def train_briefly(stores: Path, minutes: float = float(os.environ.get("PATHGAN_DEMO_MINUTES", "10"))) -> int:
    """The CPU preset for a fixed wall-clock budget (``train-latent --minutes``), then its sample grid."""
    import yaml

    from pathgan.config import TrainConfig, from_dict
    from pathgan.presets import preset_path
    from pathgan.stages.train import train_latent

    data = yaml.safe_load(preset_path("train", PRESET).read_text())
    cfg = from_dict(TrainConfig, {**data, "time_budget_min": minutes, "sample_every": 500, "checkpoint_every": 10**9,
                                  "val_fraction": 0.0})
    print(f"demo: training {PRESET} for {minutes:g} minutes on {stores} (PATHGAN_DEMO_MINUTES to change); "
          "the progress bar counts the seconds of the budget; a final checkpoint and samples follow")
    run_dir = train_latent([stores], cfg, runs_root=OUT / "runs", device="auto")
    grid = sorted((run_dir / "samples").glob("*.png"))[-1]
    print(f"run:      {run_dir}  (config.yaml, stats.jsonl, checkpoints/)")
    print(f"samples:  {grid}")
    model_dir = run_dir
    if str(PRETRAINED) and (PRETRAINED / "config.json").is_file():
        model_dir = PRETRAINED
        print(f"demo: the latent, arithmetic and synthesis steps use the pretrained model {PRETRAINED} "
              f"(MODEL_CARD.md there); this run trained {minutes:g} minutes only to show training works")
        samples_side_by_side(run_dir, PRETRAINED, minutes)
    else:
        print(f"demo: no pretrained model at {PRETRAINED}; the latent steps use this {minutes:g}-minute run")
    return latent_figures(model_dir, sorted(stores.glob("*.zarr")))


def samples_side_by_side(run_dir: Path, pretrained: Path, minutes: float) -> None:
    """Eight samples (the same seed) of the demo's short run above eight of the pretrained model.

    Drawn with the generator's per-pixel noise, as in training: the latent figures leave it out
    (w alone), and for these models w carries colour while the noise carries most of the texture.
    """
    from pathgan import latents as L

    short, long = L.LatentModel.load(run_dir), L.LatentModel.load(pretrained)
    rows = np.stack([m.generate(m.sample_w(8, seed=1), noise=True, seed=1) for m in (short, long)])
    figures = OUT / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    L.grid(rows, row_labels=[f"this demo's run ({minutes:g} min)", f"pretrained ({pretrained.name})"],
           title="samples: the demo's short run and the shipped model").savefig(figures / "samples.png", dpi=100)
    print(f"samples:  {figures / 'samples.png'} (the short run beside the pretrained model)")


def latent_figures(run_dir: Path, stores: list[Path],
                   steps: int = int(os.environ.get("PATHGAN_DEMO_ENCODER_STEPS", "300"))) -> int:
    """Fit the encoder (unless the model has one), write latents into the stores, then draw two
    figures from real patches."""
    from pathgan import latents as L
    from pathgan.config import EncoderConfig
    from pathgan.stages.encode import encode_stores
    from pathgan.stages.train_encoder import train_encoder
    from pathgan.store import PatchStore

    if not L.LatentModel.load(run_dir).bundle.has_encoder:
        print(f"demo: fitting the encoder for {steps} steps (PATHGAN_DEMO_ENCODER_STEPS to change)")
        train_encoder(run_dir, EncoderConfig(steps=steps, lr=5e-4, n_eval=128), device="auto", overwrite=True,
                      eval_refine_steps=20)
    model = L.LatentModel.load(run_dir, require_encoder=True)
    rows = encode_stores(model, stores, overwrite=True)
    if any(r.status == "failed" for r in rows):
        print(f"demo: encoding failed: {rows}")
        return 1
    print(f"latents:  latents/{model.run_id} in {len(stores)} store(s) (PatchStore(path).latents(run_id))")

    # Every patch with its latent and measured nuclei density, slide by slide; patches with pen
    # ink get no density label (green ink deconvolves into haematoxylin).
    ws, dens, pix, slide = [], [], [], []
    for k, path in enumerate(stores):
        store = PatchStore(path)
        patches = store.read(slice(0, len(store)))
        ws.append(store.latents(model.run_id))
        dens.append(np.where(store.qc("pen_fraction") > 0, np.nan, L.nuclei_density(patches)))
        pix.append(patches)
        slide += [k] * len(store)
    w, density, patches = np.concatenate(ws), np.concatenate(dens), np.concatenate(pix)
    slide_arr = np.asarray(slide)
    figures = OUT / "figures"
    figures.mkdir(exist_ok=True)
    written = []

    # 1. Interpolation in w between a sparse and a dense real patch (5th and 95th percentile:
    # the extremes are often artefacts).
    order = np.flatnonzero(~np.isnan(density))[np.argsort(density[~np.isnan(density)], kind="stable")]
    a, b = int(order[len(order) // 20]), int(order[-1 - len(order) // 20])
    path_w = model.interpolate(w[a], w[b], 8, space="w")
    row = np.concatenate([model.view(patches[[a]]), model.generate(path_w), model.view(patches[[b]])])
    fig = L.strip(row, labels=["real A", *[f"{t:.2f}" for t in np.linspace(0, 1, 8)], "real B"],
                  title="w interpolation from a sparse to a dense real patch (ends: the real patches)")
    fig.savefig(figures / "interpolation.png", dpi=100)
    written.append(figures / "interpolation.png")

    # 2. [dense, slide 1] - [sparse, slide 1] + [sparse, slide 2] (density thirds within each
    # slide), then its nearest real patches.
    thirds = [L.labels_by_quantile(np.where(slide_arr == k, density, np.nan)) for k in range(len(stores))]
    first = 0
    second = 1 if len(stores) > 1 else 0
    groups = [thirds[first][1], thirds[first][0], thirds[second][0]]
    if all(g.sum() >= 1 for g in groups):
        result = L.arithmetic(w[groups[0]], w[groups[1]], w[groups[2]])
        index = L.LatentIndex.from_stores(stores, model.run_id)
        near = index.query(result, k=6)
        shown = np.concatenate([model.generate(np.stack([w[g].mean(0) for g in groups] + [result])),
                                model.view(index.patches(near))])
        names = ["mean A", "mean B", "mean C", "A - B + C"] + [f"{n.slide_id[:10]}" for n in near]
        L.strip(shown, labels=names, title="A = dense nuclei (slide 1), B = sparse (slide 1), C = sparse "
                "(slide 2); then the 6 nearest real patches").savefig(figures / "arithmetic.png", dpi=100)
        written.append(figures / "arithmetic.png")
    else:
        print(f"demo: no arithmetic figure, a density group is empty (sizes {[int(g.sum()) for g in groups]})")
    print(f"figures:  {', '.join(str(p) for p in written)}")
    print("notebook: notebooks/latent_arithmetic.ipynb reads these outputs")
    return downstream(run_dir, stores, thirds)


def downstream(run_dir: Path, stores: list[Path], thirds: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """A classifier on latents, an ROI GeoJSON for one slide, and 64 synthetic patches.

    Labels: the densest and sparsest third of each slide's patches by measured nuclei density,
    ``thirds[k] = (low, high)`` masks over all patches (tile labels, so each fold of whole slides
    still holds both classes).
    """
    from pathgan.downstream import ExportConfig
    from pathgan.export import resolve_model_id
    from pathgan.stages.classify import classify
    from pathgan.stages.export_synthetic import export_synthetic
    from pathgan.stages.roi import roi
    from pathgan.store import PatchStore

    run_id = resolve_model_id(run_dir)
    labels = OUT / "nuclei_labels.csv"
    with labels.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["slide_id", "x", "y", "label"])
        start = 0
        for k, path in enumerate(stores):
            store = PatchStore(path)
            low, high = thirds[k]
            for i, (x, y) in enumerate(store.coords):
                j = start + i
                if high[j] or low[j]:
                    out.writerow([store.slide_id, int(x), int(y), "dense" if high[j] else "sparse"])
            start += len(store)
    res = classify(stores, run_id, labels_csv=labels, n_folds=5, out_dir=OUT / "classify")
    pooled = (res.get("cv") or {}).get("pooled", {})
    print(f"classify: {OUT / 'classify'}  (dense vs sparse nuclei, folds of whole slides; pooled out-of-fold: "
          f"{', '.join(f'{k} {v:.3f}' for k, v in pooled.items() if isinstance(v, float))})")
    r = roi(stores[0], run_id=run_id, classifier_path=OUT / "classify", class_name="dense", out_dir=OUT / "roi")
    print(f"roi:      {r['geojson']}  ({r['n_regions']} regions, QuPath GeoJSON), overlay {r['overlay_png']}")
    syn = export_synthetic(run_dir, ExportConfig(n=32, classes=("dense", "sparse"), truncation=0.7),
                           out=OUT / "synthetic", stores=stores, labels=labels, overwrite=True, device="cpu")
    print(f"synthetic: {syn}  (32 PNGs per class, synthetic.csv with seeds and latents)")
    if len(stores) > 1:  # the first slide normalised to the second's stains (Macenko, Vahadane, Reinhard)
        from stain_figure import main as stain_strip

        stain_strip(["--a", str(stores[0]), "--b", str(stores[1]), "--out", str(OUT / "figures" / "stain_strip.png")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
