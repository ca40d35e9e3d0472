"""pathgan.report: what the pages show, checked against the files they are made from."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from _report_data import (
    EVAL_STEPS,
    HOSTILE_ERROR,
    HOSTILE_ID,
    LATENT_KEYS,
    SAMPLE_STEPS,
    THUMB_MPP,
    UNLISTED,
    make_batch,
    make_encoder_dir,
    make_latent_run,
    make_store,
    make_translate_run,
)
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.errors import PathganError
from pathgan.report import (
    gather_batch,
    gather_run,
    report_kind,
    tissue_area_mm2,
    write_batch_report,
    write_report,
    write_run_report,
)
from pathgan.report._batch import preview_image
from pathgan.report._html import script_json
from pathgan.report._run_page import strip_samples
from pathgan.store import PatchStore


class _Cells(HTMLParser):
    """Rows of ``#slides``: per row, the text and ``data-v`` of each cell (as a browser decodes them)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str | None]]] = []
        self._cell: list[str] | None = None
        self._v: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-status" in a:
            self.rows.append([])
        elif tag == "td" and self.rows:
            self._cell, self._v = [], a.get("data-v")
        elif tag in ("svg", "title") and self._cell is not None:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(("".join(self._cell), self._v))
            self._cell = None
        elif tag in ("svg", "title") and self._cell is not None:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._depth:
            self._cell.append(data)


def _cells(page: Path) -> list[list[tuple[str, str | None]]]:
    parser = _Cells()
    parser.feed(page.read_text())
    return parser.rows


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_batch(tmp_path_factory.mktemp("report") / "stores")


def _status_table(folder: Path) -> list[dict[str, str]]:
    with (folder / "tile_status.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------ batch
def test_tissue_area_is_tissue_pixels_times_the_thumbnail_pixel_area(tmp_path: Path) -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:7] = True  # 12 pixels of 8 x 6 um: 576 um^2
    assert tissue_area_mm2(mask, (8.0, 6.0)) == pytest.approx(576e-6)

    store = PatchStore(make_store(tmp_path, "s", 10, seed=3))
    by_hand = int(store.mask("tissue").sum()) * THUMB_MPP[0] * THUMB_MPP[1] / 1e6
    (row,) = gather_batch(tmp_path).rows
    assert row.tissue_area_mm2 == pytest.approx(by_hand) and by_hand > 0


def test_summary_counts_patches_and_area_match_the_status_table(batch: Path) -> None:
    table = _status_table(batch)
    report = gather_batch(batch)
    expected = {s: sum(r["status"] == s for r in table) for s in ("done", "skipped", "no_tissue", "failed")}
    assert report.counts == {**expected, "unlisted": 1}
    with_store = [r for r in table if r["status"] != "failed"]
    assert report.n_patches == sum(int(r["n_patches"]) for r in with_store) + UNLISTED[1]
    assert report.tissue_area_mm2 == pytest.approx(sum(r.tissue_area_mm2 or 0 for r in report.rows))
    assert [r.slide_id for r in report.rows] == [r["slide_id"] for r in table] + [UNLISTED[0]]
    for row, rec in zip(report.rows, table, strict=False):
        assert (row.status, row.n_patches, row.error) == (rec["status"], int(rec["n_patches"]), rec["error"])
        assert (row.store is None) == (rec["status"] == "failed")

    page = write_batch_report(batch)
    cards = dict(re.findall(r'data-card="([^"]+)"><b>([^<]*)</b>', page.read_text()))
    assert cards["slides"] == str(len(table) + 1) and cards["failed"] == str(expected["failed"])
    assert cards["done"] == str(expected["done"]) and cards["patches"] == f"{report.n_patches:,}"


def test_rows_show_every_column_with_numeric_sort_keys(batch: Path) -> None:
    page = write_batch_report(batch)
    rows = _cells(page)
    table = _status_table(batch)
    assert len(rows) == len(table) + 1 and all(len(r) == 14 for r in rows)
    by_id = {r[1][0]: r for r in rows}
    alpha = by_id["CMU-like-alpha"]
    assert alpha[3] == ("40", "40.0") and alpha[5][0] == "1" and "metadata" in alpha[7][0]
    assert float(alpha[9][1] or "nan") > 0  # blur median as the sort key
    assert "mpp_override" in by_id["TCGA-like-beta"][7][0]
    assert by_id["nompp"][8] == ("", "")  # a failed slide has no tissue area: an empty key, sorted last
    assert by_id["delta"][9][0] == "no patches"


