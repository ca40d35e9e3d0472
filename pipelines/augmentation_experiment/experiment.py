"""Does adding GAN-synthetic patches help a small CNN trained on few real labelled patches?

The experiment (after Frid-Adar et al. 2018, who saw +7 points of sensitivity on liver lesions):

1. Tile the slides at ``mpp`` into ``patch_px`` patches (overlapping, ``stride_px``).
2. Label each patch by its measured nuclei density (:func:`pathgan.latents.nuclei_density`): the
   lowest ``tail`` fraction ``sparse``, the highest ``dense``; the middle is left out.
3. Hold out regions: the slide is cut into ``block_px`` squares (level-0 pixels) coloured like a
   checkerboard; patches wholly inside a "train" square can be trained on, patches wholly inside a
   "test" square are the test set, and patches straddling a square border are used by neither, so
   no test pixel is ever seen in training.
4. For each N in ``n_per_class``: the first N patches per class of one fixed random order of the
   training region (so the sets are nested: 50 of the 100, 100 of the 200). A class-conditional
   PathologyGAN (``train-latent --set labels=...``) is trained on exactly these 2N patches.
5. For each seed: a small CNN on the 2N real patches ("real") and one on the same patches plus
   ``synth_ratio * N`` synthetic patches per class from that GAN ("real+synthetic"), the same
   steps, augmentation and initialisation; both evaluated on the held-out test patches.

Seeds vary the CNN's initialisation and batch order and the synthetic draw; the real subset is
fixed per N because the GAN is trained on exactly it (a GAN per seed would cost 5x the time).

Everything here is a function of its arguments; ``run.py`` is the command line.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pathgan.data import (
    checkerboard_regions,  # one definition, shared with training's spatial hold-out
)

CLASSES = ("dense", "sparse")  # sorted: the conditional GAN's class order


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """What the augmentation experiment runs (see the module docstring)."""

    mpp: float = 0.5
    patch_px: int = 64
    stride_px: int = 32
    tail: float = 0.5
    block_px: int = 768
    n_per_class: tuple[int, ...] = (50, 100, 200)
    synth_ratio: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    image_px: int = 56
    cnn_steps: int = 400
    cnn_batch: int = 32
    cnn_lr: float = 1e-3
    gan_config: str = "pathologygan-56-cpu"  # a train preset name or a YAML file of TrainConfig fields
    gan_steps: int = 1500
    truncation: float = 1.0
    subset_seed: int = 0
    extra_gan_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.tail <= 0.5:
            raise ValueError(f"tail={self.tail} must be in (0, 0.5]")
        if self.block_px < 2 * self.patch_px:
            raise ValueError(f"block_px={self.block_px} must be at least twice patch_px={self.patch_px}")
        if not self.n_per_class or min(self.n_per_class) < 1:
            raise ValueError(f"n_per_class={self.n_per_class} must be positive counts")
        if self.synth_ratio < 0:
            raise ValueError(f"synth_ratio={self.synth_ratio} must be >= 0")


# ----------------------------------------------------------------------------- labels and regions
def density_labels(density: np.ndarray, tail: float) -> np.ndarray:
    """``"sparse"`` for the lowest ``tail`` fraction of ``density``, ``"dense"`` for the highest,
    ``""`` (unused) between; str object [N]."""
    lo, hi = np.quantile(density, [tail, 1 - tail])
    out = np.full(len(density), "", dtype=object)
    out[density <= lo] = "sparse"
    out[density >= hi] = "dense"
    return out


def nested_subsets(labels: np.ndarray, region: np.ndarray, sizes: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """Indices of the first n training-region patches per class of one seeded order, for each n
    (so smaller sets are inside larger ones). Raises ValueError when a class has fewer than n."""
    rng = np.random.default_rng(seed)
    order = {c: rng.permutation(np.flatnonzero((labels == c) & (region == 0))) for c in CLASSES}
    out = {}
    for n in sizes:
        short = {c: len(o) for c, o in order.items() if len(o) < n}
        if short:
            raise ValueError(f"n={n} per class, but the training region has only {short} labelled patches")
        out[int(n)] = np.sort(np.concatenate([order[c][:n] for c in CLASSES]))
    return out


# ----------------------------------------------------------------------------- the classifier
class SmallCNN(nn.Module):
    """Four 3x3 conv blocks (16-32-64-64, batch norm, ReLU, 2x max-pool), global average pool,
    linear: [N, 3, H, W] in [0, 1] -> logits [N, 2]. About 60k parameters."""

    def __init__(self, n_classes: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in (16, 32, 64, 64):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5).mean(dim=(2, 3)))


def _crop_batch(images: np.ndarray, px: int, rng: np.random.Generator, train: bool) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, px, px]: random crop + one of 8 dihedral transforms when
    ``train``, the centre crop otherwise."""
    b, h = images.shape[0], images.shape[1]
    out = np.empty((b, px, px, 3), np.uint8)
    for i in range(b):
        if train:
            oy, ox = rng.integers(0, h - px + 1, size=2)
            img = images[i, oy : oy + px, ox : ox + px]
            img = np.rot90(img, int(rng.integers(4)))
            if rng.integers(2):
                img = img[:, ::-1]
        else:
            o = (h - px) // 2
            img = images[i, o : o + px, o : o + px]
        out[i] = img
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


