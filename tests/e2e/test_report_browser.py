"""The demo run's HTML report, and the same page served at GET /report, in headless Chromium.

The page is the one ``edgefinder demo --report`` wrote (``demo_run``, conftest.py), opened from its
file and from a real uvicorn on an ephemeral port. What is checked, as a person would see it:

* it loads with no console error and no page error, and fetches nothing but itself (offline);
* every chart container holds a drawn Plotly chart (an SVG with marks in its plot area);
* the headline figures of each section read what the database and the checkpoint files hold, read
  here independently (``sqlite3``, ``json``, ``pandas``), and the charts carry those numbers too;
* 1280×800 screenshots of the esports and futures sections (saved under ``EDGEFINDER_SCREENSHOT_DIR``
  when set — the README's pictures in docs/ are made that way — else in the test's temporary folder).
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.browser import VIEWPORT, chromium, png_size
from tests.e2e.conftest import DemoRun

pytestmark = pytest.mark.slow

INTENTS = ("advance", "retreat", "hold", "peek", "plant", "defuse", "rotate", "trade", "engage")
FIGURES = (
    "forest",
    "refutation",
    "balance",
    "equity",
    "families",
    "ancestry",
    "regret",
    "template_pnl",
)


def _money(x: float) -> str:
    return f"{'-' if x < 0 else ''}${abs(x):,.2f}"


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------------------------- what the files hold


@pytest.fixture(scope="module")
def truth(demo_run: DemoRun) -> dict[str, Any]:
    """The figures the page must show, read from the database and the checkpoints without edgefinder."""
    con = sqlite3.connect(demo_run.database)
    try:
        one = lambda sql, *a: con.execute(sql, a).fetchone()[0]  # noqa: E731
        run_id = one(
            "SELECT run_id FROM analysis_runs WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1"
        )
        cols = [r[1] for r in con.execute("PRAGMA table_info(correlation_results)")]
        rows = [
            dict(zip(cols, r))
            for r in con.execute("SELECT * FROM correlation_results WHERE run_id = ?", (run_id,))
        ]
        es = {
            "run_id": run_id,
            "matches": one("SELECT count(*) FROM matches"),
            "finished_rounds": one("SELECT count(*) FROM rounds WHERE end_ts IS NOT NULL"),
            "team_rounds": one("SELECT count(*) FROM macro_outcomes"),
            "n_rows": one("SELECT n_rows FROM analysis_runs WHERE run_id = ?", run_id),
            "signals": one("SELECT count(*) FROM micro_actions"),
            "raw_events": one("SELECT count(*) FROM raw_events"),
            "dead_letters": one("SELECT count(*) FROM dead_letters"),
            "n_tests": len(rows),
            "n_significant": sum(1 for r in rows if r["significant"]),
            "alerts": one("SELECT count(*) FROM alerts WHERE run_id = ?", run_id),
            "rows": rows,
            "players": {
                r[0]
                for r in con.execute(
                    "SELECT player_hash FROM micro_actions UNION "
                    "SELECT player_hash FROM match_players"
                )
            },
        }
    finally:
        con.close()
    ck = demo_run.checkpoints
    fu = {
        "forward": json.loads((ck / "phase4_report.json").read_text()),
        "paper": json.loads((ck / "paper_trade_report.json").read_text()),
        "playbook": json.loads((ck / "production_playbook.json").read_text()),
        "families": pd.read_csv(ck / "phase5_families.csv"),
        "ancestry": pd.read_csv(ck / "phase5_ancestry.csv"),
        "templates": pd.read_csv(ck / "phase5_templates.csv"),
    }
    return {"es": es, "fu": fu}


# ------------------------------------------------------------------------- the browser


class Loaded:
    """A page opened in Chromium with what it logged and fetched."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def figure(self, key: str) -> str:
        return self.page.locator(f'[data-figure="{key}"]').first.inner_text().strip()

    def chart(self, name: str) -> list[dict[str, Any]]:
        """The traces of chart ``name`` as Plotly holds them in the page."""
        return self.page.evaluate("id => document.getElementById(id).data", f"fig-{name}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as ctx:
        yield ctx


@pytest.fixture(scope="module")
def page(browser: Any, demo_run: DemoRun) -> Iterator[Loaded]:
    p = browser.new_page()
    loaded = Loaded(p)
    p.goto(demo_run.report.as_uri(), wait_until="load")
    p.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")
    yield loaded
    p.close()


def test_page_loads_offline_without_errors(page: Loaded, demo_run: DemoRun) -> None:
    assert page.errors == []
    assert page.requests and all(
        u.startswith(("file:", "data:", "blob:", "about:")) for u in page.requests
    ), [u for u in page.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert page.page.title().startswith("edgefinder report")
    # purpose and disclaimer on every part of the page
    banners = page.page.locator('[data-figure="disclaimer"]').all_inner_texts()
    assert len(banners) >= 4 and all("research/ops" in b and "betting" in b for b in banners)


def test_every_chart_is_drawn(page: Loaded) -> None:
    ids = page.page.eval_on_selector_all(".plotly-graph-div", "els => els.map(e => e.id)")
    assert set(FIGURES) <= {i.removeprefix("fig-") for i in ids}
    for fid in ids:
        marks = page.page.evaluate(
            """id => { const gd = document.getElementById(id);
                       const svg = gd.querySelector('svg.main-svg');
                       if (!svg || !gd._fullLayout) return -1;
                       const box = svg.getBoundingClientRect();
                       if (box.width < 100 || box.height < 100) return -2;
                       const marks = gd.querySelectorAll('.scatterlayer .point, .scatterlayer .js-line, '
                                                         + '.barlayer path, .boxlayer path');
                       return [...marks].filter(m => { const r = m.getBoundingClientRect();
                                                        return r.width + r.height > 0; }).length; }""",
            fid,
        )
        assert marks > 0, f"{fid}: nothing drawn ({marks})"


def test_layout_fits_1280_px_with_readable_labels(page: Loaded) -> None:
    """At 1280 px no table is cut (needs a horizontal scroll), no tool bar lies over a chart's
    title, and the balance plot names covariates for a reader, not by their column names."""
    assert page.page.viewport_size["width"] == 1280
    cut = page.page.eval_on_selector_all(
        "div.scroll",
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1)"
        "          .map(e => (e.querySelector('table') || {}).id)",
    )
    assert cut == []
    assert page.page.locator(".modebar").count() == 0
    ticks = page.page.eval_on_selector_all(
        "#fig-balance .ytick text", "els => els.map(e => e.textContent)"
    )
    assert ticks and not [t for t in ticks if "__" in t or "_" in t], ticks
    assert any("team's match mean" in t for t in ticks)


def test_esports_headlines_and_charts_match_the_database(
    page: Loaded, truth: dict[str, Any]
) -> None:
    es = truth["es"]
    assert page.figure("es.run_id") == es["run_id"]
    for key in (
        "matches",
        "finished_rounds",
        "n_rows",
        "signals",
        "dead_letters",
        "n_tests",
        "n_significant",
    ):
        assert page.figure(f"es.{key}") == f"{es[key]:,}", key
    assert page.figure("es.data.team_rounds") == f"{es['team_rounds']:,}"
    assert page.figure("es.data.raw_events") == f"{es['raw_events']:,}"
    assert page.figure("es.alerts") == str(es["alerts"])
    rows = {(r["feature"], r["outcome"], r["method"]): r for r in es["rows"]}
    causal = "aipw_within"  # the within-match effect, with its verdict and refutation checks
    # the forest plot: the adjusted estimate of every intent on every outcome, with its CI
    want = {("round_win", causal), ("site_executed", "logistic"), ("econ_delta", "spearman")}
    drawn = 0
    for trace in page.chart("forest"):
        if trace["name"] in ("naive difference in means", "between-team AIPW (naive)"):
            continue
        axis = trace.get("xaxis", "x")
        outcome = {"x": "round_win", "x2": "site_executed", "x3": "econ_delta"}[axis]
        method = dict(want)[outcome]
        for x, y, plus in zip(trace["x"], trace["y"], trace["error_x"]["array"]):
            intent = INTENTS[round(y)]
            r = rows[(f"{intent}_count", outcome, method)]
            assert _close(x, r["effect"]) and _close(x + plus, r["ci_high"]), (intent, outcome)
            assert (trace["name"] != "not significant") == bool(r["significant"]), (intent, outcome)
            drawn += 1
    assert drawn == 3 * len(INTENTS)
    # the causal table: estimate, CI, verdict and the refutation checks' figures of each intent
    for intent in INTENTS:
        r = rows[(f"{intent}_count", "round_win", causal)]
        cell = page.figure(f"es.causal.{intent}_count.round_win")
        assert cell == f"{r['effect']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        row = page.page.locator(f'#causal-table tr[data-feature="{intent}_count"]').inner_text()
        assert r["verdict"] in ("robust", "fragile", "not significant") and r["verdict"] in row, (
            intent,
            row,
        )
        checks = json.loads(r["details"])["refutations"]
        if checks is not None:
            assert (
                f"{checks['placebo']['estimate']:+.3f}" in row
                and f"{checks['subset']['estimate']:+.3f}" in row
            )
        else:  # checks skipped (the effect is not significant): the cells say nothing was run
            assert r["verdict"] == "not significant" and row.count("—") >= 3
    robust = sum(1 for r in es["rows"] if r["verdict"] == "robust")
    assert robust > 0 and page.figure("es.robust") == str(
        robust
    )  # the demo plants effects that survive
    # the refutation chart: the placebo estimate of each intent that has the checks, as stored
    checked = [
        i
        for i in INTENTS
        if json.loads(rows[(f"{i}_count", "round_win", causal)]["details"])["refutations"]
    ]
    placebo = next(t for t in page.chart("refutation") if t["name"] == "placebo treatment")
    assert len(placebo["x"]) == len(checked) > 0
    for x, intent in zip(placebo["x"], checked):
        r = rows[(f"{intent}_count", "round_win", causal)]
        assert _close(x, json.loads(r["details"])["refutations"]["placebo"]["estimate"])
    # the balance plot: |SMD| before and after weighting of each covariate, from the stored details
    balance = {
        t["name"]: t for t in page.chart("balance") if t.get("xaxis", "x") == "x"
    }  # first panel
    from edgefinder.report.figures import covariate_label

    by_cov = {  # the plot names each covariate for a reader
        covariate_label(b["covariate"]): b
        for b in json.loads(rows[("advance_count", "round_win", causal)]["details"])["balance"]
    }
    for cov, x in zip(balance["after weighting"]["y"], balance["after weighting"]["x"]):
        assert _close(x, abs(by_cov[cov]["smd_after"])), cov


def test_no_player_identifier_on_the_page(
    page: Loaded, truth: dict[str, Any], demo_run: DemoRun
) -> None:
    html = demo_run.report.read_text(encoding="utf-8")
    players = truth["es"]["players"]
    assert players and not any(p in html for p in players)


def test_futures_headlines_and_charts_match_the_checkpoints(
    page: Loaded, truth: dict[str, Any]
) -> None:
    fu = truth["fu"]
    fwd, paper, playbook = fu["forward"], fu["paper"], fu["playbook"]
    oos = fwd["out_of_sample"]
    assert page.figure("fu.oos.trades") == f"{oos['total_trades']:,}"
    assert page.figure("fu.oos.pnl") == _money(oos["total_pnl"])
    assert page.figure("fu.oos.mean") == _money(oos["mean_pnl_per_trade"])
    assert page.figure("fu.paper.trades") == f"{paper['total_trades']:,}"
    assert page.figure("fu.paper.pnl") == _money(paper["total_pnl"])
    assert (
        page.figure("fu.families_qualified")
        == f"{playbook['families_qualified']} / {playbook['families_tested']}"
    )
    assert page.figure("fu.production_templates") == str(len(playbook["templates"]))
    assert page.figure("fu.status") == playbook["status"].replace("_", " ")  # pending review
    for sample, block in (
        ("in-sample", fwd["in_sample"]),
        ("out-of-sample", oos),
        ("paper trade", paper),
    ):
        assert page.figure(f"fu.sample.{sample}.trades") == f"{block['total_trades']:,}"
        assert page.figure(f"fu.sample.{sample}.pnl") == _money(block["total_pnl"])
        assert f"{block['power']['n']:,} trades" in page.figure(f"fu.power.{sample}")
        assert _money(block["power"]["minimum_detectable"]) in page.figure(f"fu.power.{sample}")
    tiers = fu["templates"]["tier"].value_counts()
    for i, tier in enumerate((1, 2, 3, 4, 0)):
        assert page.figure(f"fu.tier.{i}") == str(int(tiers.get(tier, 0)))
    # equity curves end at each sample's total; the sessions are the report's own
    curves = {t["name"]: t for t in page.chart("equity")}
    assert set(curves) == {"in-sample", "out-of-sample", "paper trade"}
    for name, block in (
        ("in-sample", fwd["in_sample"]),
        ("out-of-sample", oos),
        ("paper trade", paper),
    ):
        assert math.isclose(curves[name]["y"][-1], block["total_pnl"], abs_tol=1e-6), name
    assert curves["paper trade"]["x"] == [d["session"] for d in paper["per_session"]]
    # families and ancestry: the estimates and their CIs as Phase 5 wrote them
    fam = fu["families"][fu["families"]["tested"]].set_index("family")
    seen = 0
    for trace in page.chart("families"):
        for x, label, plus in zip(trace["x"], trace["y"], trace["error_x"]["array"]):
            assert _close(x, fam.loc[label, "mean_pnl"]) and _close(
                x + plus, fam.loc[label, "ci_high"]
            )
            assert (trace["name"] == "qualifies") == bool(fam.loc[label, "qualifies"])
            seen += 1
    assert seen == len(fam)
    anc = fu["ancestry"].dropna(subset=["difference"])
    got = {y: x for trace in page.chart("ancestry") for x, y in zip(trace["x"], trace["y"])}
    assert len(got) == len(anc)
    for r in anc.itertuples(index=False):
        assert _close(got[f"{r.pattern_type}: {r.comparison}"], r.difference)


def test_screenshots_of_both_sections(page: Loaded, tmp_path: Path) -> None:
    out = Path(os.environ.get("EDGEFINDER_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    for section in ("esports", "futures"):
        page.page.evaluate(
            "id => document.getElementById(id).scrollIntoView({block: 'start'})", section
        )
        page.page.wait_for_timeout(150)
        path = out / f"report-{section}.png"
        data = page.page.screenshot(path=str(path))
        assert png_size(data) == (VIEWPORT["width"], VIEWPORT["height"])
        assert len(data) > 40_000, "a blank page compresses to a few kilobytes"
        top = page.page.evaluate(
            "id => document.getElementById(id).getBoundingClientRect().top", section
        )
        assert abs(top) < 2, f"{section} is not at the top of the screenshot"


def test_readme_embeds_the_committed_screenshots() -> None:
    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    for section in ("esports", "futures"):
        rel = f"docs/images/report-{section}.png"
        assert f"]({rel})" in readme, rel
        assert png_size((repo / rel).read_bytes()) == (VIEWPORT["width"], VIEWPORT["height"])


# ------------------------------------------------------------------------- GET /report on a real server


@pytest.fixture(scope="module")
def served(demo_run: DemoRun) -> Iterator[str]:
    import uvicorn

    from edgefinder.app import create_app
    from edgefinder.settings import Settings

    app = create_app(
        Settings(
            database_url=f"sqlite:///{demo_run.database.as_posix()}",
            checkpoint_dir=demo_run.checkpoints,
            data_dir=demo_run.data_dir,
        )
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_get_report_serves_the_same_page(browser: Any, served: str, truth: dict[str, Any]) -> None:
    import urllib.request

    p = browser.new_page()
    try:
        loaded = Loaded(p)
        resp = p.goto(f"{served}/report", wait_until="load")
        assert (
            resp is not None
            and resp.status == 200
            and resp.headers["content-type"].startswith("text/html")
        )
        p.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")
        assert loaded.errors == []
        assert {u for u in loaded.requests} == {f"{served}/report"}  # nothing else is fetched
        assert loaded.figure("es.run_id") == truth["es"]["run_id"]
        assert loaded.figure("fu.oos.pnl") == _money(
            truth["fu"]["forward"]["out_of_sample"]["total_pnl"]
        )
    finally:
        p.close()
    with urllib.request.urlopen(f"{served}/api/v1/report/futures", timeout=30) as r:
        doc = json.loads(r.read())
    assert doc["purpose"] == "research/ops" and doc["available"] is True
    assert [c["sample"] for c in doc["equity"]] == ["in-sample", "out-of-sample", "paper trade"]
    with urllib.request.urlopen(f"{served}/api/v1/report/esports", timeout=30) as r:
        doc = json.loads(r.read())
    assert doc["run"]["run_id"] == truth["es"]["run_id"] and len(doc["effects"]) == 3 * len(INTENTS)
