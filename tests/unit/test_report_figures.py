"""edgefinder.report.figures and page helpers: the charts carry the data they are given, and only that."""

from __future__ import annotations

import math

import numpy as np

from edgefinder.report import figures
from edgefinder.report.build import flat_settings
from edgefinder.report.futures import _box
from edgefinder.report.page import fmt_age, fmt_ci, fmt_money, fmt_p


def _effect(
    intent: str,
    outcome: str,
    est: float,
    lo: float,
    hi: float,
    sig: bool,
    verdict: str | None = None,
    naive: float | None = None,
) -> dict:
    return {
        "feature": f"{intent}_count",
        "intent": intent,
        "outcome": outcome,
        "scale": "s",
        "n": 100,
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
        "q_value": 0.01 if sig else 0.5,
        "significant": sig,
        "exploratory": False,
        "verdict": verdict,
        "naive": naive,
        "between": None,
        "naive_ci_low": None if naive is None else naive - 1,
        "naive_ci_high": None if naive is None else naive + 1,
    }


def test_forest_says_an_outcome_the_data_cannot_provide_is_not_available() -> None:
    effects = [_effect("trade", "round_win", 0.07, 0.03, 0.12, True, "robust", naive=0.08)]
    fig = figures.forest_figure(
        effects, {"econ_delta": "no end-of-round bank in this data", "peek": "no peek signal"}
    )
    assert fig is not None
    titles = [a.text for a in fig.layout.annotations if "economy swing" in (a.text or "")]
    assert titles == ["economy swing<br><sub>not available</sub>"]
    notes = [a for a in fig.layout.annotations if "not available in this data" in (a.text or "")]
    assert len(notes) == 1 and "no end-of-round bank" in notes[0].text
    assert (notes[0].xref, notes[0].yref) == ("x2 domain", "y2 domain")  # in the economy panel
    assert fig.layout.xaxis2.visible is False
    assert all(t.xaxis == "x" for t in fig.data)  # nothing drawn in the empty panel


def test_forest_places_each_estimate_with_its_interval_and_category() -> None:
    effects = [
        _effect("trade", "round_win", 0.07, 0.03, 0.12, True, "robust", naive=0.08),
        _effect("retreat", "round_win", -0.1, -0.2, -0.05, True, "fragile", naive=-0.26),
        _effect("hold", "round_win", 0.01, -0.02, 0.04, False, "not significant", naive=0.14),
        _effect("trade", "econ_delta", 0.3, 0.25, 0.35, True),
    ]
    fig = figures.forest_figure(effects)
    by_name = {}
    for t in fig.data:
        by_name.setdefault(t.name, []).append(t)
    assert set(by_name) == {
        "robust",
        "fragile",
        "not significant",
        "naive difference in means",
        "significant (q < 0.05)",
    }
    robust = by_name["robust"][0]
    assert list(robust.x) == [0.07] and robust.error_x.array[0] == 0.12 - 0.07
    assert math.isclose(robust.error_x.arrayminus[0], 0.07 - 0.03)
    assert robust.xaxis == "x"  # round win is the first panel
    econ = by_name["significant (q < 0.05)"][0]
    assert list(econ.x) == [0.3] and econ.xaxis == "x2"
    naive = by_name["naive difference in means"][0]
    assert sorted(naive.x) == sorted([0.08, -0.26, 0.14])
    # the y position is the intent's row (order of first appearance), the naive one just below it
    assert robust.y[0] < 0 + 0.5 and math.isclose(
        naive.y[list(naive.x).index(0.08)] - robust.y[0], 0.22
    )
    # every estimate of every category at its value, with its own interval, filled when significant
    for e in effects:
        cat = e["verdict"] or "significant (q < 0.05)"
        (tr,) = by_name[cat]
        i = list(tr.x).index(e["estimate"])
        assert math.isclose(tr.error_x.array[i], e["ci_high"] - e["estimate"])
        assert math.isclose(tr.error_x.arrayminus[i], e["estimate"] - e["ci_low"])
        assert tr.marker.symbol == ("circle" if e["significant"] else "circle-open")
    assert by_name["fragile"][0].y[0] == robust.y[0] + 1  # retreat: the second intent's row
    assert by_name["not significant"][0].y[0] == robust.y[0] + 2  # hold: the third
    assert figures.forest_figure([]) is None


def test_equity_curve_and_empty_inputs() -> None:
    eq = [
        {
            "sample": "out-of-sample",
            "sessions": ["2024-01-02", "2024-01-03"],
            "pnl": [5.0, -2.0],
            "cumulative": [5.0, 3.0],
            "trades": [3, 1],
        }
    ]
    fig = figures.equity_figure(eq)
    assert list(fig.data[0].y) == [5.0, 3.0] and list(fig.data[0].x) == ["2024-01-02", "2024-01-03"]
    for fn in (
        figures.equity_figure,
        figures.balance_figure,
        figures.refutation_figure,
        figures.template_pnl_figure,
    ):
        assert fn([]) is None
    for fn in (figures.families_figure, figures.ancestry_figure, figures.regret_figure):
        assert fn(None) is None


