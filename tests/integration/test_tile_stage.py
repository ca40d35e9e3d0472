"""End-to-end ``pathgan tile`` on synthetic slides: contents, statuses, resume, CLI and clusters."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from PIL import Image

from pathgan.cli import main
from pathgan.config import TileConfig
from pathgan.manifest import SlideEntry
from pathgan.parallel import dask_client
from pathgan.slide import open_slide
from pathgan.stages import tile_slides
from pathgan.store import PatchStore

pytestmark = pytest.mark.slow  # every test here trains a network or starts a Dask cluster

CFG = TileConfig(patch_px=128, patches_per_shard=16)


@pytest.fixture(scope="module")
def client():
    with dask_client(n_workers=2, dashboard=False) as c:
        yield c


def _entries(*paths: Path) -> list[SlideEntry]:
    return [SlideEntry(slide_id=p.stem, path=p) for p in paths]


def test_batch_statuses_and_store_contents(client, tmp_path, tissue_slide, blank_slide, nompp_slide, corrupt_slide):
    path, _img, truth = tissue_slide
    rows = tile_slides(_entries(path, blank_slide, nompp_slide, corrupt_slide), tmp_path, CFG,
                       client=client, progress=False)
    status = {r.slide_id: r for r in rows}
    assert status["tissue"].status == "done" and status["tissue"].n_patches >= 15  # ~19 cells of blob area
    assert status["blank"].status == "no_tissue" and status["blank"].n_patches == 0
    assert status["nompp"].status == "failed" and "mpp_override" in status["nompp"].error
    assert status["corrupt"].status == "failed" and "cannot read slide" in status["corrupt"].error
    assert not (tmp_path / "nompp.zarr").exists() and not list(tmp_path.glob("*.partial-*"))
    with (tmp_path / "tile_status.csv").open() as fh:
        table = {r["slide_id"]: r for r in csv.DictReader(fh)}
    assert table["corrupt"]["status"] == "failed" and table["tissue"]["n_patches"] == str(status["tissue"].n_patches)

    store = PatchStore(tmp_path / "tissue.zarr")
    a = store.attrs
    assert a["mpp_requested"] == 0.5 and a["mpp_effective"] == pytest.approx([0.5, 0.5])
    assert a["source_level"] == 0 and a["decode_scale"] == 2 and a["patch_px"] == 128
    assert a["source"]["mpp"] == [0.25, 0.25] and len(a["source"]["sha256_first_mib"]) == 64
    assert a["config"]["jpeg_quality"] == 90 and a["pathgan_version"]
    # every kept patch lies on painted tissue (ground truth at level 0) for at least half its area
    fp = 256
    frac = np.array([truth[y : y + fp, x : x + fp].mean() for x, y in store.coords])
    assert frac.min() >= 0.4 and np.all(store.tissue_fraction >= 0.5)
    # ... and all grid cells that are fully tissue were kept
    full = sum(truth[y : y + fp, x : x + fp].all() for y in range(0, 2048 - fp + 1, fp) for x in range(0, 3072 - fp + 1, fp))
    assert len(store) >= full
    # pixels equal an independent reference: openslide read_region + PIL box resize, within JPEG error
    reader = open_slide(path, "openslide")
    idx = np.arange(0, len(store), 5)
    got = store.read(idx).astype(float)
    ref = np.stack([np.asarray(Image.fromarray(reader.read_region((int(x), int(y)), 0, (fp, fp))).reduce(2))
                    for x, y in store.coords[idx]]).astype(float)
    # The painted texture has 4-px cells of nuclei at full contrast, the worst case for DCT-scaled
    # decode and JPEG q90 (per pixel ~5 levels here, ~1-2 on real tissue: see test_tile_real).
    # 8x8 block means must agree tightly, which a shift, a scale error or a colour swap would break.
    assert np.abs(got - ref).mean() < 6.0
    blocks = (len(idx), 16, 8, 16, 8, 3)
    assert np.abs(got.reshape(blocks).mean((2, 4)) - ref.reshape(blocks).mean((2, 4))).mean() < 1.5
    blur, white = store.qc("blur"), store.qc("white_fraction")
    assert np.all(np.isfinite(blur)) and np.all(blur > 0) and np.all((white >= 0) & (white <= 1))
    np.testing.assert_allclose(white[idx], (got > 215).all(-1).mean((1, 2)), atol=0.05)
    assert store.thumbnail().shape == (64, 96, 3) and store.mask("tissue").dtype == bool
    assert store.thumbnail_shape == (64, 96, 3)  # from metadata, without reading the pixels
    preview = Image.open(tmp_path / "previews" / "tissue.png")
    assert preview.size[0] >= 768


def test_resume_skips_and_config_change_is_refused(client, tmp_path, tissue_slide, blank_slide):
    path, _, _ = tissue_slide
    entries = _entries(path, blank_slide)
    tile_slides(entries, tmp_path, CFG, client=client, progress=False)
    before = (tmp_path / "tissue.zarr" / "zarr.json").stat().st_mtime_ns
    rows = tile_slides(entries, tmp_path, CFG, client=client, progress=False)
    assert [r.status for r in rows] == ["skipped", "skipped"]
    assert (tmp_path / "tissue.zarr" / "zarr.json").stat().st_mtime_ns == before
    other = TileConfig(patch_px=128, patches_per_shard=16, jpeg_quality=80)
    rows = tile_slides(entries[:1], tmp_path, other, client=client, progress=False)
    assert rows[0].status == "failed" and "--overwrite" in rows[0].error
    rows = tile_slides(entries[:1], tmp_path, other, client=client, progress=False, overwrite=True)
    assert rows[0].status == "done" and PatchStore(tmp_path / "tissue.zarr").attrs["config"]["jpeg_quality"] == 80
    # a leftover partial store from a crash is removed and the slide redone
    shutil.copytree(tmp_path / "tissue.zarr", tmp_path / "blank.zarr.partial-deadbeef")
    shutil.rmtree(tmp_path / "blank.zarr")
    rows = tile_slides(entries[1:], tmp_path, CFG, client=client, progress=False)
    assert rows[0].status == "no_tissue" and not (tmp_path / "blank.zarr.partial-deadbeef").exists()


def test_every_batch_gets_its_report(client, tmp_path, tissue_slide, corrupt_slide):
    from pathgan.report import gather_batch

    path, _, _ = tissue_slide
    rows = tile_slides(_entries(path, corrupt_slide), tmp_path, CFG, client=client, progress=False)
    page = tmp_path / "report.html"
    assert page.is_file()
    report = gather_batch(tmp_path)
    assert [(r.slide_id, r.status, r.n_patches) for r in report.rows] == [(r.slide_id, r.status, r.n_patches)
                                                                          for r in rows]
    text = page.read_text()
    assert "cannot read slide" in text and text.count('<tr data-status="') == 2
    tissue = report.rows[0]
    assert tissue.tissue_area_mm2 and tissue.qc["blur"].shape == (tissue.n_patches,)
    before = page.stat().st_mtime_ns
    rows = tile_slides(_entries(path), tmp_path, CFG, client=client, progress=False)  # a rerun redraws it
    assert rows[0].status == "skipped" and page.stat().st_mtime_ns != before
    assert page.read_text().count('<tr data-status="') == 1


def test_a_report_that_cannot_be_drawn_is_a_warning_not_a_failed_batch(client, tmp_path, tissue_slide,
                                                                       monkeypatch, caplog):
    import pathgan.report

    def broken(*args, **kwargs):
        raise RuntimeError("no page today")

    monkeypatch.setattr(pathgan.report, "write_batch_report", broken)
    path, _, _ = tissue_slide
    with caplog.at_level("WARNING", logger="pathgan.stages.tile"):
        rows = tile_slides(_entries(path), tmp_path, CFG, client=client, progress=False)
    assert rows[0].status == "done" and (tmp_path / "tile_status.csv").is_file()
    assert not (tmp_path / "report.html").exists()
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "could not write" in warning.getMessage() and "RuntimeError: no page today" in warning.getMessage()


def test_cli_exit_codes_and_h5(tmp_path, tissue_slide, corrupt_slide):
    path, _, _ = tissue_slide
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"slide_id,path\nT,{path}\nbad,{corrupt_slide}\n")
    runner = CliRunner()
    args = ["tile", "--manifest", str(manifest), "--out", str(tmp_path / "o"), "--workers", "1",
            "--patch-px", "128", "--no-progress", "--export-h5"]
    res = runner.invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "failed" in res.output and "bad" in res.output
    assert f"report in {tmp_path / 'o' / 'report.html'}" in res.output and (tmp_path / "o" / "report.html").is_file()
    import h5py

    with h5py.File(tmp_path / "o" / "h5" / "T.h5") as f:
        np.testing.assert_array_equal(f["coords"][:], PatchStore(tmp_path / "o" / "T.zarr").coords)
        assert f["coords"].attrs["patch_size"] == 256 and f["coords"].attrs["patch_level"] == 0
    res = runner.invoke(main, ["tile", str(path), "--out", str(tmp_path / "o2"), "--workers", "1",
                               "--patch-px", "128", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["tile", "--manifest", str(tmp_path / "nope.csv")])
    assert res.exit_code != 0 and "does not exist" in res.output
    res = runner.invoke(main, ["tile", str(path), "--mpp", "-1"])
    assert res.exit_code != 0 and "mpp=-1.0 is not allowed" in res.output


def test_overlap_follows_patch_px_from_config_file(tmp_path, tissue_slide):
    # --overlap-px is applied after --config is merged: patch_px 128 from the file, overlap 32 ->
    # stride 96 (the CLI used to subtract from its own default of 256 and give 224).
    path, _, _ = tissue_slide
    cfg = tmp_path / "tile.yaml"
    cfg.write_text("patch_px: 128\n")
    res = CliRunner().invoke(main, ["tile", str(path), "--out", str(tmp_path / "o"), "--workers", "1",
                                    "--config", str(cfg), "--overlap-px", "32", "--no-progress"])
    assert res.exit_code == 0, res.output
    (store_path,) = (tmp_path / "o").glob("*.zarr")
    store = PatchStore(store_path)
    assert (store.attrs["patch_px"], store.attrs["stride_px"]) == (128, 96)
    res = CliRunner().invoke(main, ["tile", str(path), "--out", str(tmp_path / "o2"), "--config", str(cfg),
                                    "--overlap-px", "128", "--no-progress"])
    assert res.exit_code != 0 and "overlap_px=128 is not allowed" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_existing_scheduler_on_loopback(tmp_path, tissue_slide):
    path, _, _ = tissue_slide
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    bindir = Path(sys.executable).parent
    sched = subprocess.Popen([bindir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([bindir / "dask", "worker", addr, "--nworkers", "1", "--nthreads", "1",
                               "--no-dashboard", "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(addr, timeout="5s") as c:
                    if c.scheduler_info()["workers"]:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "scheduler/worker did not start"
            time.sleep(0.5)
        res = CliRunner().invoke(main, ["tile", str(path), "--out", str(tmp_path / "o"), "--scheduler", addr,
                                        "--patch-px", "128", "--no-progress"])
        assert res.exit_code == 0, res.output
        assert PatchStore(tmp_path / "o" / "tissue.zarr").attrs["n_patches"] >= 15
    finally:
        for p in (worker, sched):
            p.terminate()
            p.wait(timeout=30)


def _store_arrays(path: Path) -> dict[str, np.ndarray]:
    grp = zarr.open_group(path, mode="r")
    names = ["patches", "coords", "tissue_fraction", "qc/pen_fraction", "qc/blur", "qc/white_fraction",
             "thumbnail", "masks/tissue", "masks/pen"]
    return {n: np.asarray(grp[n][:]) for n in names}


def test_kill9_then_resume_equals_uninterrupted(tmp_path, synth_dir, tissue_slide):
    from _synth import paint_tissue, write_svs

    slides = tmp_path / "slides"
    slides.mkdir()
    for i in range(4):
        img, _ = paint_tissue(3072, 2048, [(0.3, 0.45, 0.2), (0.72, 0.55, 0.18)], seed=10 + i)
        write_svs(slides / f"s{i}.svs", img, mpp=0.25, downsamples=(4,))
    cmd = [sys.executable, "-m", "pathgan.cli", "tile", str(slides), "--workers", "2", "--patch-px", "128",
           "--patches-per-shard", "8", "--no-progress"]
    subprocess.run([*cmd, "--out", str(tmp_path / "ref")], check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (list(out.glob("*.partial-*")) and list(out.glob("*.zarr"))) and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.005)  # the window with some stores complete and others partial can be short
    complete_at_kill = len(list(out.glob("*.zarr")))
    partial_at_kill = len(list(out.glob("*.partial-*")))
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker processes, mid-run
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert complete_at_kill < 4 and partial_at_kill > 0
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True)
    for i in range(4):
        ref, got = _store_arrays(tmp_path / "ref" / f"s{i}.zarr"), _store_arrays(out / f"s{i}.zarr")
        for name in ref:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=f"s{i} {name}")
        a = PatchStore(out / f"s{i}.zarr").attrs
        b = PatchStore(tmp_path / "ref" / f"s{i}.zarr").attrs
        assert a == b
    assert not list(out.glob("*.partial-*"))


def test_second_tile_into_the_same_out_is_refused(tmp_path, tissue_slide):
    """Two `pathgan tile` into one --out would delete each other's partial stores: the second fails
    fast, naming the owner, and touches nothing; a lock left by a killed run does not block the next."""
    path, _, _ = tissue_slide
    out = tmp_path / "o"
    hold = ("import sys, time; from pathlib import Path; from pathgan._lock import folder_lock\n"
            "with folder_lock(Path(sys.argv[1]), 'tile'):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    args = ["tile", str(path), "--out", str(out), "--workers", "1", "--patch-px", "128", "--no-progress"]
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        res = CliRunner().invoke(main, args)
        assert res.exit_code != 0 and f"in use by another pathgan tile: pid {proc.pid}" in res.output, res.output
        assert [p.name for p in out.iterdir()] == [".pathgan.lock"]  # no store, no status table
    finally:
        proc.kill()
        proc.wait()
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["previews", "report.html", "tile_status.csv", f"{path.stem}.zarr"]
