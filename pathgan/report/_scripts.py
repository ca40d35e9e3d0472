"""The pages' inline scripts: this package's own code (never data), plain ES2017, no libraries."""

from __future__ import annotations

__all__ = ["BATCH_SCRIPT", "RUN_SCRIPT"]

#: Sorting (click or Enter on a header toggles ascending/descending; numbers compare as numbers,
#: empty cells stay last), filtering (every term must match: plain text anywhere in the row, or
#: ``key<op>value`` on one column, op one of < <= > >= =) with a status menu, and the preview overlay.
BATCH_SCRIPT = r"""
(function () {
  "use strict";
  const table = document.getElementById("slides");
  const tbody = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);
  const keys = heads.map(function (th) { return th.dataset.key; });
  const rows = Array.from(tbody.rows);
  rows.forEach(function (tr) {
    const values = Array.from(tr.cells).map(function (td) { return td.dataset.v || ""; });
    tr.searchText = (tr.textContent + " " + values.join(" ")).toLowerCase();
  });

  function value(tr, i, type) {
    const v = tr.cells[i].dataset.v;
    if (v === undefined || v === "") return null;
    return type === "num" ? parseFloat(v) : v.toLowerCase();
  }
  function sortBy(i) {
    const th = heads[i], type = th.dataset.type;
    const asc = th.getAttribute("aria-sort") !== "ascending";
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const sorted = Array.from(tbody.rows).sort(function (a, b) {
      const x = value(a, i, type), y = value(b, i, type);
      if (x === null || y === null) return (x === null) - (y === null);
      const c = x < y ? -1 : (x > y ? 1 : 0);
      return asc ? c : -c;
    });
    sorted.forEach(function (tr) { tbody.appendChild(tr); });
  }
  heads.forEach(function (th, i) {
    if (!th.dataset.type) return;
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(i); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(i); }
    });
  });

  const filter = document.getElementById("filter");
  const statusMenu = document.getElementById("status-filter");
  const shown = document.getElementById("shown");
  const ops = {
    "<": function (a, b) { return a < b; }, "<=": function (a, b) { return a <= b; },
    ">": function (a, b) { return a > b; }, ">=": function (a, b) { return a >= b; },
    "=": function (a, b) { return a === b; }
  };
  function matches(tr, term) {
    const m = /^([a-z_]+)(<=|>=|<|>|=)(.*)$/.exec(term);
    const i = m ? keys.indexOf(m[1]) : -1;
    if (i < 0) return tr.searchText.indexOf(term) >= 0;
    const raw = tr.cells[i].dataset.v || "";
    if (heads[i].dataset.type === "num") {
      const target = parseFloat(m[3]);
      return raw !== "" && !isNaN(target) && ops[m[2]](parseFloat(raw), target);
    }
    return raw.toLowerCase().indexOf(m[3]) >= 0;
  }
  function apply() {
    const terms = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const status = statusMenu.value;
    let n = 0;
    rows.forEach(function (tr) {
      const ok = (!status || tr.dataset.status === status) && terms.every(function (t) { return matches(tr, t); });
      tr.hidden = !ok;
      if (ok) n += 1;
    });
    shown.textContent = n + " of " + rows.length + " slides shown";
  }
  filter.addEventListener("input", apply);
  statusMenu.addEventListener("change", apply);
  apply();

  const overlay = document.getElementById("overlay");
  const big = document.getElementById("overlay-img");
  const caption = document.getElementById("overlay-caption");
  function open(img) {
    big.src = img.dataset.full;
    big.alt = img.alt;
    caption.textContent = img.dataset.caption + " ";
    if (img.dataset.link) {
      const a = document.createElement("a");
      a.href = img.dataset.link;
      a.target = "_blank";
      a.textContent = "full-resolution PNG";
      caption.appendChild(a);
    }
    overlay.hidden = false;
  }
  tbody.addEventListener("click", function (e) {
    const img = e.target.closest("img.thumb");
    if (img) open(img);
  });
  tbody.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target.matches("img.thumb")) open(e.target);
  });
  overlay.addEventListener("click", function (e) { if (e.target.tagName !== "A") overlay.hidden = true; });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") overlay.hidden = true; });
})();
"""

#: The sample strip: a range input picks one of the embedded sample grids (arrow keys step it),
#: and a button plays them in order.
RUN_SCRIPT = r"""
(function () {
  "use strict";
  const holder = document.getElementById("samples-data");
  if (!holder) return;
  const data = JSON.parse(holder.textContent);
  const slider = document.getElementById("scrub");
  const img = document.getElementById("sample-img");
  const label = document.getElementById("sample-label");
  const play = document.getElementById("play");
  if (!data.length) return;
  function show(i) {
    const s = data[i];
    img.src = s.src;
    img.alt = "sample grid at step " + s.step;
    label.textContent = "step " + s.step + " (" + (i + 1) + " of " + data.length + ")";
  }
  slider.addEventListener("input", function () { show(+slider.value); });
  let timer = null;
  play.addEventListener("click", function () {
    if (timer !== null) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
    play.textContent = "pause";
    timer = setInterval(function () {
      slider.value = (+slider.value + 1) % data.length;
      show(+slider.value);
    }, 500);
  });
  show(+slider.value);
})();
"""
