"""kill -9 at chosen moments of tile, train-latent, encode and export-synthetic, then rerun.

Each trial (seeded) picks a fault point that an uninterrupted run of the command passes through
(``pathgan._faults``: plan, shard write, store finalisation, the moment before an atomic rename,
between the two renames that replace a folder, a training step, a latents chunk) and the n-th time
it is reached, runs the command with ``PATHGAN_FAULT=point:n`` so the whole process group dies by
SIGKILL right there, and checks:

* the fault was injected (exit by SIGKILL, and the point's log line says KILL point:n);
* nothing incomplete reads as complete: every output under a final name equals the uninterrupted
  run's, byte for byte (stores, previews, PNGs, CSVs) or tensor for tensor (checkpoints);
* after a plain rerun, everything equals the uninterrupted run and no temporary, trash or lock file
  is left.

Two trials per command by default; ``pytest --soak`` (``make test`` passes it, so CI runs it) runs
six, at other seeds. Each trial starts a fresh process (and, for tile, a Dask cluster), so a trial
costs seconds.
"""

from __future__ import annotations

import collections
import filecmp
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pathgan.runs import RunDir
from pathgan.store import PatchStore, expand_stores
from pathgan.store._latents import read_latents
from pathgan.train import load_checkpoint

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, str(HERE.parent / "_cli_tiny.py")]
TRIALS = 2
SOAK_TRIALS = 6
TINY_TRAIN = ["--set", "model=test-tiny-28", "--set", "steps=6", "--set", "batch_size=8", "--set", "checkpoint_every=2",
              "--set", "sample_every=2", "--set", "log_every=1", "--set", "min_tissue_fraction=0",
              "--set", "max_white_fraction=1", "--device", "cpu", "--no-progress"]