def test_every_string_from_data_is_shown_as_text(batch: Path) -> None:
    text = write_batch_report(batch).read_text()
    assert HOSTILE_ID not in text and '<img src=x' not in text
    assert len(re.findall(r"<script", text)) == 1  # the page's own, nothing from data
    row = next(r for r in _cells(batch / "report.html") if r[1][0] == HOSTILE_ID)
    assert row[1] == (HOSTILE_ID, HOSTILE_ID) and row[13] == (HOSTILE_ERROR, HOSTILE_ERROR)
    assert "<" not in script_json(["</script><!--", "a & b"])
    assert json.loads(script_json(["</script><!--", "a & b"])) == ["</script><!--", "a & b"]


def test_a_slide_without_its_preview_png_gets_one_drawn_from_the_store(batch: Path) -> None:
    report = gather_batch(batch)
    beta = next(r for r in report.rows if r.slide_id == "TCGA-like-beta")
    assert beta.preview is None and beta.store is not None
    image = preview_image(beta)
    assert image is not None and image.shape == PatchStore(beta.store).thumbnail().shape
    assert (image == [0, 64, 255]).all(-1).any()  # the kept grid in blue


def test_report_kind_and_one_line_errors_for_anything_else(batch: Path, tmp_path: Path) -> None:
    run = make_latent_run(tmp_path / "runs")
    enc = make_encoder_dir(run)
    assert report_kind(batch) == "batch" and report_kind(run) == "run" and report_kind(enc) == "run"
    only_stores = tmp_path / "only"
    make_store(only_stores, "x", 3, seed=1)
    assert report_kind(only_stores) == "batch" and gather_batch(only_stores).rows[0].status == "unlisted"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    cases = {tmp_path / "nope": "does not exist", tmp_path / "empty" / "notes.txt": "is a file",
             batch / "gamma.zarr": f"give the folder that holds it ({batch})",
             tmp_path / "empty": "found: notes.txt"}
    for path, says in cases.items():
        with pytest.raises(PathganError) as err:
            write_report(path)
        assert says in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)
        assert "expected" in str(err.value) or "give the folder" in str(err.value)


def test_a_damaged_store_is_still_a_row_with_the_reason(tmp_path: Path) -> None:
    import shutil

    make_store(tmp_path, "ok", 6, seed=1)
    make_store(tmp_path, "damaged", 6, seed=2)
    shutil.rmtree(tmp_path / "damaged.zarr" / "qc" / "blur")
    rows = {r.slide_id: r for r in gather_batch(tmp_path).rows}
    assert rows["ok"].error.startswith("not in tile_status.csv") and rows["ok"].tissue_area_mm2
    assert "store damaged.zarr cannot be read" in rows["damaged"].error and rows["damaged"].store is None
    assert "cannot be read" in write_batch_report(tmp_path).read_text()


def test_an_unwritable_target_is_a_pathgan_error(batch: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PathganError, match="cannot write the report"):
        write_batch_report(batch, blocker / "r.html")
    with pytest.raises(PathganError, match="is a folder"):
        write_batch_report(batch, tmp_path)


def test_a_malformed_status_table_is_named(tmp_path: Path) -> None:
    (tmp_path / "tile_status.csv").write_text("name,what\nx,y\n")
    with pytest.raises(PathganError, match=r"tile_status.csv: not a pathgan tile status table \(missing columns"):
        gather_batch(tmp_path)


def test_status_file_name_is_the_one_tile_writes() -> None:
    from pathgan.report._batch import TILE_STATUS_FILE
    from pathgan.stages.tile import STATUS_FILE

    assert TILE_STATUS_FILE == STATUS_FILE


# -------------------------------------------------------------------------------------------- run
def test_run_page_has_a_curve_for_every_key_in_stats(tmp_path: Path) -> None:
    run = make_latent_run(tmp_path)
    report = gather_run(run)
    assert report.kind == "train-latent" and report.bad_stats_lines == 1 and len(report.stats) == 20
    series = report.series()
    assert len(series["d_img_per_s"][0]) == 19  # the null of the first log is left out, not plotted as 0
    text = write_run_report(run).read_text()
    figures = re.findall(r'<figure class="curve" data-keys="([^"]+)"><img src="data:image/png;base64,', text)
    assert figures == [" ".join(k) for k in LATENT_KEYS.values()] + ["kid", "fid"]
    assert "1 unreadable line(s)" in text and "40 / 40" in text


