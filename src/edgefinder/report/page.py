"""The report page: the sections' data, their Plotly figures and one Jinja2 template, as one HTML file.

The page is self-contained: plotly.js is embedded once (``plotly.offline.get_plotlyjs``), styles are
inline, nothing is fetched, so the file opens offline and can be mailed or archived. Every headline
figure carries ``data-figure="<key>"`` (a stable name the browser test reads); every chart sits in a
``div.plotly-graph-div`` with the id ``fig-<name>``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import plotly.io as pio
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.markets.summary import money
from edgefinder.report import figures

__all__ = ["render_page"]

# The mode bar sits over a figure's top right corner, where the last panel's title is (the economy
# panel of the forest plot): a static page needs no zoom buttons, so there is none to cover it.
_PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "displayModeBar": False,
}


@lru_cache(maxsize=1)
def _plotlyjs() -> Markup:
    from plotly.offline import get_plotlyjs

    return Markup(get_plotlyjs())


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_int(v: Any) -> str:
    return f"{int(v):,}" if _finite(v) else "—"


def fmt_num(v: Any, spec: str = "+.3f") -> str:
    return format(float(v), spec) if _finite(v) else "—"


def fmt_money(v: Any, digits: int = 2) -> str:
    return money(float(v), digits) if _finite(v) else "—"


def fmt_pct(v: Any, digits: int = 1) -> str:
    return f"{float(v):.{digits}%}" if _finite(v) else "—"


def fmt_p(v: Any) -> str:
    """p and q values: two significant digits, '<1e-300' for an underflow to zero."""
    if not _finite(v):
        return "—"
    return "<1e-300" if v == 0 else f"{float(v):.2g}"


def fmt_ci(lo: Any, hi: Any, fmt: Any = fmt_num) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]" if _finite(lo) and _finite(hi) else ""


def fmt_age(seconds: Any) -> str:
    """A duration in the largest unit that keeps it readable (s, min, h, d)."""
    if not _finite(seconds):
        return "—"
    s = float(seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.0f} s"


def _figure(fig: Any, name: str) -> Markup | None:
    if fig is None:
        return None
    return Markup(
        pio.to_html(
            fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}", config=_PLOT_CONFIG
        )
    )


def _figures(esports: dict[str, Any], futures: dict[str, Any]) -> dict[str, Markup | None]:
    f = figures
    return {
        "forest": _figure(
            f.forest_figure(
                esports.get("effects") or [], (esports.get("run") or {}).get("not_available")
            ),
            "forest",
        ),
        "refutation": _figure(f.refutation_figure(esports.get("causal") or []), "refutation"),
        "balance": _figure(f.balance_figure(esports.get("balance") or []), "balance"),
        "action_values": _figure(
            f.action_value_figure(esports.get("action_values") or []), "action_values"
        ),
        "reliability": _figure(f.reliability_figure(esports.get("winprob") or []), "reliability"),
        "equity": _figure(f.equity_figure(futures.get("equity") or []), "equity"),
        "families": _figure(f.families_figure(futures.get("families")), "families"),
        "ancestry": _figure(f.ancestry_figure(futures.get("ancestry")), "ancestry"),
        "regret": _figure(f.regret_figure(futures.get("regret")), "regret"),
        "template_pnl": _figure(
            f.template_pnl_figure(futures.get("top_templates") or []), "template_pnl"
        ),
    }


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("edgefinder.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(int=fmt_int, num=fmt_num, money=fmt_money, pct=fmt_pct, p=fmt_p, age=fmt_age)
    env.globals.update(ci=fmt_ci, fmt_num=fmt_num, fmt_money=fmt_money)
    return env


def render_page(
    esports: dict[str, Any], futures: dict[str, Any], provenance: dict[str, Any]
) -> str:
    """The whole HTML page of the report for the two sections' data and the provenance block."""
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            es=esports,
            fu=futures,
            prov=provenance,
            fig=_figures(esports, futures),
            plotlyjs=_plotlyjs(),
            purpose=PURPOSE,
            disclaimer=DISCLAIMER,
        )
    )
