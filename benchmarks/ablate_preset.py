"""Short ablations of the CPU preset on bench_quality.py's data: one change at a time, from the old
``pathologygan-56-cpu`` preset to ``pathologygan-64-cpu``, each trained for ``--minutes`` (one torch
thread, ``--parallel`` variants at a time) and scored against the held-out test squares (KID x1e3 with n = 1,000
fakes, FID, precision/recall, per-pixel spread, checkerboard score).

Usage:  python benchmarks/ablate_preset.py [--minutes 5] [--only NAME ...] [--work .bench/quality]
Writes ``--work``/ablation/ablation.json and ablation.md (the README table); reuses the data and the
test-set features of bench_quality.py in the same ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_quality as B  # noqa: E402

from pathgan.presets import preset_path  # noqa: E402

OLD = str(preset_path("train", "pathologygan-56-cpu"))
NEW = str(preset_path("train", "pathologygan-64-cpu"))

# (name, preset yaml, TrainConfig overrides, ModelConfig overrides); each row adds one change to the
# row before it, so the table reads as a path from the old preset to the new one.
_STEPS: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("old preset (pathologygan-56-cpu as it was)", {}, {}),
    ("+ bilinear upsampling instead of 2x2 transposed convs", {}, {"upsample": "bilinear"}),
    ("+ non-saturating loss with lazy R1 (gamma 0.1, every 16) instead of relativistic + GP 0.65",
     {"loss": "nonsaturating", "penalty": "r1", "gp_weight": "0.1", "penalty_every": "16"}, {}),
    ("+ equalized learning rate, Adam (0, 0.99) at 2e-3 for G and D, EMA half-life 10 kimg",
     {"lr_g": "0.002", "lr_d": "0.002", "beta1": "0", "beta2": "0.99", "ema_kimg": "10", "ema_rampup": "0.05"},
     {"weights": "equalized", "output": "linear"}),
    ("+ modulated convolutions instead of AdaIN", {}, {"style": "modulated"}),
    ("+ 64 px from a 4x4 stem, wider G, batch 32",
     {"batch_size": "32"}, {"image_px": "64", "stem_px": "4", "w_dim": "128", "g_channels": "128,64,32,16",
                            "d_channels": "16,32,64,128", "g_stem_channels": "128", "attention_px": "16"}),
    ("+ bf16 autocast and channels_last (speed: more images in the same minutes)",
     {"precision": "bf16", "channels_last": "true"}, {}),
    ("+ noise inputs only up to 16 px, residual blocks only on the 4- and 8-px maps", {},
     {"noise_max_px": "16", "res_max_px": "8"}),
    ("+ DiffAugment colour and cutout, translation with reflect padding (= the preset)",
     {"diffaugment": "color,translation_reflect,cutout"}, {}),
]


def variants() -> list[tuple[str, list[str], list[str]]]:
    out, train, model = [], {}, {}
    for name, t, m in _STEPS:
        train, model = {**train, **t}, {**model, **m}
        out.append((name, [f"{k}={v}" for k, v in train.items()], [f"{k}={v}" for k, v in model.items()]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--n-fake", type=int, default=1000)
    ap.add_argument("--block-um", type=float, default=384.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=B.REPO / ".bench" / "quality")
    ap.add_argument("--parallel", type=int, default=2, help="rows trained at once (one torch thread each)")
    ap.add_argument("--only", nargs="*", type=int, help="row numbers to (re)run (default: all)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME|TRAIN;..|MODEL;..",
                    help="an extra row on top of the last step: 'name|k=v;k=v|k=v' (train | model overrides)")
    args = ap.parse_args()
    data_path = B.prepare(args.work, block_um=args.block_um, synthetic=False)
    rows = variants()
    for extra in args.extra:
        name, t, m = [*extra.split("|"), "", ""][:3]
        rows.append((name, rows[-1][1] + [x for x in t.split(";") if x], rows[-1][2] + [x for x in m.split(";") if x]))
    todo = [i for i in range(len(rows)) if args.only is None or i in args.only]
    root = args.work / "ablation"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for k in range(0, len(todo), args.parallel):
        procs = []
        for i in todo[k : k + args.parallel]:
            out = root / f"row{i}"
            if (out / f"snap-{args.minutes:g}min.pt").exists():
                continue
            cmd = [sys.executable, str(HERE / "bench_quality.py"), "--worker", "pathgan", "--seed", str(args.seed),
                   "--data", str(data_path), "--out", str(out), "--marks", f"{args.minutes:g}", "--threads", "1",
                   "--preset", OLD, *B._repeat("--train-set", rows[i][1]), *B._repeat("--model-set", rows[i][2])]
            procs.append(subprocess.Popen(cmd, env=env))
        if any(p.wait() for p in procs):
            raise SystemExit("an ablation worker failed")
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = np.load(data_path)
    ext = B._extractor("inception")
    cache = args.work / "features-inception"
    cache.mkdir(parents=True, exist_ok=True)
    results_path = root / "ablation.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for i in todo:
        run, _ = B.evaluate_snapshot(root / f"row{i}" / f"snap-{args.minutes:g}min.pt", data, ext, cache, args.n_fake,
                                     args.seed)
        results[str(i)] = {"name": rows[i][0], "train_set": rows[i][1], "model_set": rows[i][2],
                           "minutes": args.minutes, **run}
        print(json.dumps({"row": i, "name": rows[i][0], "kimg": run["kimg"],
                          **{k: round(v, 3) for k, v in run["scores"].items() if isinstance(v, float)}}), flush=True)
    results_path.write_text(json.dumps(results, indent=1))
    lines = ["| # | change (cumulative) | kimg | KID x1e3 | FID | precision / recall | spread | checkerboard |",
             "|---|---|---|---|---|---|---|---|"]
    for i in sorted(results, key=int):
        r = results[i]
        s = r["scores"]
        lines.append(f"| {i} | {r['name']} | {r['kimg']:.0f} | {B._fmt(s, 'kid_x1e3')} | {B._fmt(s, 'fid', 0)} | "
                     f"{s['precision']:.2f} / {s['recall']:.2f} | {s['spread']:.3f} | {s['checker']:.2f} |")
    (root / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
