"""Plotly figures of the report, one function per picture, drawn from the sections' data dicts.

Every function takes the JSON-ready data of :mod:`edgefinder.report.esports` or
:mod:`edgefinder.report.futures` and returns a ``plotly.graph_objects.Figure``, or None when the data
for that picture does not exist (the page then says so instead of drawing an empty chart). Colours:
robust or qualifying results green, fragile amber, significant without a verdict blue, the rest grey;
naive estimates grey diamonds beside the adjusted ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "ancestry_figure",
    "balance_figure",
    "covariate_label",
    "equity_figure",
    "families_figure",
    "forest_figure",
    "refutation_figure",
    "regret_figure",
    "template_pnl_figure",
]

GREEN, AMBER, BLUE, GREY, RED = "#1a9850", "#e08214", "#2166ac", "#8c8c8c", "#b2182b"
SAMPLE_COLORS = {
    "in-sample": GREY,
    "out-of-sample": BLUE,
    "all sessions": BLUE,
    "paper trade": GREEN,
}
#: |SMD| below this counts as balanced (the usual rule of thumb).
SMD_BALANCED = 0.1
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 10, "r": 10, "t": 50, "b": 40},
    "font": {"family": "DejaVu Sans, Arial, sans-serif", "size": 12},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
}

#: Subplot figures keep their titles on top, so their legend goes below the axes.
_LEGEND_BELOW: dict[str, Any] = {
    "orientation": "h",
    "yref": "container",
    "yanchor": "bottom",
    "y": 0.0,
    "x": 0,
}

_OUTCOME_TITLES = {
    "round_win": "round win",
    "econ_delta": "economy swing",
    "site_executed": "site executed",
}


def _errors(
    est: Sequence[float | None], lo: Sequence[float | None], hi: Sequence[float | None]
) -> dict[str, Any]:
    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else abs(a - b)

    return {
        "type": "data",
        "symmetric": False,
        "array": [gap(h, e) for e, h in zip(est, hi)],
        "arrayminus": [gap(e, low) for e, low in zip(est, lo)],
        "thickness": 1.5,
        "width": 4,
    }


def _estimate_marks(
    color: str,
    symbol: str,
    est: Sequence[float | None],
    lo: Sequence[float | None],
    hi: Sequence[float | None],
) -> dict[str, Any]:
    """``go.Scatter`` keyword arguments for point estimates with their CI whiskers in one colour."""
    return {
        "marker": {
            "color": color,
            "symbol": symbol,
            "size": 10,
            "line": {"color": color, "width": 2},
        },
        "error_x": {**_errors(est, lo, hi), "color": color},
    }


def _category(e: dict[str, Any]) -> str:
    """Legend group of one adjusted estimate: its verdict when the analysis gives one."""
    verdict = e.get("verdict")
    if verdict:
        return str(verdict)
    return "significant (q < 0.05)" if e.get("significant") else "not significant"


_CATEGORY_STYLE = {
    "robust": (GREEN, "circle"),
    "fragile": (AMBER, "circle"),
    "significant (q < 0.05)": (BLUE, "circle"),
    "not significant": (GREY, "circle-open"),
}


def _hover(e: dict[str, Any]) -> str:
    q = e.get("q_value")
    parts = [
        f"{e['feature']} → {e['outcome']}",
        f"{e['scale']}",
        f"n {e['n']:,}",
        "q —" if q is None else f"q {q:.2g}",
    ]
    if e.get("verdict"):
        parts.append(f"verdict: {e['verdict']}")
    if e.get("exploratory"):
        parts.append("exploratory (small sample)")
    return "<br>".join(parts)


def forest_figure(
    effects: list[dict[str, Any]], not_available: dict[str, str] | None = None
) -> go.Figure | None:
    """Each intent's effect on each outcome with its 95 % CI: one panel per outcome (its own scale),
    the adjusted estimate coloured by verdict or significance, the naive estimate beside it.

    ``not_available``: outcomes the data cannot provide -> why; their panel says so instead of
    staying empty (the job stores no rows for them).
    """
    if not effects:
        return None
    missing = {o: why for o, why in (not_available or {}).items() if o in _OUTCOME_TITLES}
    outcomes = list(dict.fromkeys(e["outcome"] for e in effects))
    outcomes += [o for o in missing if o not in outcomes]
    intents = list(dict.fromkeys(e["intent"] for e in effects))
    pos = {name: float(i) for i, name in enumerate(intents)}

    def scale(o: str) -> str:
        return next((e["scale"] for e in effects if e["outcome"] == o), "not available")

    titles = [f"{_OUTCOME_TITLES.get(o, o)}<br><sub>{scale(o)}</sub>" for o in outcomes]
    fig = make_subplots(
        rows=1,
        cols=len(outcomes),
        shared_yaxes=True,
        subplot_titles=titles,
        horizontal_spacing=0.03,
    )
    shown: set[str] = set()
    for col, outcome in enumerate(outcomes, start=1):
        if outcome in missing:
            axis = "" if col == 1 else str(col)
            fig.add_annotation(
                text=f"not available in this data:<br>{missing[outcome]}",
                xref=f"x{axis} domain",
                yref=f"y{axis} domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                font={"color": GREY, "size": 13},
            )
            fig.update_xaxes(visible=False, row=1, col=col)
            continue
        rows = [e for e in effects if e["outcome"] == outcome]
        has_naive = any(e.get("naive") is not None for e in rows)
        has_between = any(e.get("between") is not None for e in rows)
        offset = 0.22 if has_naive or has_between else 0.0
        for cat, (color, symbol) in _CATEGORY_STYLE.items():
            sel = [e for e in rows if _category(e) == cat]
            if not sel:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[e["estimate"] for e in sel],
                    y=[pos[e["intent"]] - offset for e in sel],
                    mode="markers",
                    name=cat,
                    legendgroup=cat,
                    showlegend=cat not in shown,
                    **_estimate_marks(
                        color,
                        symbol,
                        [e["estimate"] for e in sel],
                        [e["ci_low"] for e in sel],
                        [e["ci_high"] for e in sel],
                    ),
                    hovertext=[_hover(e) for e in sel],
                    hoverinfo="x+text",
                ),
                row=1,
                col=col,
            )
            shown.add(cat)
        for key, name, symbol, dy in (
            ("naive", "naive difference in means", "diamond-open", offset),
            ("between", "between-team AIPW (naive)", "square-open", 2 * offset),
        ):
            sel = [e for e in rows if e.get(key) is not None]
            if not sel:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[e[key] for e in sel],
                    y=[pos[e["intent"]] - offset + dy for e in sel],
                    mode="markers",
                    name=name,
                    legendgroup=key,
                    showlegend=key not in shown,
                    marker={"color": GREY, "symbol": symbol, "size": 8},
                    error_x={
                        **_errors(
                            [e[key] for e in sel],
                            [e.get(f"{key}_ci_low") for e in sel],
                            [e.get(f"{key}_ci_high") for e in sel],
                        ),
                        "color": GREY,
                    },
                    hovertext=[f"{e['feature']}: {name}" for e in sel],
                    hoverinfo="x+text",
                ),
                row=1,
                col=col,
            )
            shown.add(key)
        fig.add_vline(x=0, line={"color": "#444", "width": 1, "dash": "dot"}, row=1, col=col)
    fig.update_yaxes(
        tickvals=list(pos.values()), ticktext=list(pos), autorange="reversed", showgrid=False
    )
    fig.update_layout(**{**_LAYOUT, "legend": _LEGEND_BELOW}, height=140 + 34 * len(intents))
    fig.update_layout(margin={"t": 56, "b": 70})
    return fig


_COVARIATE_LABELS = {
    "side": "side (attack)",
    "bank_start": "bank at round start",
    "loadout_value": "own loadout value",
    "opp_loadout_value": "opponent loadout value",
    "score_diff": "score difference",
    "prev_round_result": "previous round won",
    "loss_streak": "loss streak",
    "treatment": "intent used",
}
_UNIT_MEAN = "__unit_mean"


def covariate_label(name: str) -> str:
    """A covariate's name for a reader: ``bank_start`` → "bank at round start", a Mundlak term
    ``x__unit_mean`` → "x (team's match mean)"; unknown names are shown with spaces."""
    base = name.removesuffix(_UNIT_MEAN)
    label = _COVARIATE_LABELS.get(base, base.replace("_", " "))
    return f"{label} (team's match mean)" if name.endswith(_UNIT_MEAN) else label


def balance_figure(balance: list[dict[str, Any]]) -> go.Figure | None:
    """Covariate balance of each causal estimate: |standardized mean difference| of every covariate
    between treated and control rounds, before and after weighting (one panel per intent)."""
    rows = [b for b in balance if b.get("smd_before") is not None or b.get("smd_after") is not None]
    if not rows:
        return None
    features = list(dict.fromkeys(b["feature"] for b in rows))
    ncol = min(3, len(features))
    nrow = math.ceil(len(features) / ncol)
    longest = max(len(covariate_label(b["covariate"])) for b in rows)  # y labels sit between panels
    fig = make_subplots(
        rows=nrow,
        cols=ncol,
        subplot_titles=[f.removesuffix("_count") for f in features],
        horizontal_spacing=min(0.3, 0.05 + 0.008 * longest),
        vertical_spacing=0.3 / nrow,
    )
    for i, feat in enumerate(features):
        r, c = i // ncol + 1, i % ncol + 1
        sel = [b for b in rows if b["feature"] == feat]
        covs = [covariate_label(b["covariate"]) for b in sel]
        for key, name, color, symbol in (
            ("smd_before", "before weighting", GREY, "circle-open"),
            ("smd_after", "after weighting", BLUE, "circle"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=[None if b[key] is None else abs(b[key]) for b in sel],
                    y=covs,
                    mode="markers",
                    name=name,
                    legendgroup=key,
                    showlegend=i == 0,
                    marker={"color": color, "symbol": symbol, "size": 9},
                    hovertemplate="%{y}: |SMD| %{x:.3f}<extra>" + name + "</extra>",
                ),
                row=r,
                col=c,
            )
        fig.add_vline(x=SMD_BALANCED, line={"color": RED, "width": 1, "dash": "dash"}, row=r, col=c)
        top = max(
            (abs(b[k]) for b in sel for k in ("smd_before", "smd_after") if b[k] is not None),
            default=0.0,
        )
        fig.update_xaxes(range=[0, max(1.5 * SMD_BALANCED, 1.1 * top)], row=r, col=c)
    fig.update_xaxes(title_text="|SMD|", row=nrow)
    most = max(sum(1 for b in rows if b["feature"] == f) for f in features)
    fig.update_layout(**{**_LAYOUT, "legend": _LEGEND_BELOW}, height=120 + (70 + 22 * most) * nrow)
    fig.update_layout(margin={"t": 40, "b": 90})
    return fig


def refutation_figure(causal: list[dict[str, Any]]) -> go.Figure | None:
    """The refutation checks beside each causal estimate: the placebo treatment's estimate (should be
    zero) and the estimate on half of the matches (should agree), each with its 95 % CI."""
    rows = [c for c in causal if c.get("refutations")]
    if not rows:
        return None
    pos = {c["intent"]: float(i) for i, c in enumerate(rows)}
    fig = go.Figure()
    for key, name, color, symbol, dy in (
        (None, "estimate", BLUE, "circle", -0.25),
        ("placebo", "placebo treatment", RED, "x", 0.0),
        ("subset", "half of the matches", AMBER, "diamond", 0.25),
    ):
        est, lo, hi, y, text = [], [], [], [], []
        for c in rows:
            if key is None:
                e, (a, b) = c["estimate"], (c["ci_low"], c["ci_high"])
            else:
                chk = (c["refutations"] or {}).get(key) or {}
                ci = chk.get("ci") or [None, None]
                e, (a, b) = chk.get("estimate"), (ci[0], ci[1])
                text.append(
                    f"{c['intent']} {name}: passed {chk.get('passed')} ({chk.get('rule', '')})"
                )
            est.append(e)
            lo.append(a)
            hi.append(b)
            y.append(pos[c["intent"]] + dy)
        fig.add_trace(
            go.Scatter(
                x=est,
                y=y,
                mode="markers",
                name=name,
                marker={"color": color, "symbol": symbol, "size": 9},
                error_x={**_errors(est, lo, hi), "color": color},
                hovertext=text or None,
                hoverinfo="x+text" if text else "x+name",
            )
        )
    fig.add_vline(x=0, line={"color": "#444", "width": 1, "dash": "dot"})
    fig.update_yaxes(
        tickvals=list(pos.values()), ticktext=list(pos), autorange="reversed", showgrid=False
    )
    fig.update_xaxes(title_text="ATE, probability points")
    fig.update_layout(**_LAYOUT, height=120 + 48 * len(rows))
    return fig


def equity_figure(equity: list[dict[str, Any]]) -> go.Figure | None:
    """Cumulative PnL per session of each sample (in-sample, out-of-sample, paper trade), each from zero."""
    if not equity:
        return None
    fig = go.Figure()
    for c in equity:
        fig.add_trace(
            go.Scatter(
                x=c["sessions"],
                y=c["cumulative"],
                mode="lines+markers",
                name=c["sample"],
                line={"color": SAMPLE_COLORS.get(c["sample"], BLUE), "width": 2},
                marker={"size": 4},
                customdata=list(zip(c["pnl"], c["trades"])),
                hovertemplate="%{x}: cumulative $%{y:,.2f}<br>session $%{customdata[0]:,.2f}, "
                "%{customdata[1]} trades<extra>" + c["sample"] + "</extra>",
            )
        )
    fig.add_hline(y=0, line={"color": "#444", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="cumulative PnL, $ per contract (net)", tickprefix="$")
    fig.update_xaxes(title_text="session")
    fig.update_layout(**_LAYOUT, height=380)
    return fig


def _interval_figure(
    labels: list[str],
    est: list[float | None],
    lo: list[float | None],
    hi: list[float | None],
    good: list[bool],
    good_name: str,
    other_name: str,
    hover: list[str],
    x_title: str,
) -> go.Figure:
    fig = go.Figure()
    for flag, name, color, symbol in (
        (True, good_name, GREEN, "circle"),
        (False, other_name, GREY, "circle-open"),
    ):
        idx = [i for i, g in enumerate(good) if g is flag]
        if not idx:
            continue
        fig.add_trace(
            go.Scatter(
                x=[est[i] for i in idx],
                y=[labels[i] for i in idx],
                mode="markers",
                name=name,
                **_estimate_marks(
                    color, symbol, [est[i] for i in idx], [lo[i] for i in idx], [hi[i] for i in idx]
                ),
                hovertext=[hover[i] for i in idx],
                hoverinfo="x+text",
            )
        )
    fig.add_vline(x=0, line={"color": "#444", "width": 1, "dash": "dot"})
    fig.update_yaxes(
        categoryorder="array", categoryarray=labels, autorange="reversed", showgrid=False
    )
    fig.update_xaxes(title_text=x_title, tickprefix="$")
    fig.update_layout(**_LAYOUT, height=110 + 40 * len(labels))
    return fig


def ancestry_figure(ancestry: list[dict[str, Any]] | None) -> go.Figure | None:
    """Does ancestry pay? Difference of mean PnL per trade between chain groups, with 95 % CI."""
    rows = [a for a in ancestry or [] if a.get("difference") is not None]
    if not rows:
        return None
    labels = [f"{a['pattern_type']}: {a['comparison']}" for a in rows]
    hover = [
        f"{a['comparison']}: n {a['n_a']:,} vs {a['n_b']:,}, p {a['p_value']:.2g}"
        if a.get("p_value") is not None
        else a["comparison"]
        for a in rows
    ]
    good = [a.get("p_value") is not None and a["p_value"] < 0.05 for a in rows]
    return _interval_figure(
        labels,
        [a["difference"] for a in rows],
        [a.get("ci_low") for a in rows],
        [a.get("ci_high") for a in rows],
        good,
        "p < 0.05",
        "p ≥ 0.05",
        hover,
        "difference of mean PnL per trade, $ (net)",
    )


def families_figure(families: list[dict[str, Any]] | None) -> go.Figure | None:
    """Mean out-of-sample PnL per trade of each tested family with its 95 % CI; qualifying ones green."""
    rows = families or []
    if not rows:
        return None
    hover = [
        f"{f['trades']:,} trades, q {f['q_value']:.2g}, DSR {f['dsr']:.2f}, "
        f"detectable ${f['minimum_detectable']:.2f}"
        if f.get("q_value") is not None and f.get("dsr") is not None
        else f"{f['trades']:,} trades"
        for f in rows
    ]
    return _interval_figure(
        [f["family"] for f in rows],
        [f["mean_pnl"] for f in rows],
        [f.get("ci_low") for f in rows],
        [f.get("ci_high") for f in rows],
        [bool(f.get("qualifies")) for f in rows],
        "qualifies",
        "does not qualify",
        hover,
        "mean PnL per trade, $ (net)",
    )


def regret_figure(regret: dict[str, Any] | None) -> go.Figure | None:
    """Per trade: dollars left on the table (the move went on after the exit) and given back (open
    profit surrendered), on shared bins; beside it how many exits were optimal, early or late."""
    if not regret:
        return None
    edges = regret["bin_edges"]
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = [b - a for a, b in zip(edges[:-1], edges[1:])]
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.72, 0.28],
        horizontal_spacing=0.1,
        subplot_titles=["per-trade regret, $ (gross)", "exits"],
    )
    for key, name, color in (
        ("left_on_table", "left on table", AMBER),
        ("gave_back", "gave back", BLUE),
    ):
        fig.add_trace(
            go.Bar(
                x=mids,
                y=regret[key],
                width=width,
                name=name,
                marker={"color": color},
                opacity=0.6,
                hovertemplate="$%{x:,.0f}: %{y:,} trades<extra>" + name + "</extra>",
            ),
            row=1,
            col=1,
        )
    types = regret["types"]
    fig.add_trace(
        go.Bar(
            x=[k.replace("_", " ") for k in types],
            y=list(types.values()),
            showlegend=False,
            marker={"color": [GREEN, AMBER, BLUE][: len(types)]},
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(**{**_LAYOUT, "legend": _LEGEND_BELOW}, height=400, barmode="overlay")
    fig.update_layout(margin={"b": 90})
    fig.update_xaxes(tickprefix="$", row=1, col=1)
    fig.update_yaxes(title_text="trades", row=1, col=1)
    return fig


def template_pnl_figure(top: list[dict[str, Any]]) -> go.Figure | None:
    """PnL per trade of the top templates: box of the out-of-sample trades and, where traded, of the
    paper-trade trades (quartiles, 1.5 IQR fences, mean)."""
    boxes = [(t, key) for t in top for key in ("out_of_sample", "paper_trade") if t.get(key)]
    if not boxes:
        return None
    fig = go.Figure()
    for key, name, color in (
        ("out_of_sample", "out-of-sample trades", BLUE),
        ("paper_trade", "paper-trade trades", GREEN),
    ):
        sel = [t for t, k in boxes if k == key]
        if not sel:
            continue
        fig.add_trace(
            go.Box(
                x=[f"T-{t['template_id']}" for t in sel],
                name=name,
                marker={"color": color},
                boxmean=True,
                q1=[t[key]["q1"] for t in sel],
                median=[t[key]["median"] for t in sel],
                q3=[t[key]["q3"] for t in sel],
                lowerfence=[t[key]["lowerfence"] for t in sel],
                upperfence=[t[key]["upperfence"] for t in sel],
                mean=[t[key]["mean"] for t in sel],
                hoverinfo="x+y+name",
            )
        )
    fig.add_hline(y=0, line={"color": "#444", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="PnL per trade, $ (net)", tickprefix="$")
    fig.update_layout(**_LAYOUT, height=380, boxmode="group")
    return fig


def action_value_figure(values: list[dict[str, Any]]) -> go.Figure | None:
    """Win probability added per action, per intent, with its match-clustered 95 % CI."""
    rows = [v for v in values if v.get("estimate") is not None]
    if not rows:
        return None
    rows.sort(key=lambda v: -float(v["estimate"]))
    labels = [str(v["intent"]) for v in rows]
    est: list[float | None] = [float(v["estimate"]) for v in rows]
    lo: list[float | None] = [v.get("ci_low") for v in rows]
    hi: list[float | None] = [v.get("ci_high") for v in rows]
    sig = [v.get("q_value") is not None and float(v["q_value"]) < 0.05 for v in rows]
    hover = [
        f"n = {int(v['n']):,} actions in {int(v['n_matches'])} matches; q = {_fmt_q(v.get('q_value'))}"
        for v in rows
    ]
    fig = _interval_figure(
        labels,
        est,
        lo,
        hi,
        sig,
        "q < 0.05",
        "not significant",
        hover,
        "win probability added per action (probability points)",
    )
    fig.update_xaxes(tickprefix="")
    return fig


def _fmt_q(q: Any) -> str:
    return "—" if q is None else f"{float(q):.2g}"


def reliability_figure(models: list[dict[str, Any]]) -> go.Figure | None:
    """Reliability diagram of each game's win-probability model on its held-out matches: mean
    forecast against the observed win share per bin; the diagonal is perfect calibration."""
    models = [m for m in models if m.get("reliability")]
    if not models:
        return None
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfect calibration",
            line={"color": GREY, "dash": "dot", "width": 1},
        )
    )
    for m, color in zip(models, (BLUE, AMBER, GREEN), strict=False):
        rel = m["reliability"]
        fig.add_trace(
            go.Scatter(
                x=[r["forecast"] for r in rel],
                y=[r["observed"] for r in rel],
                mode="lines+markers",
                name=f"{m['game']} ({m['model_version']}), ECE {float(m['ece']):.3f}",
                marker={
                    "color": color,
                    "size": [6 + 14 * math.sqrt(r["n"] / max(x["n"] for x in rel)) for r in rel],
                },
                line={"color": color},
                hovertext=[f"{r['n']:,} held-out states" for r in rel],
                hoverinfo="x+y+text",
            )
        )
    fig.update_xaxes(title_text="forecast P(attackers win)", range=[0, 1])
    fig.update_yaxes(title_text="observed share of attacker wins", range=[0, 1])
    fig.update_layout(**_LAYOUT, height=420)
    return fig
