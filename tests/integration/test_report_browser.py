"""``pathgan report`` pages in a real browser: headless Chromium opens them from ``file://`` (no
server) and the tests use them as a person would: sort, filter, open a preview, scrub samples.

Skipped only on a developer's machine without chromium; under CI (``$CI`` set) a missing browser
is a failure, and ``.ci/run`` installs it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pytest
from _browser import chromium, find_browser, screenshot
from _report_data import (
    HOSTILE_ERROR,
    HOSTILE_ID,
    MPP_ERROR,
    SAMPLE_STEPS,
    UNLISTED,
    make_batch,
    make_latent_run,
)

from pathgan.report import write_batch_report, write_run_report


@pytest.fixture(scope="module")
def browser() -> Any:
    if find_browser() is None:
        why = "headless Chromium is missing (apt-get install -y chromium chromium-driver; .ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so the browser tests must run", pytrace=False)
        pytest.skip(why)
    with chromium(1400, 1000) as driver:
        yield driver


def _visible_ids(driver: Any) -> list[str]:
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('#slides tbody tr'))"
        ".filter(tr => !tr.hidden).map(tr => tr.cells[1].textContent);"))


def _click_header(driver: Any, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'#slides th[data-key="{key}"]').click()


def _severe(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_batch_page_sorts_filters_escapes_and_opens_previews(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    folder = make_batch(tmp_path / "stores")
    page = write_batch_report(folder)
    browser.get(page.as_uri())
    assert browser.title.startswith("pathgan tile report")

    # The status table as Python reads it, plus the store it does not list (last, as on the page).
    with (folder / "tile_status.csv").open(newline="") as fh:
        table = [{"id": r["slide_id"], "status": r["status"], "n": int(r["n_patches"]), "s": float(r["seconds"])}
                 for r in csv.DictReader(fh)]
    table.append({"id": UNLISTED[0], "status": "unlisted", "n": UNLISTED[1], "s": None})
    ids = [r["id"] for r in table]
    assert _visible_ids(browser) == ids
    assert browser.find_element(By.ID, "shown").text == f"{len(ids)} of {len(ids)} slides shown"
    failed_card = browser.find_element(By.CSS_SELECTOR, '#summary [data-card="failed"] b')
    assert failed_card.text == str(sum(r["status"] == "failed" for r in table))

    # Numbers sort as numbers (a string sort would put 7 after 40), ascending then descending.
    _click_header(browser, "patches")
    assert _visible_ids(browser) == [r["id"] for r in sorted(table, key=lambda r: r["n"])]
    _click_header(browser, "patches")
    assert _visible_ids(browser) == [r["id"] for r in sorted(table, key=lambda r: r["n"], reverse=True)]
    # Text sorts case-insensitively; empty cells stay last in both directions.
    _click_header(browser, "slide")
    assert _visible_ids(browser) == sorted(ids, key=str.lower)
    timed = [r for r in table if r["s"] is not None]
    _click_header(browser, "time")
    assert _visible_ids(browser) == [r["id"] for r in sorted(timed, key=lambda r: r["s"])] + [UNLISTED[0]]
    _click_header(browser, "time")
    assert _visible_ids(browser) == [r["id"] for r in sorted(timed, key=lambda r: r["s"], reverse=True)] + [UNLISTED[0]]
    order_now = _visible_ids(browser)

    # The filter: text anywhere in a row, key<op>value on one column, and the status menu.
    box = browser.find_element(By.ID, "filter")
    box.send_keys("tcga")
    assert _visible_ids(browser) == [i for i in order_now if "tcga" in i.lower()]
    box.clear()
    box.send_keys("patches>10")
    assert sorted(_visible_ids(browser)) == sorted(r["id"] for r in table if r["n"] > 10)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("failed")
    assert sorted(_visible_ids(browser)) == sorted(["nompp", HOSTILE_ID])
    assert browser.find_element(By.ID, "shown").text == f"2 of {len(ids)} slides shown"

    # A failed slide's error, and data shown as text: no script ran, no element was injected.
    errors = dict(browser.execute_script(
        "return Array.from(document.querySelectorAll('#slides tbody tr[data-status=failed]'))"
        ".map(tr => [tr.cells[1].textContent, tr.querySelector('td.err').textContent]);"))
    assert errors == {"nompp": MPP_ERROR, HOSTILE_ID: HOSTILE_ERROR}
    assert browser.execute_script("return window.__pwned === undefined && !document.querySelector('img[src=x]');")
    screenshot(browser, tmp_path / "batch_failed_rows.png")
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("")

    # A click on a thumbnail opens the slide's preview full size, with the full-resolution PNG's link;
    # a slide without a preview PNG still has one, drawn from its store.
    overlay = browser.find_element(By.ID, "overlay")
    assert not overlay.is_displayed()
    row = browser.find_element(By.XPATH, "//tr[td[@class='id' and text()='CMU-like-alpha']]")
    row.find_element(By.CSS_SELECTOR, "img.thumb").click()
    assert overlay.is_displayed()
    big = browser.find_element(By.ID, "overlay-img")
    assert big.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", big) >= 384  # the 4x preview PNG (384 px wide), embedded below the 800-px cap
    caption = browser.find_element(By.ID, "overlay-caption")
    assert "CMU-like-alpha" in caption.text
    assert caption.find_element(By.TAG_NAME, "a").get_attribute("href").endswith("previews/CMU-like-alpha.png")
    shot = screenshot(browser, tmp_path / "batch_overlay.png")
    assert shot.stat().st_size > 10_000
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert not overlay.is_displayed()
    beta = browser.find_element(By.XPATH, "//tr[td[@class='id' and text()='TCGA-like-beta']]")
    assert beta.find_element(By.CSS_SELECTOR, "img.thumb").get_attribute("data-link") == ""
    assert browser.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0 || !i.getAttribute('src'));")
    assert not _severe(browser)
    screenshot(browser, tmp_path / "batch.png")


def test_run_page_draws_curves_and_scrubs_the_samples(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = make_latent_run(tmp_path / "runs")
    page = write_run_report(run)
    browser.get(page.as_uri())
    keys = {f.get_attribute("data-keys") for f in browser.find_elements(By.CSS_SELECTOR, "figure.curve")}
    assert {"loss_d loss_g", "grad_norm_d grad_norm_g", "d_img_per_s", "gp", "kid", "fid"} <= keys
    assert browser.execute_script("return Array.from(document.images).every(i => !i.src || i.naturalWidth > 0);")

    label, img, slider = (browser.find_element(By.ID, i) for i in ("sample-label", "sample-img", "scrub"))
    n = len(SAMPLE_STEPS)
    assert label.text == f"step {SAMPLE_STEPS[-1]} ({n} of {n})"
    last = img.get_attribute("src")
    slider.send_keys(Keys.HOME)
    assert label.text == f"step {SAMPLE_STEPS[0]} (1 of {n})" and img.get_attribute("src") != last
    slider.send_keys(Keys.ARROW_RIGHT)
    assert label.text == f"step {SAMPLE_STEPS[1]} (2 of {n})"
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 0
    rows = browser.find_elements(By.CSS_SELECTOR, "#checkpoints tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["step-0000020.pt", "step-0000040.pt"]
    assert "train:" in browser.find_element(By.ID, "config").text
    assert not _severe(browser)
    screenshot(browser, tmp_path / "run.png", full_height=4000)
