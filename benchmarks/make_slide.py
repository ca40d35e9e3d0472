#!/usr/bin/env python
"""Build a gigapixel Aperio-like SVS by mosaicking real H&E tissue.

Usage::

    python benchmarks/make_slide.py OUT.svs --width 65536 --height 49152 --mpp 0.25 --quality 80 --seed 0

Layout: a few dozen blobby elliptical "islands" on a near-white background
(RGB ~240 plus slight noise). Each island is filled by mirror-tiling one real
H&E source crop (from ``$PATHGAN_DATA``, default ``<project>/../shared/data``),
upsampled 2x (sources are ~0.5 um/px, the slide is 0.25 um/px by default).
Everything is deterministic given ``--seed``.

File format (classic Aperio): BigTIFF, page 0 = level 0 tiled 256x256 JPEG with
PhotometricInterpretation RGB, the JPEG streams hold *RGB* samples (no colour
transform), 4:4:4, component ids 0,1,2, no JFIF/Adobe marker, quantisation and
Huffman tables shared in the JPEGTables tag (abbreviated tile streams) - the
same layout as CMU-1.svs. Page 1 = stripped JPEG thumbnail (~1024 px wide).
Pages 2.. = pyramid levels at downsample 4, 16, 64 (box filter), tiled 256.
Every page carries an Aperio ImageDescription (MPP, AppMag).

The level-0 pixels are generated tile row by tile row in a pool of worker
processes, JPEG-encoded there and streamed to ``tifffile`` as pre-encoded
bytes; the downsample-4 level goes to a temporary raw file and is re-read one
tile row at a time, so memory stays bounded (a few hundred MB).

Also writes ``OUT_truth.npy``: float32 [rows, cols] tissue fraction of each
512x512 level-0 patch (0.5 um/px at the default 0.25 um/px) from the island
layout (ground truth), and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import multiprocessing as mp
import os
import resource
import sys
import time

import numpy as np

TILE = 256
LEVEL_DOWNSAMPLES = (4, 16, 64)
BG_RGB = 240
SOF0, SOS, DQT, DHT = 0xC0, 0xDA, 0xDB, 0xC4

# ---------------------------------------------------------------- data ----


def data_dir() -> str:
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
    path = os.path.abspath(os.environ.get("PATHGAN_DATA") or default)
    if not os.path.isdir(os.path.join(path, "slides")):
        raise SystemExit(
            f"make_slide: real H&E data folder not found at {path!r} "
            "(set PATHGAN_DATA to the shared data folder that holds slides/ and images/)"
        )
    return path


# Dense-tissue sources (file name, optional crop box x0, y0, x1, y1 in source px).
_IMAGE_SOURCES = [
    "glands.png",
    "stardist_histo.jpg",
    "template1.png",
    "template2.png",
    "template3.png",
    "template4.png",
    "tiatoolbox_target_image.png",
    "torchstain_source.png",
    "torchstain_target.png",
]
_CRC_SKIP = ("BACK-", "ADI-")
# Tissue-dense part of CMU-1-Small-Region (level 0, 0.499 um/px).
_CMU_CROP = (560, 1350, 1660, 2950)


def load_sources(root: str, upsample: int = 2) -> list[np.ndarray]:
    """Real H&E crops as uint8 RGB arrays, upsampled ``upsample`` x (bicubic)."""
    from PIL import Image

    imgs: list[Image.Image] = []
    slide_path = os.path.join(root, "slides", "CMU-1-Small-Region.svs")
    if os.path.exists(slide_path):
        import openslide

        with openslide.OpenSlide(slide_path) as s:
            x0, y0, x1, y1 = _CMU_CROP
            imgs.append(s.read_region((x0, y0), 0, (x1 - x0, y1 - y0)).convert("RGB"))
    for name in _IMAGE_SOURCES:
        p = os.path.join(root, "images", name)
        if os.path.exists(p):
            imgs.append(Image.open(p).convert("RGB"))
    for p in sorted(glob.glob(os.path.join(root, "tiles", "crc_classes", "*.tif"))):
        if not os.path.basename(p).startswith(_CRC_SKIP):
            imgs.append(Image.open(p).convert("RGB"))
    if not imgs:
        raise SystemExit(f"make_slide: no source images found under {root!r}")
    out = []
    for im in imgs:
        if upsample != 1:
            im = im.resize((im.width * upsample, im.height * upsample), Image.BICUBIC)
        out.append(np.ascontiguousarray(np.asarray(im, dtype=np.uint8)))
    return out


# -------------------------------------------------------------- layout ----

N_HARM = 4  # boundary harmonics k = 2..5


def make_layout(width: int, height: int, src_areas: list[float], seed: int, target_frac: float) -> np.ndarray:
    """Island parameters, one row per island:
    cx, cy, a, b, phi, c2..c5, p2..p5, R(bounding radius), src, ox, oy, transpose."""
    rng = np.random.default_rng(seed)
    # larger sources are picked more often (small ones repeat visibly when mirror-tiled)
    w_src = np.sqrt(np.asarray(src_areas, dtype=np.float64))
    w_src /= w_src.sum()
    ref_area = 65536.0 * 49152.0
    n = max(6, round(36 * math.sqrt(width * height / ref_area)))
    rel = rng.lognormal(0.0, 0.45, n)
    areas = np.sort(target_frac * width * height * rel / rel.sum())[::-1]
    rows = []
    max_r = 0.45 * min(width, height)
    for area in areas:
        ecc = rng.uniform(0.55, 1.0)
        c = rng.uniform(0.0, 0.07, N_HARM)
        ph = rng.uniform(0.0, 2 * math.pi, N_HARM)
        a = math.sqrt(area / (math.pi * ecc))
        mult = 1.0 + c.sum()
        if a * mult > max_r:
            a = max_r / mult
        b = max(a * ecc, min(1000.0, a))
        R = a * mult
        phi = rng.uniform(0, math.pi)
        best = None
        for _attempt in range(400):
            cx = rng.uniform(R + 256, width - R - 256) if width > 2 * R + 512 else width / 2
            cy = rng.uniform(R + 256, height - R - 256) if height > 2 * R + 512 else height / 2
            # smallest normalised gap to already placed islands (bounding circles)
            gap = min((math.hypot(cx - r[0], cy - r[1]) / (R + r[13]) for r in rows), default=9.0)
            if best is None or gap > best[0]:
                best = (gap, cx, cy)
            if gap > 1.05:
                break
        _, cx, cy = best
        src = rng.choice(len(w_src), p=w_src)
        ox, oy = rng.integers(0, 1 << 20, 2)
        tr = rng.integers(2)
        rows.append([cx, cy, a, b, phi, *c, *ph, R, src, ox, oy, tr])
    return np.array(rows, dtype=np.float64)


def island_f(isl: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Signed shape function: < 0 inside the island."""
    cx, cy, a, b, phi = isl[:5]
    cs, sn = math.cos(phi), math.sin(phi)
    dx = (X - cx).astype(np.float32)
    dy = (Y - cy).astype(np.float32)
    un = (dx * cs + dy * sn) / a
    vn = (dy * cs - dx * sn) / b
    rho = np.hypot(un, vn)
    th = np.arctan2(vn, un)
    bnd = np.ones_like(rho)
    for k in range(N_HARM):
        bnd += np.float32(isl[5 + k]) * np.cos((k + 2) * th + np.float32(isl[5 + N_HARM + k]))
    return rho - bnd


