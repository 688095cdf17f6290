"""Build the report: both sections' data, the provenance block, the page; write it to a file.

:func:`build_report` is what ``edgefinder report``, ``edgefinder demo --report`` and ``GET /report``
call. It reads the esports database (the latest succeeded run, or ``run_id``) and the futures
checkpoint directory; either may be empty, and its section then says what to run.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.jsonsafe import jsonable
from edgefinder.markets._io import atomic_write_text
from edgefinder.report.esports import esports_data
from edgefinder.report.futures import futures_data
from edgefinder.report.page import render_page

__all__ = ["Report", "build_report", "flat_settings", "provenance", "write_report"]

#: Distributions whose versions the report names (the statistics and the picture depend on them).
VERSIONED = (
    "edgefinder",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "scikit-learn",
    "optuna",
    "SQLAlchemy",
    "plotly",
)


@dataclass(frozen=True)
class Report:
    """The page and the data it was drawn from (``esports``, ``futures``: the JSON of the API)."""

    html: str
    esports: dict[str, Any]
    futures: dict[str, Any]
    provenance: dict[str, Any]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(
    database_url: str, checkpoint_dir: str | Path, esports: dict[str, Any], futures: dict[str, Any]
) -> dict[str, Any]:
    """Versions, the database (password hidden), the checkpoint directory and the settings of both
    sections' results, with the generation time (UTC, seconds)."""
    return {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), **{d: _version(d) for d in VERSIONED}},
        "platform": platform.platform(terse=True),
        "database": make_url(database_url).render_as_string(hide_password=True),
        "checkpoint_dir": str(checkpoint_dir),
        "esports_settings": flat_settings((esports.get("run") or {}).get("params") or {}),
        "futures_settings": flat_settings(futures.get("config") or {}),
    }


def flat_settings(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``[("gates.min_prob", "0.05"), ...]``: nested settings as dotted names, lists joined, sorted."""
    out: list[tuple[str, str]] = []
    for key in sorted(doc):
        value, name = doc[key], f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(flat_settings(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out.append((name, ", ".join(str(v) for v in value)))
        else:
            out.append(
                (
                    name,
                    "—"
                    if value is None
                    else json.dumps(value)
                    if isinstance(value, bool)
                    else str(value),
                )
            )
    return out


def build_report(
    engine: Engine,
    database_url: str,
    checkpoint_dir: str | Path,
    *,
    run_id: str | None = None,
    stale_after_s: float = 26 * 3600,
) -> Report:
    """Both sections from the database behind ``engine`` and the checkpoints in ``checkpoint_dir``."""
    es = esports_data(engine, run_id, stale_after_s=stale_after_s)
    fu = futures_data(checkpoint_dir)
    prov = provenance(database_url, checkpoint_dir, es, fu)
    return Report(html=render_page(es, fu, prov), esports=es, futures=fu, provenance=jsonable(prov))


def write_report(report: Report, out: str | Path) -> Path:
    """Write the page to ``out`` atomically (its directory is created); returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(report.html, path)
