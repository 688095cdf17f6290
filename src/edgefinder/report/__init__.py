"""The HTML report of both pipelines: one self-contained page, also served at ``GET /report``.

* :mod:`~edgefinder.report.esports` — the esports section's data (a succeeded correlation run and the
  data behind it) from the database;
* :mod:`~edgefinder.report.futures` — the futures section's data from a checkpoint directory;
* :mod:`~edgefinder.report.figures` — the Plotly figures drawn from those data;
* :mod:`~edgefinder.report.page` — the page (Jinja2 template, plotly.js embedded: opens offline);
* :mod:`~edgefinder.report.build` — :func:`build_report` and :func:`write_report`;
* :mod:`~edgefinder.report.api` — ``GET /report`` and the figures' data under ``/api/v1/report``.

Every part of the page carries the purpose and the disclaimer; no player identifier is read.
"""

from edgefinder.report.build import Report, build_report, write_report

__all__ = ["Report", "build_report", "write_report"]
