"""``pathgan report``: one self-contained HTML page for a tiled batch or a training run.

The page needs no server and no network (styles, script and images are inside it), so it opens
from ``file://`` after being copied off a cluster. A batch page has one sortable, filterable row per
slide; a run page has the training curves, evaluations, a scrubbable strip of sample grids,
checkpoints, provenance and the resolved configuration. Reading only: nothing in the folder changes
except ``report.html``.

>>> from pathgan.report import write_report
>>> write_report("out/tiles")                          # doctest: +SKIP
PosixPath('out/tiles/report.html')
"""

from pathgan.report._batch import BatchReport, SlideRow, gather_batch, tissue_area_mm2
from pathgan.report._run import RunReport, gather_run
from pathgan.report._write import (
    REPORT_FILE,
    ReportKind,
    report_kind,
    write_batch_report,
    write_report,
    write_run_report,
)

__all__ = [
    "REPORT_FILE",
    "BatchReport",
    "ReportKind",
    "RunReport",
    "SlideRow",
    "gather_batch",
    "gather_run",
    "report_kind",
    "tissue_area_mm2",
    "write_batch_report",
    "write_report",
    "write_run_report",
]
