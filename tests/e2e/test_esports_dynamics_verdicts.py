"""The full two-design verdict on 10 seasons of the round-dynamics simulator, through the real job.

Planted truth (``simulate --dynamics rounds``, 200 matches per season, documented in
``edgefinder.esports.dynamics`` and the truth file's ``planted_causes``): rounds are sequences of
fights that snowball through the man advantage; every living player signals at the same rate; the
intent mix depends on the side and shifts to retreat once a team is two players down. Exactly one
cause: each peek before the round's first kill adds 0.35 to the team's log-odds of winning the
first fight. advance, retreat, hold, rotate, trade and engage have no effect; plant and defuse are
outcome mechanisms.

Each season takes the path a user's data takes: the simulator writes its JSONL events, the real
ingest writes them into a migrated SQLite file, and ``run_correlation_job`` runs the battery (BH
over the run), fits and stores the win-probability model, values every action and combines both
designs (``design.value_and_combine``: the verdict reads the opening-phase action values, the
signals before the round's first kill that the round-level design counts). The verdict asserted is
the one the job returns and stores (``summary.verdicts``). Refutations are off (``refute='none'``):
the verdict does not read them. Per season, the stored opening-phase action values' ``n`` must
equal the feature frame's ``{intent}_open_count`` summed (SQL): the two designs read the same
signals.

Asserted: each no-effect intent is called an edge in at most 1 of 10 seasons (measured: none in
any season; alone, a no-effect intent's opening-phase action value reached q < 0.05 once in 60,
trade in seed 6, whose round-level effect did not hold); plant and defuse are never called; peek's
round-level effect holds with its sign and its action value is positive in at least 8 of 10
(measured: 10 of 10); peek is a full edge with its sign in at least 8 of 10 (measured: 10 of 10,
round-level +0.015 to +0.024 per opening peek, opening-phase action value +0.008 to +0.016 with
q <= 0.002). Cost: the whole test about 150 CPU-seconds (207 when at most 5,000 actions per
intent were valued); wall time 1 min 26 s on 2 cores at a load average of 2.8, 3 min 43 s at 4 to 5.
The seasons run two at a time in their own processes.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from edgefinder.esports.aggregate import OPEN_COUNT_FEATURES, extract_round_features
from edgefinder.esports.dynamics import NO_EFFECT_INTENTS
from edgefinder.esports.ingest import ingest_file
from edgefinder.esports.jobs import JobParams, run_correlation_job
from edgefinder.esports.simulate import simulate_to_file
from edgefinder.esports.verdict import EDGE, MECHANISM, called
from edgefinder.settings import Settings
from edgefinder.store.engine import make_engine
from edgefinder.store.migrate import upgrade
from edgefinder.store.tables import action_values, analysis_runs

pytestmark = pytest.mark.slow  # ten seasons through ingest and the whole job: ~150 CPU-seconds

SEEDS = range(10)
MATCHES = 200


def season_verdicts(seed: int, folder: str) -> list[dict]:
    """Simulate, ingest and analyse one season in ``folder``; the verdicts the run stored."""
    tmp = Path(folder)
    url = f"sqlite:///{(tmp / 'season.sqlite3').as_posix()}"
    upgrade(url)
    simulate_to_file(MATCHES, seed, tmp / "season.jsonl", dynamics="rounds")
    ingest_file(tmp / "season.jsonl", url, f"season-{seed}")
    # no Redis, no webhook: only the stored run matters here
    settings = Settings(redis_url=None, alert_webhook_url=None)
    res = run_correlation_job(
        url, settings, params=JobParams(seed=seed, refute="none"), trigger="test"
    )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            summary = conn.execute(
                select(analysis_runs.c.summary).where(analysis_runs.c.run_id == res.run_id)
            ).scalar_one()
            opening_n = dict(
                conn.execute(
                    select(action_values.c.intent, action_values.c.n).where(
                        action_values.c.run_id == res.run_id,
                        action_values.c.stratum == "phase=opening",
                    )
                ).all()
            )
    finally:
        engine.dispose()
    # both designs read the same signals: the opening-phase action values value exactly the
    # signals the round-level design counts (its SQL feature frame's {intent}_open_count)
    frame = extract_round_features(url)
    counted = {f.removesuffix("_open_count"): int(frame[f].sum()) for f in OPEN_COUNT_FEATURES}
    assert opening_n == {i: n for i, n in counted.items() if n > 0}, (opening_n, counted)
    if isinstance(summary, str):
        summary = json.loads(summary)
    assert summary["action_values_error"] is None, summary["action_values_error"]
    assert res.verdicts is not None
    stored = pd.DataFrame(summary["verdicts"])
    # the verdict the job returns is the one it stored
    assert stored["verdict"].tolist() == res.verdicts["verdict"].tolist()
    return [{"seed": seed, **r} for r in stored.to_dict(orient="records")]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folders = [str(tmp_path_factory.mktemp(f"season{seed}")) for seed in SEEDS]
    # spawn: a fresh interpreter per worker, not a fork of pytest's threads
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        seasons = list(pool.map(season_verdicts, SEEDS, folders))
    out = pd.DataFrame([r for rows in seasons for r in rows])
    cols = ["seed", "intent", "verdict", "round_level_estimate", "round_level_q",
            "action_value", "action_value_q", "failed"]  # fmt: skip
    with pd.option_context("display.width", 250, "display.max_rows", 200):
        print("\n" + out[cols].round(4).to_string(index=False))
    return out


def test_no_effect_intents_are_edges_in_at_most_one_season(table: pd.DataFrame) -> None:
    edges = {seed: called(g) for seed, g in table.groupby("seed")}
    assert len(edges) == len(SEEDS)
    for intent in NO_EFFECT_INTENTS:
        assert (table["intent"] == intent).sum() == len(SEEDS), intent
        n_called = sum(intent in e for e in edges.values())
        assert n_called <= 1, f"{intent} called an edge in {n_called} of 10 seasons"


def test_the_planted_cause_is_an_edge_with_its_sign(table: pd.DataFrame) -> None:
    peek = table[table["intent"] == "peek"]
    found = peek[
        (peek["verdict"] == EDGE) & (peek["round_level_estimate"] > 0) & (peek["action_value"] > 0)
    ]
    assert len(found) >= 8, peek.to_string()


def test_each_design_finds_the_planted_cause_with_its_sign(table: pd.DataFrame) -> None:
    """Apart, each design points the right way: the round-level effect holds after FDR and the
    action value's estimate is positive in at least 8 of 10 seasons."""
    peek = table[table["intent"] == "peek"]
    round_level = (peek["round_level_estimate"] > 0) & (peek["round_level_q"] < 0.05)
    assert round_level.sum() >= 8, peek.to_string()
    assert (peek["action_value"] > 0).sum() >= 8, peek.to_string()


def test_mechanisms_are_never_called(table: pd.DataFrame) -> None:
    mech = table[table["intent"].isin(["plant", "defuse"])]
    assert len(mech) == 2 * len(SEEDS)
    assert (mech["verdict"] == MECHANISM).all() and not mech["edge"].any()
