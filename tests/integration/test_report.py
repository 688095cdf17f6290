"""The report's data against the database, its alerts, its privacy, the API routes and the CLI.

A module-scoped SQLite database holds two runs on two simulated seasons, so the second run raises
alerts: season 1 (20 matches) plants no trade effect (``b_trade = 0``), season 2 (40 more matches) a
strong one (``b_trade = +0.6``) and reverses retreat (``b_retreat = +0.6``). Expected values are read
with plain ``sqlite3``, not through the report's code.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from edgefinder.app import create_app
from edgefinder.esports.aggregate import COUNT_FEATURES
from edgefinder.esports.jobs import JobParams, run_correlation_job
from edgefinder.esports.simulate import SimConfig, simulate
from edgefinder.esports.synthdb import load_units
from edgefinder.report import build_report
from edgefinder.report.esports import RunNotFound, esports_data
from edgefinder.report.futures import ReportError, futures_data
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from edgefinder.store.migrate import upgrade
from tests.cli_runs import run_edgefinder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seasons(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("report") / "report.sqlite3"
    url = f"sqlite:///{path.as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    load_units(engine, simulate(20, seed=41, config=SimConfig(b_trade=0.0)).units, seed=41)
    first = run_correlation_job(engine, params=JobParams(seed=0))
    load_units(
        engine, simulate(40, seed=42, config=SimConfig(b_trade=0.6, b_retreat=0.6)).units, seed=42
    )
    second = run_correlation_job(engine, params=JobParams(seed=0))
    assert first.status == second.status == "succeeded" and second.n_alerts > 0
    yield {"url": url, "path": path, "engine": engine, "first": first, "second": second}
    engine.dispose()


def _rows(path: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_esports_data_reads_what_the_database_holds(seasons: dict[str, Any]) -> None:
    path, second = seasons["path"], seasons["second"]
    d = esports_data(seasons["engine"])
    assert d["available"] and d["run"]["run_id"] == second.run_id
    one = lambda sql: _rows(path, sql)[0][0]  # noqa: E731
    assert d["data"]["matches"] == one("SELECT count(*) FROM matches") == 60
    assert d["data"]["finished_rounds"] == one(
        "SELECT count(*) FROM rounds WHERE end_ts IS NOT NULL"
    )
    assert d["data"]["team_rounds"] == one("SELECT count(*) FROM macro_outcomes") == second.n_rows
    assert d["data"]["signals"] == one("SELECT count(*) FROM micro_actions")
    assert (
        d["run"]["n_tests"] == second.n_tests and d["run"]["n_significant"] == second.n_significant
    )
    rows = {
        (r["feature"], r["outcome"], r["method"]): r
        for r in _rows(path, "SELECT * FROM correlation_results WHERE run_id = ?", second.run_id)
    }
    causal = "aipw_within"
    method = {"round_win": causal, "site_executed": "logistic", "econ_delta": "spearman"}
    assert {(e["feature"], e["outcome"]) for e in d["effects"]} == {
        (f, o) for f in COUNT_FEATURES for o in method
    }
    for e in d["effects"]:
        r = rows[(e["feature"], e["outcome"], method[e["outcome"]])]
        assert e["method"] == method[e["outcome"]]
        assert (e["estimate"], e["ci_low"], e["ci_high"], e["q_value"]) == (
            r["effect"],
            r["ci_low"],
            r["ci_high"],
            r["q_value"],
        )
        assert e["significant"] == bool(r["significant"])
        if e["outcome"] == "round_win":
            assert e["naive"] == json.loads(r["details"])["naive"]
        if e["outcome"] == "round_win":  # the between-team estimate beside the within-match one
            assert e["between"] == rows[(e["feature"], "round_win", "aipw_naive")]["effect"]
    assert len(d["causal"]) == len(COUNT_FEATURES)
    for c in d["causal"]:  # verdicts and the refutation checks' figures as stored
        r = rows[(c["feature"], "round_win", causal)]
        assert c["verdict"] == r["verdict"] and c["verdict"] in (
            "robust",
            "fragile",
            "not significant",
        )
        assert c["refutations"] == json.loads(r["details"])["refutations"]
        if (
            c["refutations"] is None
        ):  # the checks say why they did not run (not significant, no estimate)
            assert c["refutations_skipped"] and c["verdict"] == "not significant"
        else:
            assert set(c["refutations"]) >= {"placebo", "subset", "random_common_cause"}
        if c["significant"]:  # a significant effect always gets the checks its verdict rests on
            assert c["refutations"] is not None and c["verdict"] in ("robust", "fragile")
    assert any(c["significant"] for c in d["causal"])
    # balance: every covariate of every causal estimate, before and after weighting
    for c in d["causal"]:
        stored = json.loads(rows[(c["feature"], "round_win", causal)]["details"])["balance"]
        mine = {b["covariate"]: b for b in d["balance"] if b["feature"] == c["feature"]}
        assert set(mine) == {b["covariate"] for b in stored}
        for b in stored:
            assert mine[b["covariate"]]["smd_after"] == b["smd_after"]


def test_the_report_shows_the_alerts_of_its_run(seasons: dict[str, Any]) -> None:
    second, first = seasons["second"], seasons["first"]
    stored = _rows(
        seasons["path"], "SELECT id, kind, feature FROM alerts WHERE run_id = ?", second.run_id
    )
    assert len(stored) == second.n_alerts
    rep = build_report(seasons["engine"], seasons["url"], seasons["path"].parent / "no-checkpoints")
    assert [a["id"] for a in rep.esports["alerts"]] == [r["id"] for r in stored]
    for r in stored:
        assert f'data-alert="{r["id"]}"' in rep.html
    assert "trade_count → round_win" in rep.html  # the planted change shows up
    assert rep.futures["available"] is False and "no forward-pass report" in rep.futures["message"]
    # an earlier run by id: its own results, and it raised no alerts (nothing before it)
    early = esports_data(seasons["engine"], first.run_id)
    assert early["run"]["run_id"] == first.run_id and early["alerts"] == []
    with pytest.raises(RunNotFound, match="no succeeded analysis run 'nope'"):
        esports_data(seasons["engine"], "nope")


def test_no_player_or_team_identifier_leaves_the_database(seasons: dict[str, Any]) -> None:
    rep = build_report(seasons["engine"], seasons["url"], seasons["path"].parent)
    text = rep.html + json.dumps(rep.esports)
    path = seasons["path"]
    players = {
        r[0]
        for r in _rows(
            path,
            "SELECT player_hash FROM micro_actions UNION SELECT player_hash FROM "
            "match_players UNION SELECT killer_hash FROM kills WHERE killer_hash "
            "IS NOT NULL",
        )
    }
    teams = {
        r[0] for r in _rows(path, "SELECT team_a FROM matches UNION SELECT team_b FROM matches")
    }
    assert players and teams
    assert not [p for p in players if p in text] and not [
        t for t in teams if f">{t}<" in text or f'"{t}"' in text
    ]


def test_api_serves_the_page_and_its_data(seasons: dict[str, Any], tmp_path: Path) -> None:
    c = TestClient(
        create_app(Settings(database_url=seasons["url"], checkpoint_dir=tmp_path / "none"))
    )
    page = c.get("/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert seasons["second"].run_id in page.text and "research/ops" in page.text
    early = c.get("/report", params={"run_id": seasons["first"].run_id})
    assert early.status_code == 200 and seasons["first"].run_id in early.text
    body = c.get("/api/v1/report/esports").json()
    assert body["purpose"] == "research/ops" and "betting" in body["disclaimer"]
    direct = esports_data(seasons["engine"])
    assert body["effects"] == direct["effects"] and body["alerts"] == direct["alerts"]
    assert body["run"]["run_id"] == seasons["second"].run_id
    fu = c.get("/api/v1/report/futures").json()
    assert fu["available"] is False and str(tmp_path / "none") in fu["message"]
    for path in ("/report", "/api/v1/report/esports"):
        r = c.get(path, params={"run_id": "nope"})
        assert r.status_code == 404 and r.json()["message"] == "no succeeded analysis run 'nope'"
    assert c.get("/api/v1/report/esports", params={"run_id": "x" * 40}).status_code == 422


def test_a_damaged_checkpoint_file_is_named_in_one_line(
    seasons: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "phase4_report.json").write_text("{not json")
    with pytest.raises(ReportError, match="phase4_report.json"):
        futures_data(tmp_path)
    c = TestClient(create_app(Settings(database_url=seasons["url"], checkpoint_dir=tmp_path)))
    r = c.get("/api/v1/report/futures")
    # a retry cannot mend the file: a server error (500), not "unavailable" (503)
    assert r.status_code == 500 and "phase4_report.json" in r.json()["message"]
    assert r.json()["request_id"] == r.headers["X-Request-ID"]
    (tmp_path / "phase4_report.json").write_text("{}")
    (tmp_path / "phase5_templates.csv").write_bytes(b"\x00\x01garbage\n\xff")
    out = run_edgefinder(
        [
            "--database-url",
            seasons["url"],
            "report",
            "--checkpoint-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "r.html"),
        ],
        tmp_path,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "phase5_templates.csv" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_an_empty_or_fresh_database_says_what_to_run(tmp_path: Path, sqlite_url: str) -> None:
    blank = make_engine(f"sqlite:///{(tmp_path / 'blank.sqlite3').as_posix()}")
    d = esports_data(blank)
    assert d["available"] is False and "edgefinder db upgrade" in d["message"]
    blank.dispose()
    fresh = make_engine(sqlite_url)
    d = esports_data(fresh)
    assert d["available"] is False and "no succeeded analysis run yet" in d["message"]
    assert d["data"]["matches"] == 0
    fresh.dispose()


def test_report_command_writes_the_file(seasons: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    res = run_edgefinder(
        [
            "--database-url",
            seasons["url"],
            "report",
            "--out",
            str(out),
            "--esports-run",
            seasons["first"].run_id,
            "--checkpoint-dir",
            str(tmp_path),
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert f"report: {out}" in res.stdout and seasons["first"].run_id in res.stdout
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and seasons["first"].run_id in html
    bad = run_edgefinder(
        ["--database-url", seasons["url"], "report", "--out", str(out), "--esports-run", "nope"],
        tmp_path,
    )
    assert bad.returncode == 1 and "no succeeded analysis run 'nope'" in bad.stderr


def test_analyze_rows_as_json_and_csv(seasons: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "copy.sqlite3"
    db.write_bytes(seasons["path"].read_bytes())
    url = f"sqlite:///{db.as_posix()}"
    js = run_edgefinder(["esports", "analyze", "--database-url", url, "--format", "json"], tmp_path)
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)  # stdout holds the document alone
    assert (
        doc["status"] == "succeeded"
        and doc["purpose"] == "research/ops"
        and len(doc["results"]) == doc["n_tests"]
    )
    stored = _rows(
        db,
        "SELECT feature, outcome, method, effect, q_value FROM correlation_results WHERE run_id = ? "
        "ORDER BY id",
        doc["run_id"],
    )
    assert [(r["feature"], r["outcome"], r["method"]) for r in doc["results"]] == [
        (r["feature"], r["outcome"], r["method"]) for r in stored
    ]
    assert [r["effect"] for r in doc["results"]] == [r["effect"] for r in stored]
    csv = run_edgefinder(["esports", "analyze", "--database-url", url, "--format", "csv"], tmp_path)
    assert csv.returncode == 0, csv.stderr
    from io import StringIO

    frame = pd.read_csv(StringIO(csv.stdout))
    assert len(frame) == doc["n_tests"]
    assert {"feature", "outcome", "method", "effect", "q_value", "details"} <= set(frame)
    assert frame["run_id"].nunique() == 1 and frame["run_id"][0] != doc["run_id"]  # a second run


# ---------------------------------------- every listed trade with its context at entry


@pytest.fixture(scope="module")
def futures_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reverting-edge ATLAS of 60 sessions: Phases 2–3 learn 1–30, the forward pass judges 31–45,
    the (pending) production playbook is paper traded on 46–60."""
    import io

    from rich.console import Console

    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.paper_trade import run_paper_trade
    from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

    root = tmp_path_factory.mktemp("futures_report")
    data, ck = root / "atlas", root / "ck"
    dates = session_dates(SynthConfig().start, 60)
    generate_atlas(data, SynthConfig(sessions=60, seed=5, edge="reverting"))
    orch = Orchestrator(
        data,
        ck,
        iterations=5,
        train_until=dates[30].isoformat(),
        seed=5,
        dashboard=False,
        console=Console(file=io.StringIO()),
    )
    orch.run()
    orch.run_forward_pass(day_lines=False, forward_until=dates[45].isoformat())
    orch.run_strategy_selection()
    run_paper_trade(ck, data, dates[45].isoformat(), allow_pending=True)
    return ck


