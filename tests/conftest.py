"""Shared fixtures: synthetic slides for unit tests, the real data folder for integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _synth import paint_tissue, write_svs

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PATHGAN_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "slides").is_dir():
        pytest.skip(f"real data not found at {DATA} (set PATHGAN_DATA to the shared data folder)")
    return DATA


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def tissue_slide(synth_dir: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 3072x2048 slide at 0.25 um/px with two tissue blobs; returns (path, level0 RGB, truth)."""
    img, truth = paint_tissue(3072, 2048, [(0.3, 0.45, 0.16), (0.72, 0.55, 0.13)], seed=1)
    return write_svs(synth_dir / "tissue.svs", img, mpp=0.25, downsamples=(4,)), img, truth


@pytest.fixture(scope="session")
def blank_slide(synth_dir: Path) -> Path:
    img, _ = paint_tissue(1024, 1024, [], seed=2)
    return write_svs(synth_dir / "blank.svs", img, mpp=0.25, downsamples=())


@pytest.fixture(scope="session")
def nompp_slide(synth_dir: Path) -> Path:
    img, _ = paint_tissue(1024, 1024, [(0.5, 0.5, 0.3)], seed=3)
    return write_svs(synth_dir / "nompp.svs", img, mpp=None, downsamples=())


@pytest.fixture(scope="session")
def corrupt_slide(synth_dir: Path) -> Path:
    path = synth_dir / "corrupt.svs"
    path.write_bytes(b"II*\x00" + os.urandom(2000))
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the long fault-injection soak (more kill -9 trials per command); `make test` sets it")


# ------------------------------------------------------------------------------------------------------
# `pytest -m "not slow"` is the developers' quick loop, so every test that trains a network or starts
# a Dask cluster must carry the `slow` mark. This is checked, not hoped for: the training steps and
# LocalCluster are wrapped, and a test without the mark that reaches one of them (directly, or
# through a fixture it is the first to set up) fails with the reason. The wrapping happens when
# their modules are first imported (an import hook), so a quick run that never imports torch or
# Dask does not pay for importing them.
_SLOW_WORK: dict[str, str] = {}  # nodeid -> what it did
_CURRENT: list[str] = [""]
_GUARDED = {  # module -> (class, method, what a test that reaches it does)
    "distributed.deploy.local": [("LocalCluster", "__init__", "starts a Dask LocalCluster")],
    "pathgan.train._loop": [("Trainer", "train_step", "trains (Trainer.train_step)")],
    "pathgan.train.encoder": [("EncoderTrainer", "train_step", "trains (EncoderTrainer.train_step)")],
    "pathgan.train.cyclegan": [("CycleGANTrainer", "train_step", "trains (CycleGANTrainer.train_step)")],
}


def _guard(module: object) -> None:
    for cls_name, name, what in _GUARDED.get(getattr(module, "__name__", ""), []):
        owner = getattr(module, cls_name)
        original = getattr(owner, name)
        if getattr(original, "_slow_guard", False):
            continue

        def guarded(*args: object, _original=original, _what=what, **kwargs: object) -> object:  # type: ignore[no-untyped-def]
            _SLOW_WORK.setdefault(_CURRENT[0], _what)
            return _original(*args, **kwargs)

        guarded._slow_guard = True  # type: ignore[attr-defined]
        setattr(owner, name, guarded)


class _GuardOnImport:
    """A meta-path finder that lets the others find the guarded modules, then guards them once loaded."""

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name not in _GUARDED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module: object, _run=run) -> None:  # type: ignore[no-untyped-def]
                    _run(module)
                    _guard(module)

                spec.loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


def pytest_configure(config: pytest.Config) -> None:
    for name in _GUARDED:
        if name in sys.modules:
            _guard(sys.modules[name])
    sys.meta_path.insert(0, _GuardOnImport())  # type: ignore[arg-type]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item):  # type: ignore[no-untyped-def]
    _CURRENT[0] = item.nodeid
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item):  # type: ignore[no-untyped-def]
    yield
    what = _SLOW_WORK.get(item.nodeid)
    if what and item.get_closest_marker("slow") is None:
        pytest.fail(f"{item.nodeid} {what} but is not marked @pytest.mark.slow "
                    "(`pytest -m 'not slow'` must stay a quick loop)", pytrace=False)
