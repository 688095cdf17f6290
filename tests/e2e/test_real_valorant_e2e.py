"""The 42 real Valorant maps end to end: ``esports import --format ribgg --ingest`` -> Postgres ->
``POST /run-analysis`` -> ``GET`` the results through the API.

What must come out of real pro matches (no planted truth here; each figure is recomputed from the
source JSON or checked against the game's logic):

* the team that makes a round's first kill wins 71 % of those rounds (622 of 873; recomputed
  from the dumps below), and the job reports ``opening_kill`` -> ``round_win`` as a significant
  positive in-round association;
* the loadout advantage at round start is a significant positive covariate effect on round win;
* the derived motion signals fill the intent table: an AIPW estimate with a 95% CI for every
  intent the rules derive;
* no outcome mechanism (kills, kill-derived signals, plant -> site executed, defuse -> round win)
  is called an edge or leads ``/top-correlations``;
* the round win-probability model, judged on the latest 30 % of the maps (never seen in training),
  has a lower log loss and Brier score than the logistic baseline and an ECE of at most 0.05, each
  printed with its match-bootstrap CI;
* every derived intent has an action value (win probability added) with a CI.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edgefinder.cli import app
from edgefinder.esports.events import INTENTS
from edgefinder.settings import Settings
from tests.esports_pg import private_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "valorant-e2e"
API = "/api/v1/analytics"
#: what the rule set derives from rib.gg dumps (peek has no rule: no line-of-sight data)
DERIVED = ("advance", "retreat", "hold", "plant", "defuse", "rotate", "trade", "engage")


def _opening_kill_share(folder: Path) -> tuple[int, int]:
    """(rounds whose first killer's team won, rounds with a kill), straight from the JSON."""
    won = total = 0
    for path in sorted(folder.glob("*.json.gz")):
        doc = json.load(gzip.open(path))
        mid = doc["matches"]["matchDetails"]["id"]
        m = next(x for x in doc["series"]["seriesById"]["matches"] if x["id"] == mid)
        team = {p["playerId"]: p["teamNumber"] for p in m["players"]}
        winner = {r["number"]: r["winningTeamNumber"] for r in m["rounds"]}
        first: dict[int, dict] = {}
        for e in doc["matches"]["matchDetails"]["events"]:
            rn = e["roundNumber"]
            if e["eventType"] == "kill" and (
                rn not in first or e["roundTimeMillis"] < first[rn]["roundTimeMillis"]
            ):
                first[rn] = e
        total += len(first)
        won += sum(team[e["playerId"]] == winner[r] for r, e in first.items())
    return won, total


@pytest.fixture(scope="module")
def run(pg_url: str, shared_dir: Path):
    folder = shared_dir / "data" / "esports_real" / "valorant_impact"
    with private_pg_database(pg_url, "valorant") as url:
        out = CliRunner().invoke(
            app,
            [
                "--database-url",
                url,
                "esports",
                "import",
                "--format",
                "ribgg",
                str(folder),
                "--ingest",
            ],
        )
        assert out.exit_code == 0, out.output
        settings = Settings(database_url=url, api_token=TOKEN)
        from edgefinder.app import create_app

        with TestClient(create_app(settings)) as api:
            r = api.post(
                f"{API}/run-analysis",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"seed": 0},
            )
            assert r.status_code == 202, r.text
            run_id = r.json()["run_id"]
            deadline = time.monotonic() + 300
            while (status := api.get(f"{API}/runs/{run_id}").json())["status"] == "running":
                assert time.monotonic() < deadline, "analysis did not finish in 5 minutes"
                time.sleep(0.5)
            top = api.get(f"{API}/top-correlations", params={"limit": 1000}).json()
            results = top["results"] + top["outcome_mechanisms"]
            model = api.get(f"{API}/win-probability/model", params={"game": "valorant"})
            values = api.get(f"{API}/action-values").json()
            opening = api.get(f"{API}/correlations/by-feature/opening_kill").json()["results"]
            loadout = api.get(f"{API}/correlations/by-feature/loadout_advantage").json()["results"]
            summary = api.get(f"{API}/stats/summary").json()
        yield {
            "output": out.output,
            "status": status,
            "results": results,
            "top": top,
            "model": model,
            "values": values,
            "opening": opening,
            "loadout": loadout,
            "summary": summary,
            "folder": folder,
        }


def test_import_ingests_every_map_and_round(run) -> None:
    assert "42 maps, 887 rounds" in run["output"] and "0 dead letters" in run["output"]
    assert run["status"]["status"] == "succeeded", run["status"]
    # every finished round, both teams
    assert run["status"]["n_rows"] == 2 * 887
    summary = run["summary"]
    assert (summary["matches"], summary["finished_rounds"], summary["team_rounds"]) == (
        42,
        887,
        2 * 887,
    )
    assert summary["micro_actions"] > 20_000 and summary["dead_letters"] == 0


def test_opening_kill_team_wins_71_percent_and_is_significant(run) -> None:
    won, total = _opening_kill_share(run["folder"])
    assert (won, total) == (622, 873) and round(100 * won / total) == 71
    pb = next(
        r for r in run["opening"] if r["outcome"] == "round_win" and r["method"] == "point_biserial"
    )
    assert pb["details"]["kind"] == "in_round"
    assert (
        pb["significant"]
        and pb["direction"] == "positive"
        and pb["q_value"] < 0.05
        and pb["ci_low"] > 0
    )
    # the stored point-biserial r is the one a 71 % / 29 % split implies: the opening-kill rows win
    # 622 of 873, the others 887 - 622 of 901 (every round has exactly one winner)
    n1, w1, n0, w0 = 873, 622, 2 * 887 - 873, 887 - 622
    p1, p0, p = w1 / n1, w0 / n0, 887 / (2 * 887)
    q = n1 / (n1 + n0)
    r_expected = (p1 - p0) * (q * (1 - q)) ** 0.5 / (p * (1 - p)) ** 0.5
    assert pb["estimate"] == pytest.approx(r_expected, abs=1e-9)
    print(
        f"\nopening kill: {won}/{total} = {won / total:.1%}; r = {pb['estimate']:+.3f} "
        f"[{pb['ci_low']:+.3f}, {pb['ci_high']:+.3f}], q = {pb['q_value']:.2g}"
    )


