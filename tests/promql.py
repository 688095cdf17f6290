"""PromQL queries of deploy/ checked against the metric types a process exports.

A counter only makes sense under ``rate``/``irate``/``increase`` (a gauge there reads its drops as
counter resets); ``delta``/``deriv`` are for gauges (a counter's reset looks like a drop). The types
come from the ``# TYPE`` lines of a real ``/metrics`` answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from types import ModuleType

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from tests.esports_ops import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "edgefinder.json"
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bedgefinder_[a-z0-9_]+\b")
_RANGE_FN = re.compile(r"\b(rate|irate|increase|delta|deriv|idelta)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def prometheus_tool(name: str) -> str:
    """Path of ``prometheus`` or ``promtool`` (Debian's prometheus package; ``.ci/run`` installs it);
    a test without it fails under ``CI`` and is skipped elsewhere."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found (apt-get install prometheus; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def dashboard_exprs() -> list[str]:
    """Every query of the Grafana dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    """Every expression of the alert rules."""
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def sample_types(exposition: str) -> dict[str, str]:
    """Sample name -> the type of its family (``counter`` for ``x_total``, ``histogram`` for
    ``x_bucket``, …), from a Prometheus text exposition; families without samples count too."""
    types: dict[str, str] = {}
    for fam in text_string_to_metric_families(exposition):
        for suffix in _SUFFIXES.get(fam.type, ("",)):
            types[fam.name + suffix] = fam.type
        for s in fam.samples:
            types.setdefault(s.name, fam.type)
    return types


def module_types(module: ModuleType) -> dict[str, str]:
    """Sample name -> type of every metric a module defines at import (like :func:`sample_types`)."""
    types: dict[str, str] = {}
    for obj in vars(module).values():
        if isinstance(obj, MetricWrapperBase):
            for fam in obj.describe():
                for suffix in _SUFFIXES.get(fam.type, ("",)):
                    types[fam.name + suffix] = fam.type
    return types


def misused(exprs: list[str], types: dict[str, str]) -> list[str]:
    """``fn(metric)`` pairs whose metric type does not fit the function (see the module doc), and
    metrics no exposition knows."""
    bad: list[str] = []
    for expr in exprs:
        for fn, name in _RANGE_FN.findall(expr):
            kind = types.get(name)
            ok = (
                kind in ("counter", "histogram", "summary")
                if fn in ("rate", "irate", "increase")
                else kind == "gauge"
            )
            if not ok:
                bad.append(f"{fn}({name}) over a {kind or 'metric nobody exports'}: {expr}")
        bad += [f"{m}: nobody exports it" for m in METRIC.findall(expr) if m not in types]
    return bad
