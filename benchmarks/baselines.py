#!/usr/bin/env python
"""Reference tiling pipelines for benchmarks (importable functions + CLI).

* ``clam_style``   - CLAM-like: coords split among worker processes, one
  ``openslide.read_region`` per patch at level 0, PIL resize, append to HDF5.
* ``decode_limit`` - the physical limit: every level-0 TIFF tile touched by any
  patch is read raw and JPEG-decoded exactly once (nothing is written), by
  one of several decoders: full size (imagecodecs), or at 1/2 scale in the DCT
  domain (libjpeg-turbo through simplejpeg, OpenCV or Pillow's ``draft``); the
  benchmark compares pathgan with the fastest at the scale pathgan decodes at.
  Several slides may be given: their tiles are decoded as one batch.
* ``tissue_coords`` - a simple tissue grid (HSV saturation on a low level).
* ``verify_decoders`` - checks the raw decoders against openslide pixels.

CLI::

    python benchmarks/baselines.py SLIDE.svs --coords COORDS.npy --workers 2 --out /tmp/x

(COORDS.npy is created from the slide with ``tissue_coords`` if it does not exist.)

Colour space: classic Aperio JPEG tiles hold RGB samples (no YCbCr transform)
without a JFIF or Adobe marker, component ids 0,1,2. libjpeg then *guesses*
YCbCr unless told otherwise, so the decoders here force RGB: imagecodecs via
``colorspace='RGB'``; Pillow (which cannot be told) via an Adobe APP14 marker
with transform 0 spliced into the stream.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import resource
import sys
import time

import numpy as np

ADOBE_RGB_APP14 = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"  # transform 0 = no colour transform

_RESAMPLE = {"bilinear": 2, "lanczos": 1, "bicubic": 3, "box": 4, "nearest": 0}  # PIL enum values


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------- coords ----


def tissue_coords(slide: str, footprint: int = 512, min_tissue: float = 0.5,
                  sat_thresh: int = 20, out: str | None = None) -> np.ndarray:
    """Level-0 (x, y) origins (int64 [N, 2], row-major) of the ``footprint``-px
    grid cells with >= ``min_tissue`` tissue, tissue = HSV saturation >
    ``sat_thresh`` (0-255) on the lowest pyramid level that still has >= 8 px
    per cell. Saves to ``out`` (.npy) when given."""
    import openslide

    with openslide.OpenSlide(slide) as s:
        W, H = s.dimensions
        lvl = 0
        for i, ds in enumerate(s.level_downsamples):
            if footprint / ds >= 8:
                lvl = i
        ds = s.level_downsamples[lvl]
        lw, lh = s.level_dimensions[lvl]
        img = s.read_region((0, 0), lvl, (lw, lh)).convert("RGB")
    sat = np.asarray(img.convert("HSV"))[..., 1] > sat_thresh
    integ = np.zeros((lh + 1, lw + 1), dtype=np.int64)
    integ[1:, 1:] = sat.cumsum(0).cumsum(1)
    ncol, nrow = W // footprint, H // footprint
    x = np.arange(ncol) * footprint
    y = np.arange(nrow) * footprint
    x0 = np.clip(np.floor(x / ds).astype(int), 0, lw)
    x1 = np.clip(np.ceil((x + footprint) / ds).astype(int), 0, lw)
    y0 = np.clip(np.floor(y / ds).astype(int), 0, lh)
    y1 = np.clip(np.ceil((y + footprint) / ds).astype(int), 0, lh)
    area = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    cnt = integ[y1][:, x1] - integ[y0][:, x1] - integ[y1][:, x0] + integ[y0][:, x0]
    frac = cnt / np.maximum(area, 1)
    iy, ix = np.nonzero(frac >= min_tissue)
    coords = np.stack([x[ix], y[iy]], axis=1).astype(np.int64)
    if out:
        np.save(out, coords)
    return coords


# --------------------------------------------------------- CLAM style ----


def _clam_worker(slide, coords, footprint, patch_px, resample, h5_path, q):
    import h5py
    import openslide

    t_read = t_resize = t_write = 0.0
    s = openslide.OpenSlide(slide)
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("coords", data=coords)
        d = f.create_dataset("imgs", shape=(0, patch_px, patch_px, 3), maxshape=(None, patch_px, patch_px, 3),
                             chunks=(1, patch_px, patch_px, 3), dtype=np.uint8)
        for i, (x, y) in enumerate(coords):
            t0 = time.perf_counter()
            im = s.read_region((int(x), int(y)), 0, (footprint, footprint)).convert("RGB")
            t1 = time.perf_counter()
            if footprint != patch_px:
                im = im.resize((patch_px, patch_px), resample)
            a = np.asarray(im)
            t2 = time.perf_counter()
            d.resize(i + 1, axis=0)
            d[i] = a
            t3 = time.perf_counter()
            t_read += t1 - t0
            t_resize += t2 - t1
            t_write += t3 - t2
    s.close()
    q.put({"n": len(coords), "rss_mb": _maxrss_mb(), "cpu_s": _cpu_s(), "read_s": t_read, "resize_s": t_resize, "write_s": t_write})


def clam_style(slide: str, coords: np.ndarray, footprint: int = 512, patch_px: int = 256, workers: int = 2,
               out_h5: str = "/tmp/clam_style.h5", resample: str = "bilinear",
               start_method: str = "fork") -> dict:
    """CLAM-style extraction. ``coords`` (int64 [N, 2] level-0 x, y) are split
    into ``workers`` contiguous chunks, one process each; per patch:
    ``read_region((x, y), 0, (footprint, footprint))`` -> RGB -> PIL resize to
    ``patch_px`` (``resample``: bilinear by default) -> append to an HDF5 dataset
    ``imgs`` uint8 [n, patch_px, patch_px, 3], one file per worker
    (``<out_h5 stem>.w<i>.h5``). Returns a dict: patches_per_s (wall clock incl.
    process start), wall_s, per-worker peak RSS (MB) and per-patch read/resize/write ms."""
    coords = np.asarray(coords, dtype=np.int64)
    ctx = mp.get_context(start_method)
    q = ctx.Queue()
    stem = out_h5[:-3] if out_h5.endswith(".h5") else out_h5
    os.makedirs(os.path.dirname(os.path.abspath(stem)) or ".", exist_ok=True)
    chunks = np.array_split(coords, workers)
    files = [f"{stem}.w{i}.h5" for i in range(workers)]
    rs = _RESAMPLE[resample]
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_clam_worker, args=(slide, c, footprint, patch_px, rs, fn, q))
             for c, fn in zip(chunks, files, strict=True)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    if any(p.exitcode for p in procs):
        raise RuntimeError("clam_style worker failed")
    n = sum(r["n"] for r in res)
    return {
        "method": "clam_style", "resample": resample, "start_method": start_method, "workers": workers,
        "n_patches": n, "wall_s": round(wall, 3), "patches_per_s": round(n / wall, 1),
        "peak_rss_mb_per_worker": [round(r["rss_mb"], 1) for r in res],
        "cpu_s_per_worker": [round(r["cpu_s"], 2) for r in res],
        "patches_per_cpu_s": round(n / sum(r["cpu_s"] for r in res), 1),
        "read_region_ms": round(1000 * sum(r["read_s"] for r in res) / n, 3),
        "resize_ms": round(1000 * sum(r["resize_s"] for r in res) / n, 3),
        "h5_write_ms": round(1000 * sum(r["write_s"] for r in res) / n, 3),
        "files": files,
    }


# ------------------------------------------------------- decode limit ----


def level0_tile_info(slide: str) -> dict:
    """Level-0 TIFF page geometry and raw tile locations (tifffile)."""
    import tifffile

    with tifffile.TiffFile(slide) as tf:
        p = tf.pages[0]
        if not p.is_tiled:
            raise ValueError("level 0 is not tiled")
        return {
            "width": p.imagewidth, "height": p.imagelength, "tile_w": p.tilewidth, "tile_h": p.tilelength,
            "offsets": np.asarray(p.dataoffsets, dtype=np.int64),
            "counts": np.asarray(p.databytecounts, dtype=np.int64),
            "jpegtables": p.jpegtables, "compression": int(p.compression), "photometric": int(p.photometric),
        }


def needed_tiles(coords: np.ndarray, footprint: int, info: dict) -> np.ndarray:
    """Sorted unique level-0 tile indices (row-major) overlapped by any patch."""
    tw, th = info["tile_w"], info["tile_h"]
    ntx = (info["width"] + tw - 1) // tw
    nty = (info["height"] + th - 1) // th
    coords = np.asarray(coords, dtype=np.int64)
    x0 = coords[:, 0] // tw
    x1 = np.minimum((coords[:, 0] + footprint - 1) // tw, ntx - 1)
    y0 = coords[:, 1] // th
    y1 = np.minimum((coords[:, 1] + footprint - 1) // th, nty - 1)
    span = int(max((x1 - x0).max(), (y1 - y0).max())) + 1
    ids = []
    for dy in range(span):
        for dx in range(span):
            ok = (y0 + dy <= y1) & (x0 + dx <= x1)
            ids.append(((y0 + dy) * ntx + x0 + dx)[ok])
    return np.unique(np.concatenate(ids))


def pil_rgb_prefix(jpegtables: bytes | None) -> bytes:
    """Stream prefix for Pillow: SOI + Adobe APP14 (transform 0, i.e. RGB) + tables."""
    tabs = jpegtables[2:-2] if jpegtables else b""
    return b"\xff\xd8" + ADOBE_RGB_APP14 + tabs


def decode_tile_full(data: bytes, tables: bytes | None) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpeg8_decode(data, tables=tables, colorspace="RGB", outcolorspace="RGB")


def decode_tile_half(data: bytes, prefix: bytes, size: tuple[int, int]) -> np.ndarray:
    """1/2-scale DCT decode via Pillow/libjpeg-turbo; ``prefix`` from pil_rgb_prefix."""
    from PIL import Image

    im = Image.open(io.BytesIO(prefix + data[2:]))
    im.draft("RGB", (size[0] // 2, size[1] // 2))
    return np.asarray(im)


#: The decoders of the decode limit: (scale, library). All are libjpeg-turbo underneath.
DECODERS = {"full-imagecodecs": 1, "half-simplejpeg": 2, "half-opencv": 2, "half-pillow": 2}


def decoder_available(name: str) -> bool:
    try:
        if name == "half-simplejpeg":
            import simplejpeg  # noqa: F401
        elif name == "half-opencv":
            import cv2  # noqa: F401
    except ImportError:
        return False
    return name in DECODERS


def make_decoder(name: str, tables: bytes | None, tile_wh: tuple[int, int]):
    """A function raw tile bytes -> RGB uint8 array, at full size or 1/2 (DCT-scaled).

    The 1/2-scale decoders get an Adobe APP14 marker (transform 0: RGB) spliced in after SOI, so
    libjpeg decodes Aperio's RGB-coded tiles as RGB without guessing (as pathgan does)."""
    prefix = pil_rgb_prefix(tables)
    half = (tile_wh[0] // 2, tile_wh[1] // 2)
    if name == "full-imagecodecs":
        import imagecodecs

        return lambda data: imagecodecs.jpeg8_decode(data, tables=tables, colorspace="RGB", outcolorspace="RGB")
    if name == "half-simplejpeg":
        import simplejpeg

        return lambda data: simplejpeg.decode_jpeg(prefix + data[2:], colorspace="RGB", min_height=half[1],
                                                   min_width=half[0])
    if name == "half-opencv":
        import cv2

        cv2.setNumThreads(1)

        def opencv(data: bytes) -> np.ndarray:
            bgr = cv2.imdecode(np.frombuffer(prefix + data[2:], np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
            return bgr[..., ::-1]

        return opencv
    if name == "half-pillow":
        from PIL import Image

        def pillow(data: bytes) -> np.ndarray:
            im = Image.open(io.BytesIO(prefix + data[2:]))
            im.draft("RGB", half)
            return np.asarray(im)

        return pillow
    raise ValueError(f"unknown decoder {name!r}; known: {sorted(DECODERS)}")


def _decode_worker(jobs, decoder, q):
    """``jobs``: [(slide, offsets, counts, tables, tile_wh)], decoded in order, once each."""
    t0 = time.perf_counter()
    px = n = 0
    for slide, offsets, counts, tables, tile_wh in jobs:
        decode = make_decoder(decoder, tables, tile_wh)
        with open(slide, "rb", buffering=0) as fh:
            for off, k in zip(offsets.tolist(), counts.tolist(), strict=True):
                fh.seek(off)
                a = decode(fh.read(k))
                px += a.shape[0] * a.shape[1]
                n += 1
    q.put({"n": n, "px": px, "rss_mb": _maxrss_mb(), "cpu_s": _cpu_s(), "busy_s": time.perf_counter() - t0})


def decode_limit(slide, coords, footprint: int = 512, workers: int = 2, scale: int | None = None,
                 start_method: str = "fork", decoder: str | None = None) -> dict:
    """Decode every level-0 tile overlapped by any patch exactly once, split in contiguous
    (file-order) chunks among ``workers`` processes; nothing written.

    ``slide``/``coords`` may be lists (a batch: all slides' tiles are one job list, split evenly).
    ``decoder`` is a key of :data:`DECODERS` (``scale=1``/``2`` pick imagecodecs / Pillow, the old
    names). Returns patches_per_s and tiles_per_s (wall includes process start), peak RSS."""
    if decoder is None:
        decoder = {1: "full-imagecodecs", 2: "half-pillow"}[scale or 1]
    slides = list(slide) if isinstance(slide, list | tuple) else [slide]
    coord_sets = list(coords) if isinstance(slide, list | tuple) else [coords]
    t0 = time.perf_counter()
    items = []  # (slide, tile index, offset, count, tables, tile_wh) in file order per slide
    n_patches = 0
    for sl, co in zip(slides, coord_sets, strict=True):
        info = level0_tile_info(sl)
        if info["compression"] != 7:
            raise ValueError(f"{sl}: level-0 compression {info['compression']} is not JPEG (7)")
        co = np.asarray(co, dtype=np.int64)
        n_patches += len(co)
        tiles = needed_tiles(co, footprint, info)
        items.append((sl, info, tiles))
    total = sum(len(t) for _, _, t in items)
    bounds = np.linspace(0, total, workers + 1).astype(int)  # contiguous, equal shares over the batch
    jobs: list[list] = [[] for _ in range(workers)]
    start = 0
    for sl, info, tiles in items:
        for w in range(workers):
            lo, hi = max(bounds[w] - start, 0), min(bounds[w + 1] - start, len(tiles))
            if lo < hi:
                part = tiles[lo:hi]
                jobs[w].append((sl, info["offsets"][part], info["counts"][part], info["jpegtables"],
                                (info["tile_w"], info["tile_h"])))
        start += len(tiles)
    ctx = mp.get_context(start_method)
    q = ctx.Queue()
    procs = [ctx.Process(target=_decode_worker, args=(job, decoder, q)) for job in jobs]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    if any(p.exitcode for p in procs):
        raise RuntimeError("decode_limit worker failed")
    nt = sum(r["n"] for r in res)
    return {
        "method": f"decode_limit_{decoder}", "decoder": decoder, "scale": DECODERS[decoder], "workers": workers,
        "n_patches": n_patches, "n_tiles": int(nt), "wall_s": round(wall, 3),
        "patches_per_s": round(n_patches / wall, 1), "tiles_per_s": round(nt / wall, 1),
        "mpix_per_s_decoded": round(sum(r["px"] for r in res) / wall / 1e6, 1),
        "peak_rss_mb_per_worker": [round(r["rss_mb"], 1) for r in res],
        "cpu_s_per_worker": [round(r["cpu_s"], 2) for r in res],
        "patches_per_cpu_s": round(n_patches / sum(r["cpu_s"] for r in res), 1),
    }


# ------------------------------------------------------------- checks ----


def verify_decoders(slide: str, coords: np.ndarray, footprint: int = 512, n: int = 8) -> dict:
    """Compare raw-tile decodes with openslide's pixels on ``n`` tiles under patches."""
    import imagecodecs
    import openslide
    from PIL import Image

    info = level0_tile_info(slide)
    tiles = needed_tiles(coords, footprint, info)
    tw, th = info["tile_w"], info["tile_h"]
    ntx = (info["width"] + tw - 1) // tw
    pick = tiles[np.linspace(0, len(tiles) - 1, n).astype(int)]
    tables = info["jpegtables"]
    prefix = pil_rgb_prefix(tables)
    plain_prefix = tables[:-2] if tables else b"\xff\xd8"
    out = {"full_equal_openslide": True, "full_max_abs": 0, "half_mean_abs": 0.0,
           "pil_no_marker_half_mean_abs": 0.0, "imagecodecs_guess_mean_abs": 0.0}
    with openslide.OpenSlide(slide) as s, open(slide, "rb") as fh:
        for t in pick.tolist():
            x, y = (t % ntx) * tw, (t // ntx) * th
            ref = np.asarray(s.read_region((x, y), 0, (tw, th)).convert("RGB")).astype(np.int16)
            fh.seek(int(info["offsets"][t]))
            data = fh.read(int(info["counts"][t]))
            full = decode_tile_full(data, tables)
            out["full_equal_openslide"] &= bool(np.array_equal(full, ref))
            out["full_max_abs"] = max(out["full_max_abs"], int(np.abs(full - ref).max()))
            ref2 = ref.reshape(th // 2, 2, tw // 2, 2, 3).mean(axis=(1, 3))
            half = decode_tile_half(data, prefix, (tw, th))
            out["half_mean_abs"] = max(out["half_mean_abs"], float(np.abs(half - ref2).mean()))
            im = Image.open(io.BytesIO(plain_prefix + data[2:]))
            im.draft("RGB", (tw // 2, th // 2))
            out["pil_no_marker_half_mean_abs"] = max(out["pil_no_marker_half_mean_abs"],
                                                     float(np.abs(np.asarray(im) - ref2).mean()))
            for name in ("half-simplejpeg", "half-opencv"):
                if decoder_available(name):
                    got = make_decoder(name, tables, (tw, th))(data).astype(np.float64)
                    key = f"{name}_mean_abs"
                    out[key] = max(out.get(key, 0.0), float(np.abs(got - ref2).mean()))
            guess = imagecodecs.jpeg8_decode(data, tables=tables)
            out["imagecodecs_guess_mean_abs"] = max(out["imagecodecs_guess_mean_abs"],
                                                    float(np.abs(guess - ref).mean()))
    for k in [k for k in out if k.endswith("_mean_abs")]:
        out[k] = round(out[k], 3)
    out["tiles_checked"] = len(pick)
    return out


# ---------------------------------------------------------------- CLI ----


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="CLAM-style and decode-limit reference pipelines")
    ap.add_argument("slide")
    ap.add_argument("--coords", required=True, help="int64 [N,2] .npy of level-0 (x, y); created if missing")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/baselines")
    ap.add_argument("--footprint", type=int, default=512)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--methods", default="clam,decode1,decode2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--resample", default="bilinear", choices=sorted(_RESAMPLE))
    ap.add_argument("--start-method", default="fork", choices=["fork", "spawn", "forkserver"])
    ap.add_argument("--no-verify", action="store_true")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    if os.path.exists(a.coords):
        coords = np.load(a.coords)
    else:
        coords = tissue_coords(a.slide, a.footprint, out=a.coords)
    results = {"slide": a.slide, "n_coords": len(coords)}
    print(json.dumps(results), flush=True)
    if not a.no_verify:
        results["verify"] = verify_decoders(a.slide, coords, a.footprint)
        print(json.dumps({"verify": results["verify"]}), flush=True)
    runs = []
    for r in range(a.repeat):
        for m in a.methods.split(","):
            if m == "clam":
                res = clam_style(a.slide, coords, a.footprint, a.patch, a.workers,
                                 os.path.join(a.out, "clam.h5"), a.resample, a.start_method)
            elif m in ("decode1", "decode2"):
                res = decode_limit(a.slide, coords, a.footprint, a.workers, int(m[-1]), a.start_method)
            else:
                raise SystemExit(f"unknown method {m!r}")
            res["repeat"] = r
            runs.append(res)
            print(json.dumps(res), flush=True)
    results["runs"] = runs
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