def test_loadout_advantage_is_a_significant_positive_covariate_effect(run) -> None:
    rows = {r["method"]: r for r in run["loadout"] if r["outcome"] == "round_win"}
    lr = rows["logistic"]
    assert lr["details"]["kind"] == "covariate" and lr["details"]["adjusted_for"] == ["side"]
    assert lr["significant"] and lr["direction"] == "positive" and lr["ci_low"] > 0
    assert rows["point_biserial"]["significant"] and rows["point_biserial"]["estimate"] > 0
    print(
        f"\nloadout advantage: log-OR/SD {lr['estimate']:+.3f} [{lr['ci_low']:+.3f}, {lr['ci_high']:+.3f}], "
        f"OR/SD {lr['details']['odds_ratio_per_sd']:.2f}, q = {lr['q_value']:.2g}, n = {lr['n']}"
    )


def test_derived_intents_fill_the_intent_table(run) -> None:
    aipw = {
        r["feature"]: r
        for r in run["results"]
        if r["method"] == "aipw_within" and r["outcome"] == "round_win"
    }
    assert set(aipw) == {f"{i}_count" for i in INTENTS if i != "peek"}
    for intent in DERIVED:
        r = aipw[f"{intent}_count"]
        assert (
            r["ci_low"] is not None
            and r["ci_high"] is not None
            and r["ci_low"] <= r["estimate"] <= r["ci_high"]
        ), r
        assert r["n"] > 0
    # plant is an attacker-only act: estimated on attacking team-rounds (positivity)
    # (the within-match design keeps the team-maps that show both arms: the others are counted as dropped)
    plant = aipw["plant_count"]
    assert plant["n"] + plant["details"]["rows_dropped"] == 887 and plant["details"][
        "population"
    ].startswith("attack")
    # no rule derives peek and no source carries an end-of-round bank: named, not n = 0 rows
    assert run["status"]["summary"]["not_available"] == {
        "econ_delta": "no end-of-round bank in this data",
        "peek": "no peek signal in this data",
    }
    assert not any(r["outcome"] == "econ_delta" for r in run["results"])
    print("\nintent table (within-match AIPW ATE on round win, probability points):")
    for intent in DERIVED:
        r = aipw[f"{intent}_count"]
        print(
            f"  {intent:8s} {r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] q={r['q_value']:.2g}"
        )


def test_no_outcome_mechanism_is_an_edge_or_leads_top_correlations(run) -> None:
    top = run["top"]
    assert top["results"], "nothing ranked"
    assert not any(r["outcome_mechanism"] for r in top["results"])
    assert top["outcome_mechanisms"] and all(
        r["outcome_mechanism"] for r in top["outcome_mechanisms"]
    )
    mechanisms = {r["feature"] for r in top["outcome_mechanisms"]}
    assert {"plant_count", "defuse_count", "kills"} <= mechanisms
    verdicts = run["status"]["summary"]["verdicts"]
    assert {v["intent"] for v in verdicts} >= set(DERIVED)
    for v in verdicts:
        if v["verdict"] == "outcome mechanism":
            assert not v["edge"]
    called = {v["intent"] for v in verdicts if v["edge"]}
    assert not called & {"plant", "defuse", "engage", "trade"}, called
    print("\nverdicts: " + ", ".join(f"{v['intent']} {v['verdict']}" for v in verdicts))


def test_win_probability_model_beats_the_baseline_held_out(run) -> None:
    r = run["model"]
    assert r.status_code == 200, r.text
    body = r.json()
    m, b = body["metrics"], body["baseline_metrics"]
    assert body["n_rounds"] == 887 and body["n_matches"] == 42 and m["n_matches"] >= 12
    print(
        f"\nwin-probability model {body['model_version']} (held out: {m['n_matches']} maps, {m['n']} states)"
    )
    for k in ("log_loss", "brier", "auc", "ece"):
        print(
            f"  {k:8s} model {m[k]:.4f} [{m['ci'][k]['low']:.4f}, {m['ci'][k]['high']:.4f}]"
            f"  baseline {b[k]:.4f} [{b['ci'][k]['low']:.4f}, {b['ci'][k]['high']:.4f}]"
        )
    assert m["log_loss"] < b["log_loss"] and m["brier"] < b["brier"]
    assert m["ece"] <= 0.05
    assert len(body["reliability"]) >= 5


def test_every_derived_intent_has_an_action_value(run) -> None:
    rows = {r["intent"]: r for r in run["values"]["results"]}
    assert run["values"]["run_id"] == run["status"]["run_id"]
    print("\naction values (win probability added per action, probability points):")
    for intent in DERIVED:
        r = rows[intent]
        assert r["ci_low"] is not None and r["ci_high"] is not None, r
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"] and r["n"] > 0
        assert "player" not in " ".join(r)  # no player identifier in the answer
        print(
            f"  {intent:8s} {r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] "
            f"q={r['q_value']:.2g} n={r['n']}"
        )
