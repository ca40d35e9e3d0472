"""The run report as HTML: curves, evaluations, the sample strip, checkpoints, provenance, config."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from pathgan.report._html import esc, fmt, page, script_json
from pathgan.report._images import jpeg_uri, read_rgb
from pathgan.report._plots import Series, line_chart_uri
from pathgan.report._run import EvalResult, RunReport
from pathgan.report._scripts import RUN_SCRIPT

__all__ = ["MAX_SAMPLE_GRIDS", "SAMPLE_MAX_PX", "curve_groups", "render_run", "strip_samples"]

#: Sample grids embedded in the strip: every one up to this many, else this many evenly spaced
#: (the first and the last always among them), each a JPEG of at most SAMPLE_MAX_PX a side.
MAX_SAMPLE_GRIDS = 60
SAMPLE_MAX_PX = 768
_NOT_CURVES = {"time", "train_min", "kimg", "epoch"}  # clocks and counters, not measurements


def curve_groups(keys: Sequence[str]) -> dict[str, list[str]]:
    """Which chart each stats key goes to: losses (``loss*``), gradient norms (``*grad_norm*``),
    throughput (``*per_s``, ``sec_per_step``) and the rest (``gp``, ``w_r2``, ...). Empty groups
    are left out; clocks and counters (time, train_min, kimg) are not plotted."""
    groups: dict[str, list[str]] = {"Losses": [], "Gradient norms": [], "Throughput": [], "Other": []}
    for key in keys:
        if key in _NOT_CURVES or key == "step":
            continue
        if key.startswith("loss") or key.endswith("_loss"):
            groups["Losses"].append(key)
        elif "grad_norm" in key:
            groups["Gradient norms"].append(key)
        elif key.endswith("per_s") or key.endswith("per_step"):
            groups["Throughput"].append(key)
        else:
            groups["Other"].append(key)
    return {k: v for k, v in groups.items() if v}


def strip_samples(samples: Sequence[tuple[int, Any]], limit: int = MAX_SAMPLE_GRIDS) -> list[tuple[int, Any]]:
    """``samples`` (sorted by step) thinned to at most ``limit``, evenly spaced, first and last kept."""
    if len(samples) <= limit:
        return list(samples)
    if limit < 2:
        return [samples[-1]]
    idx = sorted({round(i * (len(samples) - 1) / (limit - 1)) for i in range(limit)})
    return [samples[i] for i in idx]


def _curves(report: RunReport) -> str:
    series = report.series()
    groups = curve_groups(list(series))
    if not groups:
        return '<p class="empty">No numbers in stats.jsonl yet.</p>'
    figs = []
    for title, keys in groups.items():
        uri = line_chart_uri([Series(name=k, x=series[k][0], y=series[k][1]) for k in keys], title=title)
        figs.append(f'<figure class="curve" data-keys="{esc(" ".join(keys))}"><img src="{uri}" '
                    f'alt="{esc(title)}: {esc(", ".join(keys))}"><figcaption>{esc(", ".join(keys))}</figcaption></figure>')
    note = (f'<p class="sub">{report.bad_stats_lines} unreadable line(s) in stats.jsonl skipped '
            "(a line being written)</p>") if report.bad_stats_lines else ""
    return f'<div class="plots">{"".join(figs)}</div>{note}'


def _is_fid_eval(e: EvalResult) -> bool:
    return e.step is not None and ("kid_mean" in e.values or "fid" in e.values)


def _eval_charts(evals: Sequence[EvalResult]) -> str:
    scored = [e for e in evals if _is_fid_eval(e)]
    if not scored:
        return ""
    by_setting: dict[str, list[EvalResult]] = {}
    for e in scored:
        label = f"{e.values.get('extractor', '?')}, n={e.values.get('n_fake', '?')}, real={e.values.get('real_split', '?')}"
        by_setting.setdefault(label, []).append(e)
    single = len(by_setting) == 1
    kid, fid = [], []
    for label, es in by_setting.items():
        steps = [float(e.step or 0) for e in es]
        if any("kid_mean" in e.values for e in es):
            kid.append(Series(name="KID" if single else label, x=steps,
                              y=[1e3 * float(e.values.get("kid_mean", math.nan)) for e in es],
                              err=[1e3 * float(e.values.get("kid_std", 0.0)) for e in es]))
        if any("fid" in e.values for e in es):
            fid.append(Series(name="FID" if single else label, x=steps, y=[float(e.values.get("fid", math.nan)) for e in es]))
            if any("fid_floor" in e.values for e in es):
                fid.append(Series(name="real-vs-real floor" if single else f"floor, {label}", x=steps, dashed=True,
                                  y=[float(e.values.get("fid_floor", math.nan)) for e in es]))
    setting = f" ({next(iter(by_setting))})" if single else ""
    figs = []
    for title, ss, key in (("KID x1e3 (mean +- std over subsets)", kid, "kid"), ("FID", fid, "fid")):
        if ss:
            figs.append(f'<figure class="curve" data-keys="{key}"><img src="{line_chart_uri(ss, title=title)}" '
                        f'alt="{esc(title)} against step"><figcaption>{esc(title)} against step{esc(setting)}</figcaption>'
                        "</figure>")
    return f'<div class="plots">{"".join(figs)}</div>'


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v, 4)
    if isinstance(v, dict | list):
        return json.dumps(v)
    return str(v)


def _eval_table(evals: Sequence[EvalResult]) -> str:
    if not evals:
        return ('<p class="empty">No evaluation yet (train-latent: <code>pathgan evaluate RUN</code> writes '
                "eval-*.json; each one becomes a point here).</p>")
    fid_evals = [e for e in evals if "kid_mean" in e.values or "fid" in e.values]
    parts = []
    if fid_evals:
        head = ("<tr><th>file</th><th>step</th><th>extractor</th><th>n</th><th>real</th><th>KID x1e3</th>"
                "<th>FID (floor)</th><th>precision</th><th>recall</th></tr>")
        body = "".join(
            f"<tr><td>{esc(e.path.name)}</td><td class=\"num\">{esc(e.step if e.step is not None else '')}</td>"
            f"<td>{esc(e.values.get('extractor', ''))}</td><td class=\"num\">{esc(e.values.get('n_fake', ''))}</td>"
            f"<td>{esc(e.values.get('real_split', ''))}</td>"
            f"<td class=\"num\">{esc(fmt(1e3 * e.values['kid_mean'], 4) if 'kid_mean' in e.values else '')}"
            f"{esc(' +- ' + fmt(1e3 * e.values['kid_std'], 2) if 'kid_std' in e.values else '')}</td>"
            f"<td class=\"num\">{esc(fmt(e.values.get('fid'), 4))} ({esc(fmt(e.values.get('fid_floor'), 3))})</td>"
            f"<td class=\"num\">{esc(fmt(e.values.get('precision'), 3))}</td>"
            f"<td class=\"num\">{esc(fmt(e.values.get('recall'), 3))}</td></tr>"
            for e in fid_evals
        )
        parts.append(f'<table class="data" id="evals"><thead>{head}</thead><tbody>{body}</tbody></table>')
    for e in evals:
        if e in fid_evals:
            continue
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(_scalar(v))}</td></tr>" for k, v in e.values.items())
        parts.append(f'<div class="panel"><b>{esc(e.path.name)}</b><table class="kv">{rows}</table></div>')
    return "".join(parts)


def _samples(report: RunReport) -> str:
    if not report.samples:
        return '<p class="empty">No sample grids yet (samples/step-*.png).</p>'
    chosen = strip_samples(report.samples)
    data = []
    for step, path in chosen:
        try:
            data.append({"step": step, "src": jpeg_uri(read_rgb(path), SAMPLE_MAX_PX, 85)})
        except OSError:
            continue  # replaced while we read it: the next report has it
    note = (f" ({len(chosen)} of {len(report.samples)} grids, evenly spaced)" if len(chosen) < len(report.samples)
            else "")
    return (f'<div class="scrub" id="samples"><div><button type="button" id="play">play</button> '
            f'<span id="sample-label"></span>{esc(note)}</div>'
            f'<input type="range" id="scrub" min="0" max="{max(len(data) - 1, 0)}" value="{max(len(data) - 1, 0)}" '
            f'step="1" aria-label="training step of the sample grid">'
            f'<img id="sample-img" alt="">'
            f'<script type="application/json" id="samples-data">{script_json(data)}</script></div>')


def _images(report: RunReport) -> str:
    out = []
    for title, path in report.images:
        try:
            uri = jpeg_uri(read_rgb(path), SAMPLE_MAX_PX, 88)
        except OSError:
            continue  # being replaced: the next report has it
        out.append(f'<figure class="panel"><img src="{uri}" alt="{esc(title)}">'
                   f"<figcaption>{esc(path.name)}: {esc(title)}</figcaption></figure>")
    return "".join(out)


def _checkpoints(report: RunReport) -> str:
    if not report.checkpoints:
        return '<p class="empty">No checkpoint yet.</p>'
    rows = "".join(
        f"<tr><td>{esc(c.name)}</td><td class=\"num\">{esc(c.step if c.step is not None else '')}</td>"
        f"<td class=\"num\">{c.size_bytes / 1e6:,.1f}</td>"
        f"<td>{esc(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(c.mtime)))}</td></tr>"
        for c in report.checkpoints
    )
    total = sum(c.size_bytes for c in report.checkpoints) / 1e6
    return (f'<table class="data" id="checkpoints"><thead><tr><th>checkpoint</th><th>step</th><th>MB</th>'
            f"<th>written</th></tr></thead><tbody>{rows}</tbody></table>"
            f'<p class="sub">{len(report.checkpoints)} checkpoint(s), {total:,.1f} MB in all</p>')


def _kv(mapping: dict[str, Any]) -> str:
    if not mapping:
        return '<p class="empty">none recorded</p>'
    return ('<table class="kv">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(_scalar(v))}</td></tr>"
                                          for k, v in mapping.items()) + "</table>")


def _cards(report: RunReport) -> str:
    last = report.stats[-1] if report.stats else {}
    step = report.last_step
    target = report.target_steps
    of = f" / {target:,}" if target and (step is None or target >= step) else ""  # a resume may extend it
    cards = [("step", f"{step if step is not None else 0:,}{of}")]
    for key, name in (("kimg", "kimg"), ("train_min", "minutes training")):
        if isinstance(last.get(key), int | float):
            cards.append((name, fmt(float(last[key]), 4)))
    for key in ("d_img_per_s", "img_per_s"):
        if isinstance(last.get(key), int | float):
            cards.append(("images/s (last log)", fmt(float(last[key]), 4)))
    if isinstance(last.get("sec_per_step"), int | float):
        cards.append(("s/step (last log)", fmt(float(last["sec_per_step"]), 3)))
    cards += [("sample grids", str(len(report.samples))), ("checkpoints", str(len(report.checkpoints)))]
    scored = [e for e in report.evals if "kid_mean" in e.values]
    if scored:
        cards.append((f"KID x1e3 at step {scored[-1].step}", fmt(1e3 * scored[-1].values["kid_mean"], 4)))
    return "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards)


def render_run(report: RunReport) -> str:
    """The whole page for ``report``."""
    if report.lock is not None:
        owner = report.lock
        state = (f"in progress: {owner.get('command', 'a pathgan command')} holds the run "
                 f"(pid {owner.get('pid', '?')} on {owner.get('host', '?')}); rerun pathgan report to update this page")
    elif report.path.name.endswith(".partial"):
        state = "being fitted (or interrupted): this folder is renamed when the fit finishes"
    else:
        state = "not running"
    provenance = dict(report.provenance)
    stores = report.config.get("stores")
    if stores:
        provenance["stores"] = stores
    encoder = ""
    if report.encoder is not None:
        encoder = (f'<h2>Encoder</h2><div class="panel">{esc(report.encoder.name)}/ exists: '
                   f"<code>pathgan report {esc(report.encoder)}</code> draws its own page.</div>")
    images = _images(report)
    body = f"""<header>
<h1>pathgan {esc(report.kind)}: {esc(report.path.name)}</h1>
<div class="sub">{esc(report.path.resolve())} &middot; {esc(state)}</div>
<div class="cards" id="summary">{_cards(report)}</div>
</header>
<main>
<h2>Training curves <span class="sub">(stats.jsonl, {len(report.stats)} rows)</span></h2>
{_curves(report)}
<h2>Evaluation</h2>
{_eval_charts(report.evals)}
{_eval_table(report.evals)}
<h2>Sample grids over training</h2>
{_samples(report)}
{f"<h2>Images</h2>{images}" if images else ""}
<h2>Checkpoints</h2>
{_checkpoints(report)}
<h2>Data provenance</h2>
<div class="panel" id="provenance">{_kv(provenance)}</div>
{encoder}
<h2>Resolved configuration <span class="sub">(config.yaml)</span></h2>
<pre id="config">{esc(report.config_text)}</pre>
</main>"""
    return page(f"pathgan {report.kind} report: {report.path.name}", body, script=RUN_SCRIPT)
