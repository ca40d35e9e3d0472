"""MODEL_CARD.md of an exported model, and the run facts it is made from.

The card is a pure function of the export's ``config.json`` (:func:`model_card`), and every number in
it is copied from a file of the run: ``config.yaml`` (data provenance, hardware of each session),
``stats.jsonl`` (training time), ``eval-*.json`` (KID/FID, from ``pathgan evaluate``) and
``encoder/eval.json``. What the run does not record is written as "not recorded" or "not measured",
never estimated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["evaluations", "model_card", "training_time"]


# --------------------------------------------------------------------------------------- facts
def training_time(stats_path: Path) -> dict[str, Any] | None:
    """Minutes of training as logged in ``stats.jsonl``, summed over sessions (None without a log).

    ``train_min`` counts from the start of each session (``--resume`` starts a new one), so a drop
    in it marks a session boundary; each session contributes its last logged value. Time after a
    session's last log line is not counted.
    """
    try:
        lines = Path(stats_path).read_text().splitlines()
    except OSError:
        return None
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("train_min"), int | float):
            rows.append(row)
    if not rows:
        return None
    minutes, sessions, last = 0.0, 1, 0.0
    for row in rows:
        t = float(row["train_min"])
        if t < last:  # a new session started from zero
            minutes += last
            sessions += 1
        last = t
    minutes += last
    rates = sorted(float(r["d_img_per_s"]) for r in rows if isinstance(r.get("d_img_per_s"), int | float))
    return {"minutes": round(minutes, 2), "sessions": sessions, "last_logged_step": int(rows[-1].get("step", 0)),
            "kimg": rows[-1].get("kimg"), "median_img_per_s": rates[len(rates) // 2] if rates else None}


_EVAL_KEYS = ("extractor", "real_split", "real_slides", "n_real", "n_fake", "kid_mean", "kid_std", "kid_subset_size",
              "fid", "fid_matched", "fid_floor", "n_floor", "precision", "recall", "checkpoint", "image_px")


def evaluations(run_path: Path, checkpoint: str) -> tuple[list[dict[str, Any]], list[str]]:
    """``pathgan evaluate`` results of ``checkpoint`` in the run (sorted by file name), and the names
    of result files that describe other checkpoints (other weights: not reported as this model's)."""
    mine, others = [], []
    for path in sorted(Path(run_path).glob("eval-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "kid_mean" not in data:
            continue
        if data.get("checkpoint") == checkpoint:
            mine.append({"file": path.name, **{k: data[k] for k in _EVAL_KEYS if k in data}})
        else:
            others.append(path.name)
    return mine, others


# --------------------------------------------------------------------------------------- the card
def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.2f} MB"


def _millions(n: int) -> str:
    return f"{n / 1e6:.3f} M" if n >= 1e5 else f"{n:,}"


def _fmt(value: Any, spec: str = ".4g") -> str:
    return "n/a" if value is None else format(value, spec)


def _px(sizes: Any) -> str:
    sizes = list(sizes or [])
    return " / ".join(str(v) for v in sizes) if sizes else "(not recorded)"


def _slides(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(f"`{n}`" for n in names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def _hardware_lines(sessions: list[dict[str, Any]]) -> list[str]:
    if not sessions:
        return ["- Hardware: not recorded (the run was trained before pathgan recorded it)."]
    out = []
    for i, s in enumerate(sessions, 1):
        device = s.get("device_name") or s.get("device")
        if s.get("device") == "cpu":
            where = f"CPU: {s.get('cpu')}, {s.get('cpu_cores_usable')} usable core(s), {s.get('torch_threads')} torch thread(s)"
        else:
            where = f"{s.get('device')}: {device} x {s.get('processes', 1)} (host CPU: {s.get('cpu')})"
        out.append(f"- Session {i} (from step {s.get('from_step')}, started {s.get('started_utc')}): {where}; "
                   f"torch {s.get('torch')}, CUDA {s.get('cuda') or 'none'}, Python {s.get('python')}, {s.get('os')}.")
    return out


def _limitations(cfg: dict[str, Any]) -> list[str]:
    prov = cfg.get("provenance") or {}
    train = cfg.get("train") or {}
    train_slides, val_slides = list(prov.get("train_slides") or []), list(prov.get("val_slides") or [])
    out = []
    n = len(train_slides)
    few = " That is far too few to represent the variety of tissue types, stains and scanners; expect it to " \
          "model only tissue like these slides." if n < 20 else ""
    out.append(f"Trained on {n} slide{'s' if n != 1 else ''} ({_slides(train_slides)}).{few}")
    if not val_slides:
        held = (f" Squares of {train.get('holdout_block_um'):g} um on the training slides were kept out of training "
                "instead." if (train.get("holdout_block_um") or 0) > 0 else "")
        out.append(f"No slide was held out for validation.{held}")
    evals = cfg.get("evaluations") or []
    if not evals:
        out.append(f"Image quality was not measured: the run has no `pathgan evaluate` result for "
                   f"{cfg['generator']['source_checkpoint']}.")
    for e in evals:
        if e.get("real_split") == "train":
            out.append(f"The {e.get('extractor')} KID/FID in {e.get('file')} was measured against training patches, "
                       "not held-out ones: it does not show how the model generalises.")
        if str(e.get("extractor", "")).startswith("random"):
            out.append(f"{e.get('file')} uses random-projection features: its FID/KID are not comparable with "
                       "published (Inception) values.")
    mpp, image_px, patch_px = cfg.get("mpp"), cfg.get("image_px"), list(cfg.get("patch_px") or [])
    how = ""
    if mpp is not None and len(patch_px) == 1:
        tile_mpp = mpp * image_px / patch_px[0] if cfg.get("resize_mode") == "resize" else mpp
        how = f": tile slides for it with `pathgan tile --mpp {tile_mpp:g} --patch-px {patch_px[0]}`"
    out.append(f"It knows one magnification, {image_px}-px images at {_fmt(mpp, 'g')} um/px; other "
               f"resolutions are outside what it learned{how}.")
    if cfg.get("encoder") is None:
        out.append("No encoder: encoding images (`LatentModel.encode`, `pathgan encode`), and with it `classify`, "
                   "`roi` and class-guided `export-synthetic`, needs one: fit it on the run and export again.")
    check = cfg.get("float16_check")
    if check:
        out.append(f"Weights are stored as float16: on {check['n_images']} noise-free samples its images differ from "
                   f"the float32 run's by at most {check['max_abs_diff']}/255 per channel "
                   f"(mean {check['mean_abs_diff']:.3f}/255); encodings differ likewise.")
    out.append("pathgan does not record the stain protocol, scanner or patients of the slides; the data "
               "fingerprint identifies the exact patches.")
    out.append("Research use only. Not a medical device: never use its images or latents for diagnosis.")
    return out


def model_card(cfg: dict[str, Any], folder: str = "MODEL_DIR") -> str:
    """MODEL_CARD.md text for an export's ``config.json`` contents; ``folder`` is its folder's name."""
    model, prov, train = cfg["model"], cfg.get("provenance") or {}, cfg.get("train") or {}
    gen, enc = cfg["generator"], cfg.get("encoder")
    classes = cfg.get("class_names") or []
    lines = [f"# {cfg['model_id']}", "",
             f"A PathologyGAN-style generator of H&E tissue patches, exported by pathgan {cfg['pathgan_version']} "
             f"from the run `{cfg['source_run']}` ({gen['source_checkpoint']}, step {gen.get('step')}).", "",
             "## Architecture and size", "",
             f"- Model `{model['name']}`: {cfg['image_px']} px images, z_dim {cfg['z_dim']}, w_dim {cfg['w_dim']}; "
             f"style `{model['style']}`, weights `{model['weights']}`, upsampling `{model['upsample']}`, "
             f"output `{model['output']}`, noise {'on' if model.get('noise') else 'off'}.",
             f"- Mapping network {_millions(gen['parameters']['mapping'])} and generator "
             f"{_millions(gen['parameters']['generator'])} parameters (the EMA weights): `{gen['file']}`, "
             f"{_mb(gen['bytes'])}, {cfg['dtype']}."]
    if enc is not None:
        lines.append(f"- Encoder (image -> w) {_millions(enc['parameters'])} parameters, stage widths {enc['channels']}: "
                     f"`{enc['file']}`, {_mb(enc['bytes'])}, {cfg['dtype']}.")
    else:
        lines.append("- No encoder (the run had none fitted when it was exported).")
    if classes:
        lines.append(f"- Class-conditional on {len(classes)} classes: {', '.join(f'`{c}`' for c in classes)}.")
    else:
        lines.append("- Unconditional.")

    lines += ["", "## Training data", "",
              f"- Training slides ({len(prov.get('train_slides') or [])}): {_slides(list(prov.get('train_slides') or []))}.",
              f"- Validation slides ({len(prov.get('val_slides') or [])}): {_slides(list(prov.get('val_slides') or []))}.",
              f"- Images: {cfg['image_px']} px at {_fmt(cfg.get('mpp'), 'g')} um/px, "
              f"{'resized from' if cfg.get('resize_mode') == 'resize' else 'cropped from'} stored patches of "
              f"{_px(cfg.get('patch_px'))} px.",
              f"- Training patches: {prov.get('n_train_patches', 'not recorded')} (tissue fraction >= "
              f"{train.get('min_tissue_fraction')}, white fraction <= {train.get('max_white_fraction')}"
              + (f", hold-out squares of {train.get('holdout_block_um'):g} um kept out" if (train.get('holdout_block_um') or 0) > 0 else "")
              + ").",
              f"- Data fingerprint: `{prov.get('data_fingerprint', 'not recorded')}` (store schema "
              f"{prov.get('store_schema', 'not recorded')})."]
    if classes and prov.get("class_counts"):
        lines.append(f"- Class counts: {prov.get('class_counts')} (labels from {prov.get('label_source')}).")

    t = cfg.get("training") or {}
    lines += ["", "## Training", "",
              f"- {gen.get('step')} steps of batch {train.get('batch_size')} (configured: {train.get('steps')}), "
              f"loss `{train.get('loss')}`, EMA decay {train.get('ema_decay')}, DiffAugment "
              f"`{train.get('diffaugment')}`, seed {train.get('seed')}."]
    if t.get("time"):
        tm = t["time"]
        lines.append(f"- Training time: {tm['minutes']:.1f} min over {tm['sessions']} session(s), as logged in "
                     f"stats.jsonl (to step {tm['last_logged_step']}, {tm['kimg']} kimg; median "
                     f"{_fmt(tm['median_img_per_s'], '.1f')} images/s through the discriminator).")
    else:
        lines.append("- Training time: not recorded (no stats.jsonl).")
    lines += _hardware_lines(list(t.get("sessions") or []))

    lines += ["", "## Evaluation", ""]
    evals = cfg.get("evaluations") or []
    if evals:
        lines += ["KID and FID of the exported weights (`pathgan evaluate`), against real patches of the split named; "
                  "FID at small n is biased upwards, so compare `FID matched` with the real-vs-real `floor` at the same n.",
                  "",
                  "| file | extractor | real patches (split: slides) | n real / fake | KID x1e3 | FID | FID matched / floor (n) | precision / recall |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in evals:
            lines.append(
                f"| {e['file']} | {e.get('extractor')} | {e.get('real_split')}: {', '.join(e.get('real_slides') or [])} "
                f"| {e.get('n_real')} / {e.get('n_fake')} | {1e3 * e['kid_mean']:.2f} +- {1e3 * e['kid_std']:.2f} "
                f"| {_fmt(e.get('fid'), '.2f')} | {_fmt(e.get('fid_matched'), '.2f')} / {_fmt(e.get('fid_floor'), '.2f')} "
                f"({e.get('n_floor')}) | {_fmt(e.get('precision'), '.3f')} / {_fmt(e.get('recall'), '.3f')} |")
    else:
        lines.append(f"KID / FID: not measured for {gen['source_checkpoint']} (run `pathgan evaluate` on the run, "
                     "then export again).")
    if cfg.get("evaluations_of_other_checkpoints"):
        lines.append("")
        lines.append(f"Not reported (they describe other checkpoints): {', '.join(cfg['evaluations_of_other_checkpoints'])}.")
    if enc is not None:
        ev = enc.get("eval") or {}
        lines.append("")
        if ev:
            real = (f"; real patches ({ev.get('real_split')} split, n={ev.get('n_real')}): reconstruction MSE "
                    f"{_fmt(ev.get('real_recon_mse'))} vs {_fmt(ev.get('real_mean_w_mse'))} for the mean image"
                    if "real_recon_mse" in ev else "")
            lines.append(f"Encoder: w R^2 {_fmt(ev.get('w_r2'), '.3f')} on {ev.get('n_generated')} generated images{real}.")
        else:
            lines.append("Encoder: not measured (no encoder/eval.json).")

    lines += ["", "## Intended use", "",
              f"Research on H&E tissue morphology at {_fmt(cfg.get('mpp'), 'g')} um/px: sampling synthetic patches, "
              "walking and doing arithmetic in the latent space"
              + (", encoding real patches into w for retrieval, classifiers and region maps" if enc is not None else "")
              + ", and developing methods on synthetic data. Load it with",
              "", "```python", "from pathgan.latents import LatentModel",
              f"model = LatentModel.load(\"{folder}\")   # this folder",
              "images = model.generate(z=model.sample_z(16, seed=0))   # uint8 [16, "
              f"{cfg['image_px']}, {cfg['image_px']}, 3]", "```", "",
              "or give this folder to `pathgan encode --run`, `export-synthetic --run` and `evaluate` "
              "(with `--stores`).", "",
              "## Limitations", ""]
    lines += [f"- {x}" for x in _limitations(cfg)]
    lines += ["", "## Files", "", "| file | sha256 | bytes |", "|---|---|---|",
              f"| {gen['file']} | `{gen['sha256']}` | {gen['bytes']} |"]
    if enc is not None:
        lines.append(f"| {enc['file']} | `{enc['sha256']}` | {enc['bytes']} |")
    lines += ["", f"Source checkpoint sha256: `{gen['source_sha256']}`"
              + (f"; encoder checkpoint sha256: `{enc['source_sha256']}`" if enc is not None else "") + ".", ""]
    return "\n".join(lines)