def test_scrub_strip_has_one_image_per_sample_grid(tmp_path: Path) -> None:
    run = make_latent_run(tmp_path)
    text = write_run_report(run).read_text()
    data = json.loads(re.search(r'<script type="application/json" id="samples-data">(.*?)</script>', text).group(1))
    assert [d["step"] for d in data] == list(SAMPLE_STEPS) == sorted(
        int(p.stem[5:]) for p in (run / "samples").glob("step-*.png"))
    assert all(d["src"].startswith("data:image/jpeg;base64,") for d in data)
    assert f'max="{len(SAMPLE_STEPS) - 1}" value="{len(SAMPLE_STEPS) - 1}"' in text


def test_strip_samples_thins_evenly_keeping_the_first_and_the_last() -> None:
    samples = [(i * 500, f"s{i}") for i in range(200)]
    chosen = strip_samples(samples, 60)
    assert len(chosen) == 60 and chosen[0] == samples[0] and chosen[-1] == samples[-1]
    assert chosen == sorted(set(chosen)) and strip_samples(samples[:7], 60) == samples[:7]


def test_evaluations_become_points_by_their_checkpoint_step(tmp_path: Path) -> None:
    run = make_latent_run(tmp_path)
    report = gather_run(run)
    assert [(e.step, e.values["kid_mean"]) for e in report.evals] == list(EVAL_STEPS.items())
    text = write_run_report(run).read_text()
    evals = re.search(r'<table class="data" id="evals">.*?</table>', text, re.S).group(0)
    assert evals.count("<tr>") == 1 + len(EVAL_STEPS) and "150 +- 4" in evals and "90 +- 4" in evals


def test_rerunning_during_training_updates_the_page(tmp_path: Path) -> None:
    run = make_latent_run(tmp_path, partial_last_line=False)
    first = write_run_report(run).read_text()
    with (run / "stats.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 60, "loss_d": 0.5, "loss_g": 2.0, "grad_norm_d": 1.0, "grad_norm_g": 1.0,
                             "d_img_per_s": 99.0, "gp": 0.1, "new_metric": 3.0}) + "\n")
    (run / "samples" / "step-0000060.png").write_bytes((run / "samples" / "step-0000040.png").read_bytes())
    (run / ".pathgan.lock").write_text(json.dumps({"pid": 123, "host": "node7", "command": "train-latent"}))
    second = write_run_report(run).read_text()
    assert '"step":60' in second and '"step":60' not in first
    assert 'data-keys="gp new_metric"' in second and "new_metric" not in first
    assert "in progress: train-latent holds the run (pid 123 on node7)" in second
    assert "<b>60</b><span>step</span>" in second  # past the configured 40: a resume extended it


def test_translate_and_encoder_pages(tmp_path: Path) -> None:
    tr = make_translate_run(tmp_path / "runs")
    report = gather_run(tr)
    assert report.kind == "train-translate" and [e.path.name for e in report.evals] == ["eval.json"]
    text = write_report(tr).read_text()
    assert 'data-keys="loss_g loss_cycle_a loss_d_b"' in text and 'data-keys="sec_per_step"' in text
    assert "stain_distance_before" in text and "s/step (last log)" in text

    enc = make_encoder_dir(make_latent_run(tmp_path / "runs"))
    report = gather_run(enc)
    assert report.kind == "train-encoder" and report.target_steps == 30 and report.provenance["run_id"]
    text = write_report(enc).read_text()
    assert 'data-keys="loss_w loss"' in text and "recon.png" in text and "w_r2" in text
    assert f"pathgan report {enc}" in write_report(enc.parent).read_text()  # the run page points to it


def test_cli_writes_the_default_or_the_given_file_and_reports_errors_in_one_line(batch: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["report", str(batch)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(batch / "report.html") and (batch / "report.html").stat().st_size > 10_000
    out = tmp_path / "elsewhere" / "run.html"
    res = runner.invoke(main, ["report", str(make_latent_run(tmp_path / "runs")), "--out", str(out)])
    assert res.exit_code == 0 and out.is_file(), res.output
    res = runner.invoke(main, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "does not exist" in res.output
    assert not list(batch.glob(".*partial"))  # written atomically