# ------------------------------------------------------------------------------------------- harness
def _env(fault: str | None, log: Path) -> dict[str, str]:
    env = {**os.environ, "PATHGAN_FAULT_LOG": str(log), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PATHGAN_FAULT", None)
    if fault:
        env["PATHGAN_FAULT"] = fault
    return env


def _run(args: list[str], log: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in its own session (so a fault kills only this run's process group)."""
    return subprocess.run([*CLI, *args], env=_env(fault, log), start_new_session=True, capture_output=True,
                          text=True, timeout=300, check=False)


def _counts(log: Path) -> dict[str, int]:
    """For each fault point, the most times any one process reached it."""
    per: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in log.read_text().splitlines():
        pid, _, name = line.partition(" ")
        if not name.startswith("KILL"):
            per[(pid, name)] += 1
    best: dict[str, int] = {}
    for (_, name), n in per.items():
        best[name] = max(best.get(name, 0), n)
    return best


def _choose(counts: dict[str, int], seed: int) -> tuple[str, int]:
    rng = np.random.default_rng(seed)
    names = sorted(counts)
    name = names[int(rng.integers(len(names)))]
    return name, int(rng.integers(1, counts[name] + 1))


def _kill(args: list[str], reference_log: Path, log: Path, seed: int) -> str:
    """Run ``args`` with a fault at a seeded point of the reference run; assert it was injected."""
    site, n = _choose(_counts(reference_log), seed)
    res = _run(args, log, fault=f"{site}:{n}")
    assert res.returncode == -signal.SIGKILL, (site, n, res.returncode, res.stderr[-2000:])
    assert f"KILL {site}:{n}" in log.read_text(), (site, n)
    print(f"{args[0]} seed {seed}: killed at {site}:{n}")  # shown with -s: which moments a soak covered
    return f"{site}:{n}"


def _leftovers(root: Path) -> list[str]:
    bad = []
    for p in root.rglob("*"):
        name = p.name
        if ".partial" in name or name.endswith(".trash") or name.startswith(".pathgan.lock"):
            bad.append(str(p.relative_to(root)))
    return bad


def _same_tree(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    """Every file of ``a`` exists in ``b`` with the same bytes, and vice versa."""
    fa = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and p.name not in skip)
    fb = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and p.name not in skip)
    assert fa == fb, (set(fa) ^ set(fb))
    _, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def _trials(request: pytest.FixtureRequest) -> range:
    return range(100, 100 + SOAK_TRIALS) if request.config.getoption("--soak") else range(TRIALS)


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small synthetic slides, their uninterrupted tiling, a tiny trained run with an encoder,
    the stores encoded by it and a synthetic export: every reference a trial compares against."""
    from _synth import paint_tissue, write_svs

    root = tmp_path_factory.mktemp("faults")
    slides = root / "slides"
    slides.mkdir()
    for i in range(2):
        img, _ = paint_tissue(2048, 1536, [(0.3, 0.45, 0.2), (0.72, 0.55, 0.18)], seed=20 + i)
        write_svs(slides / f"s{i}.svs", img, mpp=0.5, downsamples=(4,))
    w: dict[str, Path] = {"root": root, "slides": slides}
    for name, args in _commands(w).items():
        log = root / f"{name}.ref.log"
        res = _run(args(root / f"{name}.ref"), log)
        assert res.returncode == 0, (name, res.stdout[-2000:], res.stderr[-3000:])
        w[name] = root / f"{name}.ref"
        w[f"{name}.log"] = log
        if name == "train":  # the later commands use this run, fitted with an encoder
            run = next((root / "train.ref").iterdir())
            res = _run(["train-encoder", "--run", str(run), "--set", "steps=4", "--set", "batch_size=8", "--set", "n_eval=16",
                        "--set", "checkpoint_every=2", "--eval-refine-steps", "0", "--device", "cpu",
                        "--no-progress"], root / "encoder.log")
            assert res.returncode == 0, res.stderr[-3000:]
            w["run"] = run
    return w


def _commands(w: dict[str, Path]) -> dict[str, object]:
    """Each command as a function of its output folder, in the order the references are built."""
    tile = ["tile", str(w["slides"]), "--workers", "1", "--patch-px", "32", "--mpp", "1", "--patches-per-shard", "8",
            "--no-progress"]
    return {
        "tile": lambda out: [*tile, "--out", str(out)],
        "train": lambda out: ["train-latent", "--stores", str(w["root"] / "tile.ref"), "--out", str(out), *TINY_TRAIN],
    }


def _encode_args(w: dict[str, Path], stores: Path) -> list[str]:
    return ["encode", "--stores", str(stores), "--run", str(w["run"]), "--device", "cpu", "--batch-size", "16", "--no-progress"]


def _export_args(w: dict[str, Path], out: Path) -> list[str]:
    return ["export-synthetic", "--run", str(w["run"]), "--n", "40", "--format", "both", "--out", str(out),
            "--device", "cpu"]


@pytest.fixture(scope="module")
def encoded(world: dict[str, Path]) -> dict[str, Path]:
    """The tiled stores encoded without interruption, and an uninterrupted synthetic export."""
    ref = world["root"] / "encode.ref"
    shutil.copytree(world["tile"], ref)
    log = world["root"] / "encode.ref.log"
    res = _run(_encode_args(world, ref), log)
    assert res.returncode == 0, res.stderr[-3000:]
    exp_log = world["root"] / "export.ref.log"
    res = _run(_export_args(world, world["root"] / "export.ref"), exp_log)
    assert res.returncode == 0, res.stderr[-3000:]
    return {"stores": ref, "log": log, "export": world["root"] / "export.ref", "export.log": exp_log}


# ------------------------------------------------------------------------------------------- tests
def test_tile_killed_anywhere_then_rerun_equals_uninterrupted(world: dict[str, Path], tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    args = _commands(world)["tile"]  # type: ignore[operator]
    for seed in _trials(request):
        out = tmp_path / f"t{seed}"
        where = _kill(args(out), world["tile.log"], tmp_path / f"t{seed}.log", seed)
        for store in sorted(out.glob("*.zarr")):  # what looks complete is complete
            PatchStore(store)
            _same_tree(world["tile"] / store.name, store)
        res = _run(args(out), tmp_path / f"t{seed}.rerun.log")
        assert res.returncode == 0, (where, res.stderr[-2000:])
        for ref in sorted(world["tile"].glob("*.zarr")):
            _same_tree(ref, out / ref.name)
        _same_tree(world["tile"] / "previews", out / "previews")
        assert not _leftovers(out), (where, _leftovers(out))


def _final_state(run: Path) -> dict[str, torch.Tensor]:
    ck = load_checkpoint(RunDir(run).require_checkpoint())
    assert ck["step"] == 6
    return {f"{k}.{n}": t for k in ("models", "ema") for n, t in _flat(ck[k]).items()}


def _flat(d: object, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(d, torch.Tensor):
        out[prefix] = d
    elif isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def test_train_latent_killed_anywhere_then_resumed_equals_uninterrupted(world: dict[str, Path], tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    args = _commands(world)["train"]  # type: ignore[operator]
    reference = _final_state(next((world["root"] / "train.ref").iterdir()))
    for seed in _trials(request):
        runs = tmp_path / f"r{seed}"
        where = _kill(args(runs), world["train.log"], tmp_path / f"r{seed}.log", seed)
        run_dirs = [p for p in runs.iterdir()] if runs.exists() else []
        for run in run_dirs:
            for ck in RunDir(run).checkpoints():  # every checkpoint under a final name loads
                load_checkpoint(ck)
        if run_dirs and (run_dirs[0] / "config.yaml").exists():
            res = _run(["train-latent", "--resume", str(run_dirs[0]), "--stores", str(world["tile"]), "--device", "cpu",
                        "--no-progress"], tmp_path / f"r{seed}.rerun.log")
        else:  # killed before the run recorded its configuration: start it again
            shutil.rmtree(runs, ignore_errors=True)
            res = _run(args(runs), tmp_path / f"r{seed}.rerun.log")
        assert res.returncode == 0, (where, res.stderr[-2000:])
        (run,) = list(runs.iterdir())
        got = _final_state(run)
        assert got.keys() == reference.keys()
        for k in reference:
            assert torch.equal(got[k], reference[k]), (where, k)
        steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (run / "stats.jsonl").read_text().splitlines()]
        assert steps == list(range(1, 7)), (where, steps)  # no duplicated or torn stats rows
        assert not _leftovers(run), (where, _leftovers(run))


def test_encode_killed_anywhere_then_rerun_equals_uninterrupted(world: dict[str, Path], encoded: dict[str, Path],
                                                                tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_id = world["run"].name
    reference = {p.name: read_latents(p, run_id) for p in expand_stores([encoded["stores"]])}
    for seed in _trials(request):
        stores = tmp_path / f"e{seed}"
        shutil.copytree(world["tile"], stores)
        where = _kill(_encode_args(world, stores), encoded["log"], tmp_path / f"e{seed}.log", seed)
        for p in expand_stores([stores]):
            try:
                got = read_latents(p, run_id)
            except Exception as err:  # incomplete latents must be refused, with a StoreError
                assert type(err).__name__ == "StoreError", (where, err)
            else:
                np.testing.assert_array_equal(got, reference[p.name], err_msg=where)
        res = _run(_encode_args(world, stores), tmp_path / f"e{seed}.rerun.log")
        assert res.returncode == 0, (where, res.stderr[-2000:])
        for p in expand_stores([stores]):
            np.testing.assert_array_equal(read_latents(p, run_id), reference[p.name], err_msg=where)
        assert not _leftovers(stores), (where, _leftovers(stores))


def test_export_synthetic_killed_anywhere_then_rerun_equals_uninterrupted(
        world: dict[str, Path], encoded: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for seed in _trials(request):
        out = tmp_path / f"x{seed}" / "synthetic"
        out.parent.mkdir()
        where = _kill(_export_args(world, out), encoded["export.log"], tmp_path / f"x{seed}.log", seed)
        if out.exists():  # the final name only ever holds a finished export
            _same_tree(encoded["export"], out)
        res = _run(_export_args(world, out), tmp_path / f"x{seed}.rerun.log")
        if out.exists() and res.returncode != 0 and "already exists" in res.stderr:
            res = _run([*_export_args(world, out), "--overwrite"], tmp_path / f"x{seed}.rerun2.log")
        assert res.returncode == 0, (where, res.stderr[-2000:])
        _same_tree(encoded["export"], out)
        assert not _leftovers(out.parent), (where, _leftovers(out.parent))
