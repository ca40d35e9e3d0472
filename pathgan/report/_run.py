"""What the run report shows, gathered from a run directory's own files.

A train-latent or train-translate run (``config.yaml``, ``stats.jsonl``, ``samples/step-*.png``,
``checkpoints/step-*.pt``, ``eval-*.json`` from ``pathgan evaluate`` or train-translate's
``eval.json``), or a train-encoder output (``RUN/encoder/`` or ``RUN/encoder.partial/`` while it
fits: the same files plus ``recon.png``). Read while training goes on: a stats line cut off by a
write in progress is skipped, and every other file is written atomically by the trainers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pathgan._lock import read_lock
from pathgan.errors import PathganError
from pathgan.runs import CONFIG_FILE, ENCODER_DIR, STATS_FILE, RunDir

__all__ = ["Checkpoint", "EvalResult", "RunReport", "RunReportKind", "gather_run", "is_encoder_dir"]

RunReportKind = Literal["train-latent", "train-translate", "train-encoder"]
_STEP = re.compile(r"step-(\d+)")


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """One ``checkpoints/step-*.pt``: its name, training step, size in bytes and mtime (epoch s)."""

    name: str
    step: int | None
    size_bytes: int
    mtime: float


@dataclass(frozen=True, kw_only=True)
class EvalResult:
    """One evaluation file: ``values`` as written, ``step`` of the checkpoint it scored (None when
    it does not say)."""

    path: Path
    step: int | None
    values: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """A run's files, read once. ``stats`` are the whole JSON rows of ``stats.jsonl`` in order;
    ``bad_stats_lines`` counts lines that were not (a line cut off by a write in progress). ``lock``
    is the owner recorded in the run's ``.pathgan.lock`` while a trainer holds it (else None)."""

    path: Path
    kind: RunReportKind
    config: dict[str, Any]
    config_text: str
    stats: tuple[dict[str, Any], ...]
    bad_stats_lines: int
    samples: tuple[tuple[int, Path], ...]
    evals: tuple[EvalResult, ...]
    checkpoints: tuple[Checkpoint, ...]
    images: tuple[tuple[str, Path], ...]
    target_steps: int | None
    lock: dict[str, Any] | None
    encoder: Path | None

    @property
    def provenance(self) -> dict[str, Any]:
        """What the run was trained on (``data`` of a training run, ``fitted_to`` of an encoder)."""
        return dict(self.config.get("data") or self.config.get("fitted_to") or {})

    @property
    def last_step(self) -> int | None:
        steps = [int(r["step"]) for r in self.stats if isinstance(r.get("step"), int | float)]
        return max(steps) if steps else None

    def series(self) -> dict[str, tuple[list[float], list[float]]]:
        """``key -> (steps, values)`` for every numeric key of ``stats`` except ``step`` itself;
        a row without the key or with null/non-finite there is left out of that key's line."""
        out: dict[str, tuple[list[float], list[float]]] = {}
        for row in self.stats:
            step = row.get("step")
            if not isinstance(step, int | float) or isinstance(step, bool):
                continue
            for key, value in row.items():
                if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                if not math.isfinite(value):
                    continue
                xs, ys = out.setdefault(key, ([], []))
                xs.append(float(step))
                ys.append(float(value))
        return out


def is_encoder_dir(path: Path) -> bool:
    """``RUN/encoder/`` or ``RUN/encoder.partial/`` of a train-latent run (its parent has ``config.yaml``)."""
    return (path.name in (ENCODER_DIR, f"{ENCODER_DIR}.partial") and (path.parent / CONFIG_FILE).is_file()
            and (path / CONFIG_FILE).is_file())


def _read_stats(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    bad = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return rows, 0
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def _step(name: str) -> int | None:
    m = _STEP.search(name)
    return int(m.group(1)) if m else None


def _read_evals(paths: list[Path]) -> list[EvalResult]:
    out = []
    for p in paths:
        try:
            values = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # being written by hand, or not ours: the page lists what it can read
        if not isinstance(values, dict):
            continue
        step = values.get("step") if isinstance(values.get("step"), int) else _step(str(values.get("checkpoint", "")))
        out.append(EvalResult(path=p, step=step if step is not None else _step(p.name), values=values))
    return sorted(out, key=lambda e: (e.step is None, e.step or 0, e.path.name))


def _checkpoints(folder: Path) -> list[Checkpoint]:
    out = []
    for p in sorted(folder.glob("step-*.pt")):
        try:
            st = p.stat()
        except FileNotFoundError:  # replaced while we listed
            continue
        out.append(Checkpoint(name=p.name, step=_step(p.name), size_bytes=st.st_size, mtime=st.st_mtime))
    return out


def _config(path: Path) -> tuple[dict[str, Any], str]:
    import yaml

    text = (path / CONFIG_FILE).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PathganError(f"{path / CONFIG_FILE} is not valid YAML: {err}") from err
    return (data if isinstance(data, dict) else {}), text


def gather_run(path: str | Path) -> RunReport:
    """Everything the run report shows about the run directory (or encoder folder) ``path``.

    Raises
    ------
    PathganError : ``path`` is neither a run directory of train-latent or train-translate nor a
        train-encoder folder; its ``config.yaml`` is unreadable.
    """
    path = Path(path)
    if is_encoder_dir(path):
        config, text = _config(path)
        kind: RunReportKind = "train-encoder"
        target = (config.get("encoder") or {}).get("steps")
        evals = _read_evals([path / "eval.json"] if (path / "eval.json").is_file() else [])
        images = tuple((title, path / name) for title, name in
                       (("held-out real patches (top row) and their noise-free reconstructions G(E(x)) (bottom row)", "recon.png"),)
                       if (path / name).is_file())
        lock_dir, encoder = path, None
    else:
        run = RunDir.open(path)
        config, text = _config(path)
        kind = "train-latent" if run.kind == "latent" else "train-translate"
        section = config.get("train" if run.kind == "latent" else "translate") or {}
        target = section.get("steps")
        names = sorted(path.glob("eval-*.json")) + ([path / "eval.json"] if (path / "eval.json").is_file() else [])
        evals = _read_evals(names)
        images = ()
        lock_dir = path
        encoder = next((d for d in (path / ENCODER_DIR, path / f"{ENCODER_DIR}.partial") if d.is_dir()), None)
    stats, bad = _read_stats(path / STATS_FILE)
    samples = sorted((s, p) for p in (path / "samples").glob("step-*.png") if (s := _step(p.name)) is not None)
    return RunReport(
        path=path, kind=kind, config=config, config_text=text, stats=tuple(stats), bad_stats_lines=bad,
        samples=tuple(samples), evals=tuple(evals), checkpoints=tuple(_checkpoints(path / "checkpoints")),
        images=images, target_steps=target if isinstance(target, int) else None,
        lock=read_lock(lock_dir), encoder=encoder,
    )