def train_cnn(images: np.ndarray, labels: np.ndarray, *, cfg: ExperimentConfig, seed: int) -> SmallCNN:
    """A :class:`SmallCNN` trained for ``cfg.cnn_steps`` Adam steps on ``images`` uint8 [N, H, W, 3]
    (H >= image_px) with int labels [N]; batches drawn uniformly with replacement (seeded), class-
    balanced by inverse-frequency sampling weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SmallCNN(len(CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.cnn_lr)
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
    p = (1.0 / counts[labels]) / (1.0 / counts[labels]).sum()
    model.train()
    for _ in range(cfg.cnn_steps):
        idx = rng.choice(len(images), size=cfg.cnn_batch, p=p)
        x = _crop_batch(images[idx], cfg.image_px, rng, train=True)
        loss = nn.functional.cross_entropy(model(x), torch.from_numpy(labels[idx]).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: SmallCNN, images: np.ndarray, px: int, batch: int = 256) -> np.ndarray:
    """Probability of class index 0 (``dense``) for uint8 [N, H, W, 3], centre crops; float [N]."""
    out = []
    rng = np.random.default_rng(0)
    for s in range(0, len(images), batch):
        logits = model(_crop_batch(images[s : s + batch], px, rng, train=False))
        out.append(torch.softmax(logits, dim=1)[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def metrics(p_dense: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC-AUC, sensitivity (recall of ``dense``, index 0) and
    specificity at the 0.5 threshold."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    pred = np.where(p_dense >= 0.5, 0, 1)
    pos, neg = y == 0, y == 1
    return {
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "auc": float(roc_auc_score(pos.astype(int), p_dense)),
        "sensitivity": float(np.mean(pred[pos] == 0)) if pos.any() else math.nan,
        "specificity": float(np.mean(pred[neg] == 1)) if neg.any() else math.nan,
    }


# ----------------------------------------------------------------------------- summary
def summarise(rows: list[dict[str, Any]], metric_names: Sequence[str] = ("balanced_accuracy", "auc", "sensitivity")
              ) -> list[dict[str, Any]]:
    """Per N: mean and sample std over seeds of each metric per arm, and of the paired difference
    (real+synthetic minus real, same seed), with a paired t-test p-value (scipy)."""
    from scipy import stats

    out = []
    for n in sorted({r["n_per_class"] for r in rows}):
        by_arm = {arm: {r["seed"]: r for r in rows if r["n_per_class"] == n and r["arm"] == arm}
                  for arm in ("real", "real+synthetic")}
        seeds = sorted(set(by_arm["real"]) & set(by_arm["real+synthetic"]))
        entry: dict[str, Any] = {"n_per_class": n, "n_seeds": len(seeds)}
        for m in metric_names:
            a = np.array([by_arm["real"][s][m] for s in seeds])
            b = np.array([by_arm["real+synthetic"][s][m] for s in seeds])
            d = b - a
            entry[m] = {
                "real": (float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0),
                "real+synthetic": (float(b.mean()), float(b.std(ddof=1)) if len(b) > 1 else 0.0),
                "difference": (float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0),
                "p_paired_t": float(stats.ttest_rel(b, a).pvalue) if len(d) > 1 and d.std() > 0 else math.nan,
            }
        out.append(entry)
    return out


def markdown_table(summary: list[dict[str, Any]], metric: str = "balanced_accuracy") -> str:
    """One row per N: real, real+synthetic (mean +- std over seeds), paired difference and p."""
    lines = [f"| real per class | real: {metric} | real+synthetic | difference (paired) | p (paired t) |",
             "|---:|---:|---:|---:|---:|"]
    for e in summary:
        m = e[metric]
        lines.append(f"| {e['n_per_class']} | {m['real'][0]:.3f} +- {m['real'][1]:.3f} | "
                     f"{m['real+synthetic'][0]:.3f} +- {m['real+synthetic'][1]:.3f} | "
                     f"{m['difference'][0]:+.3f} +- {m['difference'][1]:.3f} | {m['p_paired_t']:.2g} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the pipeline
def write_tile_labels(path: Path, slide_id: str, coords: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Path:
    """A ``slide_id,x,y,label`` CSV of the patches ``idx`` (the GAN's labelled training set)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["slide_id", "x", "y", "label"])
        for i in idx:
            w.writerow([slide_id, int(coords[i, 0]), int(coords[i, 1]), labels[i]])
    return path


def train_gan(store: Path, labels_csv: Path, runs_root: Path, cfg: ExperimentConfig, *, progress: bool) -> Path:
    """A class-conditional PathologyGAN on the patches of ``labels_csv`` (``train-latent``'s API)."""
    from pathgan.config import TrainConfig, from_dict
    from pathgan.presets import read_yaml, resolve_config
    from pathgan.stages.train import train_latent

    base = read_yaml(resolve_config("train", cfg.gan_config, "gan_config"), "TrainConfig", "gan_config")
    settings = {**base, "steps": cfg.gan_steps, "sample_every": cfg.gan_steps, "checkpoint_every": cfg.gan_steps,
                "labels": str(labels_csv), "val_fraction": 0.0, "min_tissue_fraction": 0.0,
                "max_white_fraction": 1.0, **cfg.extra_gan_settings}
    return train_latent([store], from_dict(TrainConfig, settings), runs_root=runs_root, device="cpu",
                        progress=progress)


def synthetic_patches(run_dir: Path, m_per_class: int, seed: int, truncation: float) -> tuple[np.ndarray, np.ndarray]:
    """``m_per_class`` generated images per class (uint8 [2M, px, px, 3]) and their int labels."""
    from pathgan.latents import LatentModel

    model = LatentModel.load(run_dir)
    images, labels = [], []
    for k, name in enumerate(CLASSES):
        z = model.sample_z(m_per_class, seed=seed * 1000 + k)
        images.append(model.generate(z=z, class_name=name, truncation=truncation))
        labels.append(np.full(m_per_class, k, np.int64))
    return np.concatenate(images), np.concatenate(labels)


def run_experiment(store_path: Path, out: Path, cfg: ExperimentConfig, *, progress: bool = True) -> dict[str, Any]:
    """The whole experiment on one tiled store; writes ``out/results.json`` and ``out/results.md``."""
    from pathgan.latents import nuclei_density
    from pathgan.store import PatchStore

    out.mkdir(parents=True, exist_ok=True)
    store = PatchStore(store_path)
    patches = store.read(np.arange(len(store)))  # uint8 [N, P, P, 3]
    coords = np.asarray(store.coords)
    density = nuclei_density(patches)
    labels = density_labels(density, cfg.tail)
    footprint0 = float(store.attrs.get("footprint0", [store.patch_px * store.mpp])[0])
    region = checkerboard_regions(coords, footprint0, cfg.block_px)
    y_all = np.array([CLASSES.index(x) if x else -1 for x in labels])
    test = np.flatnonzero((region == 1) & (y_all >= 0))
    subsets = nested_subsets(labels, region, cfg.n_per_class, cfg.subset_seed)
    facts = {"store": str(store_path), "n_patches": len(store), "n_test": len(test),
             "test_per_class": {c: int(np.sum(y_all[test] == k)) for k, c in enumerate(CLASSES)},
             "train_region_per_class": {c: int(np.sum((labels == c) & (region == 0))) for c in CLASSES},
             "straddling": int(np.sum(region == -1)),
             "density_thresholds": [float(v) for v in np.quantile(density, [cfg.tail, 1 - cfg.tail])]}
    rows: list[dict[str, Any]] = []
    gan_runs: dict[int, str] = {}
    for n, idx in subsets.items():
        t0 = time.perf_counter()
        csv_path = write_tile_labels(out / f"labels-n{n}.csv", store.slide_id, coords, labels, idx)
        run_dir = train_gan(store_path, csv_path, out / "runs", cfg, progress=progress)
        gan_runs[n] = str(run_dir)
        gan_s = time.perf_counter() - t0
        m = round(cfg.synth_ratio * n)
        for seed in cfg.seeds:
            syn_x, syn_y = synthetic_patches(run_dir, m, seed, cfg.truncation)
            real_x = patches[idx]
            real_y = y_all[idx]
            # Real patches are 64 px, synthetic ones image_px: both are cropped to image_px, so
            # give the synthetic ones the same random-crop margin by reflection padding.
            pad = (real_x.shape[1] - syn_x.shape[1]) // 2
            syn_x = np.pad(syn_x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
            for arm, (x, y) in {"real": (real_x, real_y),
                                "real+synthetic": (np.concatenate([real_x, syn_x]),
                                                   np.concatenate([real_y, syn_y]))}.items():
                model = train_cnn(x, y, cfg=cfg, seed=seed)
                res = metrics(predict(model, patches[test], cfg.image_px), y_all[test])
                rows.append({"n_per_class": n, "arm": arm, "seed": seed, "n_real": len(real_x),
                             "n_synthetic": len(x) - len(real_x), **res})
                if progress:
                    print(f"  N={n:>4} seed={seed} {arm:<15} bal.acc {res['balanced_accuracy']:.3f} "
                          f"auc {res['auc']:.3f} sens {res['sensitivity']:.3f}", flush=True)
        if progress:
            print(f"N={n}: GAN {gan_s:.0f} s, total {time.perf_counter() - t0:.0f} s", flush=True)
    summary = summarise(rows)
    result = {"config": asdict(cfg), "data": facts, "gan_runs": gan_runs, "rows": rows, "summary": summary}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = "\n\n".join(f"**{m}**\n\n" + markdown_table(summary, m) for m in ("balanced_accuracy", "auc", "sensitivity"))
    (out / "results.md").write_text(table + "\n")
    return result