def test_every_listed_trade_shows_its_context_at_entry(
    futures_checkpoints: Path, seasons: dict[str, Any]
) -> None:
    from edgefinder.report.futures import TRADE_ROWS

    ck = futures_checkpoints
    trades = pd.read_parquet(ck / "phase4_trades.parquet")
    oos = trades[trades["out_of_sample"]]
    paper = pd.read_parquet(ck / "paper_trade_trades.parquet")
    tfs = ["1D", "4h", "1h", "15m", "5m", "1m"]
    tfs = [tf for tf in tfs if f"ctx_{tf}_stretch" in trades.columns]
    assert len(oos) > 0 and len(paper) > 0 and tfs  # both samples listed (seed 5: 3,330 and 974)
    fu = futures_data(ck)
    section = fu["trades"]
    assert section["timeframes"] == tfs
    want = {"out-of-sample": oos, "paper trade": paper}
    assert section["total"] == {k: len(v) for k, v in want.items() if len(v)}
    rows = pd.DataFrame(section["rows"])
    names = {1: "with", -1: "against", 0: "calm"}
    for sample, frame in want.items():
        got = rows[rows["sample"] == sample].reset_index(drop=True)
        exp = frame.tail(TRADE_ROWS).reset_index(drop=True)
        assert len(got) == len(exp), sample
        # every listed trade: its template, side, PnL and each coarser timeframe's state, z and age
        assert (got["template_id"] == exp["template_id"]).all()
        assert (got["side"] == exp["direction"].str.lower()).all()
        assert got["pnl"].to_numpy() == pytest.approx(exp["pnl"].to_numpy())
        for tf in tfs:
            assert (got[f"{tf}_state"] == exp[f"ctx_{tf}_stretch"].map(names)).all(), tf
            z = pd.to_numeric(got[f"{tf}_z"]).to_numpy(float)
            assert z == pytest.approx(exp[f"ctx_{tf}_z"].to_numpy(float), nan_ok=True)
            age = pd.to_numeric(got[f"{tf}_bars_since_pattern"]).to_numpy(float)
            assert age == pytest.approx(exp[f"ctx_{tf}_age"].to_numpy(float), nan_ok=True)
    # the page lists the same rows, each with a state cell per coarser timeframe
    html = build_report(seasons["engine"], seasons["url"], ck).html
    table = html.split('id="trade-context"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr data-trade=") == len(rows)
    assert table.count("data-ctx=") == len(rows) * len(tfs)
    for r in rows.itertuples(index=False):
        assert r.entry_time in table
    # the API serves every trade (pages and CSV), not only the listed ones
    c = TestClient(create_app(Settings(database_url=seasons["url"], checkpoint_dir=ck)))
    body = c.get("/api/v1/report/futures/trades", params={"limit": 50, "offset": 0}).json()
    assert body["total"] == len(oos) + len(paper) and len(body["rows"]) == min(50, body["total"])
    csv = c.get("/api/v1/report/futures/trades", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    full = pd.read_csv(io.StringIO(csv.text))
    assert len(full) == len(oos) + len(paper)
    assert set(full["1h_state" if "1h" in tfs else f"{tfs[0]}_state"]) <= set(names.values())
    assert c.get("/api/v1/report/futures/trades", params={"limit": 0}).status_code == 422
    assert c.get("/api/v1/report/futures").json()["trades"]["shown"] == len(rows)