def test_balance_shows_absolute_smds_per_intent() -> None:
    bal = [
        {"feature": "trade_count", "covariate": "side", "smd_before": -0.3, "smd_after": 0.02},
        {
            "feature": "trade_count",
            "covariate": "bank_start",
            "smd_before": 0.1,
            "smd_after": -0.05,
        },
    ]
    fig = figures.balance_figure(bal)
    before = next(t for t in fig.data if t.name == "before weighting")
    after = next(t for t in fig.data if t.name == "after weighting")
    assert (
        list(before.x) == [0.3, 0.1]
        and list(after.x) == [0.02, 0.05]
        and list(after.y) == ["side (attack)", "bank at round start"]
    )


def test_balance_labels_are_for_a_reader_not_column_names() -> None:
    bal = [
        {"feature": "hold_count", "covariate": c, "smd_before": 0.2, "smd_after": 0.01}
        for c in ("treatment__unit_mean", "bank_start__unit_mean", "loss_streak", "new_cov")
    ]
    labels = list(figures.balance_figure(bal).data[0].y)
    assert labels == [
        "intent used (team's match mean)",
        "bank at round start (team's match mean)",
        "loss streak",
        "new cov",
    ]
    assert not any("__" in str(y) for t in figures.balance_figure(bal).data for y in t.y)


def test_box_statistics_match_numpy() -> None:
    rng = np.random.default_rng(3)
    pnl = np.concatenate(
        [rng.normal(1.0, 10.0, 500), [200.0, -150.0]]
    )  # two outliers beyond the fences
    b = _box(pnl)
    q1, med, q3 = np.quantile(pnl, [0.25, 0.5, 0.75])
    assert (b["q1"], b["median"], b["q3"]) == (q1, med, q3) and math.isclose(b["mean"], pnl.mean())
    iqr = q3 - q1
    assert b["upperfence"] == pnl[pnl <= q3 + 1.5 * iqr].max() < 200.0
    assert b["lowerfence"] == pnl[pnl >= q1 - 1.5 * iqr].min() > -150.0


def test_formatting_helpers() -> None:
    assert fmt_p(0.0) == "<1e-300" and fmt_p(0.000123) == "0.00012" and fmt_p(None) == "—"
    assert fmt_money(-1234.5) == "-$1,234.50" and fmt_money(float("nan")) == "—"
    assert fmt_ci(0.1, 0.2) == "[+0.100, +0.200]" and fmt_ci(None, 0.2) == ""
    assert (
        fmt_age(30) == "30 s"
        and fmt_age(90) == "1.5 min"
        and fmt_age(7200) == "2.0 h"
        and fmt_age(None) == "—"
    )
    assert flat_settings({"b": {"y": 1, "x": [1, 2]}, "a": True, "c": None}) == [
        ("a", "true"),
        ("b.x", "1, 2"),
        ("b.y", "1"),
        ("c", "—"),
    ]


def test_futures_data_without_a_production_playbook_takes_the_best_out_of_sample_templates(
    tmp_path,
) -> None:
    import json

    import pandas as pd

    from edgefinder.report.futures import futures_data

    block = {
        "days": 2,
        "total_trades": 3,
        "total_pnl": 4.0,
        "mean_pnl_per_trade": 4 / 3,
        "power": {"n": 3},
    }
    (tmp_path / "phase4_report.json").write_text(
        json.dumps(
            {
                "train_until": None,
                "all": block,
                "sessions": [
                    {"session": "2024-01-02", "out_of_sample": False, "pnl": 1.5, "trades": 2},
                    {"session": "2024-01-03", "out_of_sample": False, "pnl": 2.5, "trades": 1},
                ],
            }
        )
    )
    pd.DataFrame(
        {
            "template_id": [1, 2, 3],
            "tier": [3, 0, 4],
            "total": [5, 9, 0],
            "oos_trades": [2, 4, 0],
            "oos_pnl": [-3.0, 8.0, 0.0],
            "total_pnl": [1.0, 2.0, 0.0],
            "pattern_type": "ROCHE_SNAP",
            "timeframe": "15s",
        }
    ).to_csv(tmp_path / "phase5_templates.csv", index=False)
    (tmp_path / "pattern_library.json").write_text(
        json.dumps(
            {
                "library": {
                    "2": {"params": {"stop_loss_ticks": 9}},
                    "1": {"params": {"stop_loss_ticks": 4}},
                }
            }
        )
    )
    d = futures_data(tmp_path)
    assert [s["sample"] for s in d["samples"]] == ["all sessions"] and "too few" in d["samples"][0][
        "power_text"
    ]
    assert d["equity"][0]["cumulative"] == [1.5, 4.0]
    assert [t["template_id"] for t in d["top_templates"]] == [
        2,
        1,
    ]  # by out-of-sample PnL, traded ones only
    assert (
        d["top_templates"][0]["params"] == {"stop_loss_ticks": 9}
        and not d["top_templates"][0]["in_production"]
    )
    assert d["tiers"]["counts"]["TIER 3 — UNPROVEN"] == 1 and [
        r["template_id"] for r in d["tiers"]["rows"]
    ] == [2, 1]
    assert d["production"] is None and d["families"] is None and d["regret"] is None
    from edgefinder.report.build import provenance
    from edgefinder.report.page import render_page

    es = {"available": False, "message": "no run", "run": None}
    html = render_page(es, d, provenance("sqlite:///x.sqlite3", tmp_path, es, d))
    assert 'id="fig-equity"' in html and "T-2" in html and "no family was tested" in html