def truth_mask(layout: np.ndarray, width: int, height: int, step: int = 16) -> np.ndarray:
    """Boolean tissue mask sampled at block centres every ``step`` level-0 px."""
    gh, gw = height // step, width // step
    mask = np.zeros((gh, gw), dtype=bool)
    for isl in layout:
        R = isl[13]
        x0 = max(0, int((isl[0] - R) // step))
        x1 = min(gw, int((isl[0] + R) // step) + 2)
        y0 = max(0, int((isl[1] - R) // step))
        y1 = min(gh, int((isl[1] + R) // step) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        X = (np.arange(x0, x1) * step + step / 2)[None, :]
        Y = (np.arange(y0, y1) * step + step / 2)[:, None]
        mask[y0:y1, x0:x1] |= island_f(isl, X, Y) < 0
    return mask


# ---------------------------------------------------------------- JPEG ----


def encode_aperio_jpeg(tile: np.ndarray, quality: int) -> tuple[bytes, bytes]:
    """Encode an RGB tile the classic-Aperio way.

    Returns (abbreviated stream, tables stream). The stream holds RGB samples
    (no YCbCr transform), 4:4:4, component ids 0,1,2, no APPn markers (so no
    JFIF/Adobe marker); DQT/DHT are moved to the tables stream (JPEGTables).
    """
    import imagecodecs

    full = imagecodecs.jpeg8_encode(
        tile, level=quality, colorspace="RGB", outcolorspace="RGB", subsampling=(1, 1)
    )
    tables = []
    frame = []
    i = 2
    while True:
        m = full[i + 1]
        L = (full[i + 2] << 8) | full[i + 3]
        seg = full[i : i + 2 + L]
        if m in (DQT, DHT):
            tables.append(seg)
        elif m == SOF0:
            seg = bytearray(seg)
            for k in range(seg[9]):
                seg[10 + 3 * k] = k
            frame.append(bytes(seg))
        elif m == SOS:
            seg = bytearray(seg)
            for k in range(seg[4]):
                seg[5 + 2 * k] = k
            frame.append(bytes(seg))
            rest = full[i + 2 + L :]
            break
        elif 0xE0 <= m <= 0xEF:
            pass  # drop APP0 / APP14 (Adobe) markers
        else:
            raise ValueError(f"unexpected JPEG marker 0xFF{m:02X}")
        i += 2 + L
    return b"\xff\xd8" + b"".join(frame) + rest, b"\xff\xd8" + b"".join(tables) + b"\xff\xd9"


def pad_tile(a: np.ndarray, h: int = TILE, w: int = TILE) -> np.ndarray:
    if a.shape[0] == h and a.shape[1] == w:
        return a
    return np.pad(a, ((0, h - a.shape[0]), (0, w - a.shape[1]), (0, 0)), mode="edge")


def down4(a: np.ndarray) -> np.ndarray:
    """4x4 box-filter downsample of uint8 [H, W, 3] (H, W multiples of 4)."""
    r = a[0::4].astype(np.uint16)
    r += a[1::4]
    r += a[2::4]
    r += a[3::4]
    c = r[:, 0::4] + r[:, 1::4]
    c += r[:, 2::4]
    c += r[:, 3::4]
    c += 8
    c >>= 4
    return c.astype(np.uint8)


# ----------------------------------------------------- worker globals ----

_G: dict = {}


def _bank_index(tx: int, ty: int, seed: int, n: int) -> int:
    return ((tx * 7919) ^ (ty * 104729) ^ (seed * 15485863)) % n


def render_tile(tx: int, ty: int) -> tuple[np.ndarray, int]:
    """Level-0 pixels of tile (tx, ty); kind 0 = pure background, 1 = tissue."""
    layout = _G["layout"]
    x0, y0 = tx * TILE, ty * TILE
    bgi = _bank_index(tx, ty, _G["seed"], len(_G["bg_px"]))
    cand = [
        isl for isl in layout
        if isl[0] - isl[13] < x0 + TILE and isl[0] + isl[13] > x0
        and isl[1] - isl[13] < y0 + TILE and isl[1] + isl[13] > y0
    ]
    if not cand:
        return _G["bg_px"][bgi], 0
    gx = (x0 + 8 + 16 * np.arange(16, dtype=np.float64))[None, :]
    gy = (y0 + 8 + 16 * np.arange(16, dtype=np.float64))[:, None]
    out = None
    X = Y = None
    for isl in cand:
        f = island_f(isl, gx, gy)
        if f.min() > 0.05:
            continue  # tile fully outside this island
        src = _G["sources"][int(isl[14])]
        sh, sw = src.shape[:2]
        ox, oy, tr = int(isl[15]), int(isl[16]), int(isl[17])
        ri = (y0 + oy + np.arange(TILE)) % (2 * (sw if tr else sh))
        ci = (x0 + ox + np.arange(TILE)) % (2 * (sh if tr else sw))
        if tr:
            ri = np.where(ri >= sw, 2 * sw - 1 - ri, ri)
            ci = np.where(ci >= sh, 2 * sh - 1 - ci, ci)
            tex = src[np.ix_(ci, ri)].transpose(1, 0, 2)
        else:
            ri = np.where(ri >= sh, 2 * sh - 1 - ri, ri)
            ci = np.where(ci >= sw, 2 * sw - 1 - ci, ci)
            tex = src[np.ix_(ri, ci)]
        if f.max() < -0.05:
            out = np.ascontiguousarray(tex)  # fully inside
            continue
        if X is None:
            X = (x0 + np.arange(TILE, dtype=np.float64))[None, :]
            Y = (y0 + np.arange(TILE, dtype=np.float64))[:, None]
        m = island_f(isl, X, Y) < 0
        if not m.any():
            continue
        if out is None:
            out = _G["bg_px"][bgi].copy()
        out[m] = tex[m]
    if out is None:
        return _G["bg_px"][bgi], 0
    return out, 1


def _row_task(ty: int):
    """Render, encode and 4x-downsample one level-0 tile row."""
    ntx = _G["ntx"]
    q = _G["quality"]
    strip = np.empty((TILE, ntx * TILE, 3), dtype=np.uint8)
    enc = []
    ntissue = 0
    for tx in range(ntx):
        px, kind = render_tile(tx, ty)
        strip[:, tx * TILE : (tx + 1) * TILE] = px
        if kind == 0:
            enc.append(_G["bg_bytes"][_bank_index(tx, ty, _G["seed"], len(_G["bg_px"]))])
        else:
            b, t = encode_aperio_jpeg(px, q)
            if t != _G["tables"]:
                raise RuntimeError("JPEG tables differ between tiles")
            enc.append(b)
            ntissue += 1
    return ty, enc, down4(strip), ntissue


def _level_row_task(args):
    """Encode one tile row of a lower level read from the raw file."""
    path, lw, lh, ty = args
    q = _G["quality"]
    rows = min(TILE, lh - ty * TILE)
    with open(path, "rb") as fh:
        fh.seek(ty * TILE * lw * 3)
        band = np.frombuffer(fh.read(rows * lw * 3), dtype=np.uint8).reshape(rows, lw, 3)
    enc = []
    for tx in range((lw + TILE - 1) // TILE):
        b, t = encode_aperio_jpeg(pad_tile(band[:, tx * TILE : (tx + 1) * TILE]), q)
        if t != _G["tables"]:
            raise RuntimeError("JPEG tables differ between tiles")
        enc.append(b)
    return ty, enc


def _child_rss(_=None):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------- main ----


def aperio_desc(kind: str, W: int, H: int, q: int, mpp: float, stem: str, seed: int, lw=0, lh=0) -> str:
    mag = round(10.0 / mpp)
    head = "Aperio Image Library v12.0.15 \r\n"
    if kind == "base":
        head += f"{W}x{H} [0,0 {W}x{H}] ({TILE}x{TILE}) JPEG/RGB Q={q}"
    elif kind == "thumb":
        head += f"{W}x{H} -> {lw}x{lh} - "
    else:
        head += f"{W}x{H} [0,0 {W}x{H}] ({TILE}x{TILE}) -> {lw}x{lh} JPEG/RGB Q={q}"
    props = [
        f"AppMag = {mag}",
        "StripeWidth = 2040",
        "ScanScope ID = PATHGAN-BENCH",
        f"Filename = {stem}",
        "Date = 01/01/26",
        "Time = 00:00:00",
        f"MPP = {mpp:.4f}",
        "Left = 0.000000",
        "Top = 0.000000",
        f"OriginalWidth = {W}",
        f"OriginalHeight = {H}",
        f"Synthetic = mosaic of real H&E tissue, seed {seed}",
    ]
    return head + "|" + "|".join(props)


def build(out: str, width: int, height: int, mpp: float, quality: int, seed: int,
          workers: int = 2, target_frac: float = 0.28, tmpdir: str | None = None) -> dict:
    import tifffile
    from PIL import Image

    if width % 1024 or height % 1024:
        raise SystemExit("make_slide: width and height must be multiples of 1024")
    t_start = time.perf_counter()
    root = data_dir()
    sources = load_sources(root)
    layout = make_layout(width, height, [s.shape[0] * s.shape[1] for s in sources], seed, target_frac)

    rng = np.random.default_rng(seed + 1)
    bg_px = []
    base = BG_RGB + np.array([1, -1, 2])
    for _ in range(32):
        noise = rng.normal(0.0, 1.6, (TILE, TILE, 3))
        bg_px.append(np.clip(base + noise, 0, 255).round().astype(np.uint8))
    encs = [encode_aperio_jpeg(p, quality) for p in bg_px]
    tables = encs[0][1]
    assert all(t == tables for _, t in encs)

    ntx, nty = width // TILE, height // TILE
    _G.update(layout=layout, sources=sources, bg_px=bg_px, bg_bytes=[e for e, _ in encs],
              tables=tables, quality=quality, seed=seed, ntx=ntx)

    stem = os.path.splitext(os.path.basename(out))[0]
    tmpdir = tmpdir or os.path.dirname(os.path.abspath(out))
    raw1 = os.path.join(tmpdir, f".{stem}.ds4.raw")
    w1, h1 = width // 4, height // 4
    w2, h2 = width // 16, height // 16
    lvl2 = np.empty((h2, w2, 3), dtype=np.uint8)
    counts = {"tissue_tiles": 0, "tiles": ntx * nty}

    jpeg_kw = dict(
        dtype=np.uint8, photometric="rgb", compression="jpeg", subsampling=(1, 1),
        compressionargs={"outcolorspace": "rgb"}, jpegtables=tables, metadata=None,
        software=False,
    )
    ctx = mp.get_context("fork")
    times = {}
    with ctx.Pool(workers) as pool, open(raw1, "wb") as fraw, tifffile.TiffWriter(out, bigtiff=True) as tw:

        def level0_tiles():
            for ty, enc, ds4, nt in pool.imap(_row_task, range(nty), chunksize=1):
                counts["tissue_tiles"] += nt
                fraw.write(ds4.tobytes())
                lvl2[ty * 16 : (ty + 1) * 16] = down4(ds4)
                yield from enc
                if ty % 16 == 15 or ty == nty - 1:
                    print(f"  level 0: tile row {ty + 1}/{nty}  "
                          f"{time.perf_counter() - t_start:.0f}s", file=sys.stderr, flush=True)

        tw.write(data=level0_tiles(), shape=(height, width, 3), tile=(TILE, TILE),
                 description=aperio_desc("base", width, height, quality, mpp, stem, seed), **jpeg_kw)
        fraw.close()
        times["level0_s"] = time.perf_counter() - t_start

        # thumbnail (page 1): stripped JPEG, ~1024 px on the long side
        tscale = 1024 / max(w2, h2)
        tw_, th_ = max(1, round(w2 * tscale)), max(1, round(h2 * tscale))
        thumb = np.asarray(Image.fromarray(lvl2).resize((tw_, th_), Image.BOX)) if tscale != 1 else lvl2
        tbytes, ttab = encode_aperio_jpeg(np.ascontiguousarray(thumb), quality)
        assert ttab == tables
        tw.write(data=iter([tbytes]), shape=(th_, tw_, 3), rowsperstrip=th_,
                 description=aperio_desc("thumb", width, height, quality, mpp, stem, seed, tw_, th_), **jpeg_kw)

        # level 1 (downsample 4) from the raw file
        n1 = (h1 + TILE - 1) // TILE

        def level1_tiles():
            for _, enc in pool.imap(_level_row_task, [(raw1, w1, h1, ty) for ty in range(n1)], chunksize=1):
                yield from enc

        tw.write(data=level1_tiles(), shape=(h1, w1, 3), tile=(TILE, TILE),
                 description=aperio_desc("level", width, height, quality, mpp, stem, seed, w1, h1), **jpeg_kw)

        # levels 2, 3 (downsample 16, 64) in memory (small)
        for arr in (lvl2, down4(lvl2)):
            lh, lw = arr.shape[:2]

            def small_tiles(arr=arr, lh=lh, lw=lw):
                for ty in range(0, lh, TILE):
                    for tx in range(0, lw, TILE):
                        b, t = encode_aperio_jpeg(pad_tile(arr[ty : ty + TILE, tx : tx + TILE]), quality)
                        assert t == tables
                        yield b

            tw.write(data=small_tiles(), shape=(lh, lw, 3), tile=(TILE, TILE),
                     description=aperio_desc("level", width, height, quality, mpp, stem, seed, lw, lh), **jpeg_kw)
        child_rss = max(pool.map(_child_rss, range(workers * 4), chunksize=1))
    os.remove(raw1)
    wall = time.perf_counter() - t_start

    mask = truth_mask(layout, width, height, step=16)
    fp = 512 // 16
    frac = mask[: (mask.shape[0] // fp) * fp, : (mask.shape[1] // fp) * fp]
    frac = frac.reshape(frac.shape[0] // fp, fp, frac.shape[1] // fp, fp).mean(axis=(1, 3)).astype(np.float32)
    truth_path = os.path.splitext(out)[0] + "_truth.npy"
    np.save(truth_path, frac)
    return {
        "out": out,
        "size_bytes": os.path.getsize(out),
        "width": width, "height": height, "mpp": mpp, "quality": quality, "seed": seed,
        "islands": len(layout), "sources": len(sources),
        "tissue_area_fraction": round(float(mask.mean()), 4),
        "level0_tiles": counts["tiles"], "level0_tiles_with_tissue": counts["tissue_tiles"],
        "patches_512_grid": int(frac.size),
        "patches_512_ge50pct_tissue_truth": int((frac >= 0.5).sum()),
        "truth_npy": truth_path,
        "build_s": round(wall, 1), "level0_s": round(times["level0_s"], 1),
        "peak_rss_main_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_worker_mb": round(child_rss / 1024, 1),
    }


def verify(path: str, png_prefix: str | None = None) -> dict:
    """Open ``path`` with openslide and tiffslide; compare pixels of a fully
    tissue 512x512 level-0 region with each other and with the mosaic that was
    encoded (needs the worker globals from ``build`` in this process)."""
    import openslide
    import tiffslide
    from PIL import Image

    res: dict = {}
    with openslide.OpenSlide(path) as s:
        p = s.properties
        res.update(vendor=p.get("openslide.vendor"), mpp_x=p.get("openslide.mpp-x"),
                   mpp_y=p.get("openslide.mpp-y"), objective=p.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER),
                   level_dimensions=[list(d) for d in s.level_dimensions],
                   level_downsamples=[round(d, 3) for d in s.level_downsamples],
                   associated=sorted(s.associated_images))
        frac = np.load(os.path.splitext(path)[0] + "_truth.npy")
        iy, ix = np.argwhere(frac >= 1.0)[len(np.argwhere(frac >= 1.0)) // 2]
        x, y = int(ix) * 512, int(iy) * 512
        a_os = np.asarray(s.read_region((x, y), 0, (512, 512)).convert("RGB"))
        thumb = s.associated_images["thumbnail"].convert("RGB")
        lvl_last = np.asarray(s.read_region((0, 0), s.level_count - 1, s.level_dimensions[-1]).convert("RGB"))
    with tiffslide.TiffSlide(path) as t:
        a_ts = np.asarray(t.read_region((x, y), 0, (512, 512)).convert("RGB"))
    res["region_xy"] = [x, y]
    res["openslide_eq_tiffslide"] = bool(np.array_equal(a_os, a_ts))
    res["openslide_vs_tiffslide_max_abs"] = int(np.abs(a_os.astype(int) - a_ts).max())
    if _G:
        truth = np.concatenate([
            np.concatenate([render_tile(x // TILE + i, y // TILE + j)[0] for i in range(2)], axis=1)
            for j in range(2)], axis=0)
        d = np.abs(a_os.astype(np.int16) - truth)
        res["openslide_vs_encoded_mean_abs"] = round(float(d.mean()), 3)
        res["openslide_vs_encoded_mean_rgb"] = [[round(float(v), 1) for v in a_os.reshape(-1, 3).mean(0)],
                                                [round(float(v), 1) for v in truth.reshape(-1, 3).mean(0)]]
    if png_prefix:
        Image.fromarray(a_os).save(png_prefix + "_l0_crop.png")
        thumb.save(png_prefix + "_thumb.png")
        Image.fromarray(lvl_last).save(png_prefix + "_lowest_level.png")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=65536)
    ap.add_argument("--height", type=int, default=49152)
    ap.add_argument("--mpp", type=float, default=0.25)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tissue", type=float, default=0.28, help="target tissue area fraction")
    ap.add_argument("--no-verify", action="store_true", help="skip the openslide/tiffslide checks")
    ap.add_argument("--png", default=None, help="save verification crops as PNG with this path prefix")
    a = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    info = build(a.out, a.width, a.height, a.mpp, a.quality, a.seed, a.workers, a.tissue)
    print(json.dumps(info, indent=1), flush=True)
    if not a.no_verify:
        print(json.dumps({"verify": verify(a.out, a.png)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
