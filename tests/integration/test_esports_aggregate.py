"""extract_round_features on hand-inserted rows, on SQLite and on the real Postgres server."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import insert

from edgefinder.esports.aggregate import ALL_COLUMNS, INTENTS, extract_round_features
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import (
    kills,
    macro_outcomes,
    match_players,
    matches,
    micro_actions,
    round_teams,
    rounds,
)
from tests.esports_pg import private_pg_database

M = "m1"


def _signal(
    sid, *, ts, intent, conf, round_no=None, team=None, player="pa1", speed=None, approach=None
):
    return {
        "signal_id": sid,
        "match_id": M,
        "round_no": round_no,
        "team": team,
        "player_hash": player,
        "ts": ts,
        "intent": intent,
        "confidence": conf,
        "speed": speed,
        "approach_velocity": approach,
    }


def _seed(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(matches), [{"match_id": M, "map": "de_dust2", "team_a": "A", "team_b": "B"}]
        )
        conn.execute(
            insert(match_players),
            [
                {"match_id": M, "player_hash": "pa1", "team_id": "A"},
                {"match_id": M, "player_hash": "pa2", "team_id": "A"},
                {"match_id": M, "player_hash": "pb1", "team_id": "B"},
            ],
        )
        conn.execute(
            insert(rounds),
            [
                {"match_id": M, "round_no": 1, "start_ts": 0.0, "end_ts": 100.0, "winner": "A"},
                {"match_id": M, "round_no": 2, "start_ts": 110.0, "end_ts": 200.0, "winner": "B"},
                # round 3 is still running: no end, no outcomes -> not a feature row
                {"match_id": M, "round_no": 3, "start_ts": 210.0, "end_ts": None, "winner": None},
            ],
        )
        conn.execute(
            insert(round_teams),
            [
                {
                    "match_id": M,
                    "round_no": 1,
                    "team_id": "A",
                    "side": "attack",
                    "bank_start": 800.0,
                    "loadout_value": 4000.0,
                    "bank_end": 4050.0,
                },
                {
                    "match_id": M,
                    "round_no": 1,
                    "team_id": "B",
                    "side": "defense",
                    "bank_start": 1000.0,
                    "loadout_value": 4500.0,
                    "bank_end": 2400.0,
                },
                {
                    "match_id": M,
                    "round_no": 2,
                    "team_id": "A",
                    "side": "attack",
                    "bank_start": 4050.0,
                    "loadout_value": 20000.0,
                    "bank_end": 1900.0,
                },
                {
                    "match_id": M,
                    "round_no": 2,
                    "team_id": "B",
                    "side": "defense",
                    "bank_start": 2400.0,
                    "loadout_value": 15000.0,
                    "bank_end": 5650.0,
                },
            ],
        )
        conn.execute(
            insert(macro_outcomes),
            [
                {
                    "match_id": M,
                    "round_no": 1,
                    "team_id": "A",
                    "round_win": 1,
                    "econ_delta": 3250.0,
                    "site_executed": 1,
                },
                {
                    "match_id": M,
                    "round_no": 1,
                    "team_id": "B",
                    "round_win": 0,
                    "econ_delta": 1400.0,
                    "site_executed": 0,
                },
                {
                    "match_id": M,
                    "round_no": 2,
                    "team_id": "A",
                    "round_win": 0,
                    "econ_delta": -2150.0,
                    "site_executed": 0,
                },
                {
                    "match_id": M,
                    "round_no": 2,
                    "team_id": "B",
                    "round_win": 1,
                    "econ_delta": 3250.0,
                    "site_executed": 0,
                },
            ],
        )
        conn.execute(
            insert(micro_actions),
            [
                _signal(
                    "s1",
                    ts=5.0,
                    intent="advance",
                    conf=0.9,
                    round_no=1,
                    team="A",
                    speed=2.0,
                    approach=1.0,
                ),
                # no round, no team: window [0, 100] and roster pa1 -> A
                _signal("s2", ts=50.0, intent="peek", conf=0.5, speed=4.0, approach=-1.0),
                _signal("s3", ts=7.0, intent="hold", conf=0.7, round_no=1, team="B", player="pb1"),
                # window [110, 200], roster pb1 -> B
                _signal("s4", ts=150.0, intent="engage", conf=0.8, player="pb1", speed=1.0),
                # between rounds: belongs to no round, never counted
                _signal("s5", ts=105.0, intent="retreat", conf=0.9),
                # inside round 3, which has not ended yet
                _signal("s6", ts=250.0, intent="rotate", conf=0.4, player="pb1"),
                # round given, team from the roster (pa2 -> A)
                _signal("s7", ts=120.0, intent="advance", conf=0.6, round_no=2, player="pa2"),
            ],
        )
        conn.execute(
            insert(kills),
            [
                {
                    "event_id": "k1",
                    "match_id": M,
                    "round_no": 1,
                    "ts": 10.0,
                    "killer_team": "A",
                    "victim_team": "B",
                },
                {
                    "event_id": "k2",
                    "match_id": M,
                    "round_no": 1,
                    "ts": 20.0,
                    "killer_team": "B",
                    "victim_team": "A",
                },
                {
                    "event_id": "k3",
                    "match_id": M,
                    "round_no": 1,
                    "ts": 30.0,
                    "killer_team": "A",
                    "victim_team": "B",
                },
                {
                    "event_id": "k4",
                    "match_id": M,
                    "round_no": 2,
                    "ts": 120.0,
                    "killer_team": "B",
                    "victim_team": "A",
                },
            ],
        )


def _expected() -> dict[tuple[int, str], dict[str, float]]:
    def counts(**kw: int) -> dict[str, float]:
        return {f"{i}_count": kw.get(i, 0) for i in INTENTS}

    return {
        (1, "A"): {
            **counts(advance=1, peek=1),
            "advance_share": 0.5,
            "peek_share": 0.5,
            "hold_share": 0.0,
            "total_actions": 2,
            "mean_confidence": 0.7,
            "low_conf_share": 0.5,
            "speed_mean": 3.0,
            "speed_max": 4.0,
            "approach_mean": 0.0,
            "action_diversity": 2,
            "kills": 2,
            "deaths": 1,
            "opening_kill": 1,
            "side": 1,
            "bank_start": 800.0,
            "loadout_value": 4000.0,
            "opp_loadout_value": 4500.0,
            "round_win": 1,
            "econ_delta": 3250.0,
            "site_executed": 1,
        },
        (1, "B"): {
            **counts(hold=1),
            "hold_share": 1.0,
            "advance_share": 0.0,
            "total_actions": 1,
            "mean_confidence": 0.7,
            "low_conf_share": 0.0,
            "speed_mean": math.nan,
            "speed_max": math.nan,
            "approach_mean": math.nan,
            "action_diversity": 1,
            "kills": 1,
            "deaths": 2,
            "opening_kill": 0,
            "side": 0,
            "bank_start": 1000.0,
            "loadout_value": 4500.0,
            "opp_loadout_value": 4000.0,
            "round_win": 0,
            "econ_delta": 1400.0,
            "site_executed": 0,
        },
        (2, "A"): {
            **counts(advance=1),
            "advance_share": 1.0,
            "total_actions": 1,
            "mean_confidence": 0.6,
            "low_conf_share": 0.0,
            "action_diversity": 1,
            "kills": 0,
            "deaths": 1,
            "opening_kill": 0,
            "side": 1,
            "opp_loadout_value": 15000.0,
            "round_win": 0,
            "econ_delta": -2150.0,
        },
        (2, "B"): {
            **counts(engage=1),
            "engage_share": 1.0,
            "retreat_share": 0.0,
            "total_actions": 1,
            "mean_confidence": 0.8,
            "speed_mean": 1.0,
            "speed_max": 1.0,
            "action_diversity": 1,
            "kills": 1,
            "deaths": 0,
            "opening_kill": 1,
            "side": 0,
            "round_win": 1,
        },
    }


def _check(df, expected) -> None:
    assert list(df.columns) == list(ALL_COLUMNS)
    assert len(df) == len(expected)
    by_key = {(int(r.round_no), r.team_id): r for r in df.itertuples(index=False)}
    assert set(by_key) == set(expected)
    for key, want in expected.items():
        row = by_key[key]._asdict()
        for col, value in want.items():
            got = row[col]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got), (key, col, got)
            else:
                assert got == pytest.approx(value, abs=1e-12), (key, col, got, value)


def _finish_round_3(engine) -> None:
    with engine.begin() as conn:
        conn.execute(rounds.update().where(rounds.c.round_no == 3).values(end_ts=300.0, winner="B"))
        conn.execute(
            insert(round_teams),
            [
                {
                    "match_id": M,
                    "round_no": 3,
                    "team_id": "A",
                    "side": "attack",
                    "bank_start": 1900.0,
                    "loadout_value": 3000.0,
                },
                {
                    "match_id": M,
                    "round_no": 3,
                    "team_id": "B",
                    "side": "defense",
                    "bank_start": 5650.0,
                    "loadout_value": 22000.0,
                },
            ],
        )
        conn.execute(
            insert(macro_outcomes),
            [
                {
                    "match_id": M,
                    "round_no": 3,
                    "team_id": "A",
                    "round_win": 0,
                    "econ_delta": 1400.0,
                    "site_executed": 0,
                },
                {
                    "match_id": M,
                    "round_no": 3,
                    "team_id": "B",
                    "round_win": 1,
                    "econ_delta": 3250.0,
                    "site_executed": 0,
                },
            ],
        )


def _run_scenario(url: str) -> None:
    engine = make_engine(url)
    try:
        empty = extract_round_features(engine)
        assert empty.empty and list(empty.columns) == list(ALL_COLUMNS)
        _seed(engine)
        _check(extract_round_features(engine), _expected())
        # the URL form gives the same frame
        assert len(extract_round_features(url)) == 4
        # s6 arrived while round 3 ran; once the round is finished it is counted (no rewrite needed)
        _finish_round_3(engine)
        df = extract_round_features(engine)
        assert len(df) == 6
        r3 = df[(df.round_no == 3)].set_index("team_id")
        assert r3.loc["B", "rotate_count"] == 1 and r3.loc["B", "total_actions"] == 1
        assert r3.loc["B", "low_conf_share"] == pytest.approx(1.0)
        assert r3.loc["A", "total_actions"] == 0 and r3.loc["A", "advance_share"] == 0.0
        assert math.isnan(r3.loc["A", "mean_confidence"])
        # the signal between rounds 1 and 2 is in no round
        assert int(df["retreat_count"].sum()) == 0
    finally:
        engine.dispose()


def test_features_sqlite(sqlite_url: str) -> None:
    _run_scenario(sqlite_url)


@pytest.mark.postgres
def test_features_postgres(pg_url: str) -> None:
    with private_pg_database(pg_url, "agg") as url:
        _run_scenario(url)


def test_rejects_unknown_source() -> None:
    with pytest.raises(TypeError, match="Engine, Connection or URL"):
        extract_round_features(42)  # type: ignore[arg-type]
