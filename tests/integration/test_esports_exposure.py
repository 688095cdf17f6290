"""The exposure-aware features computed in SQL equal the simulator's truth, on SQLite and Postgres.

A round-dynamics season (12 matches) goes through the real ingest; ``extract_round_features`` must
give, for every (round, team), the simulator's own opening-phase counts (signals before the round's
first kill), opening length, round length and alive player-seconds, and the rates built from them.
Signals without ``round_no`` or ``team`` (30% and 20% in the simulator) and signals written before
their round are resolved first, so this also checks that the opening filter sees resolved signals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefinder.esports.aggregate import INTENTS, extract_round_features
from edgefinder.esports.ingest import ingest_file
from edgefinder.esports.mechanisms import kill_derived_intents, outcome_mechanism
from edgefinder.esports.simulate import simulate_to_file
from edgefinder.store.engine import make_engine
from tests.esports_pg import private_pg_database


def _check(url: str, tmp: Path) -> None:
    sim = simulate_to_file(12, 4, tmp / "r.jsonl", dynamics="rounds")
    ingest_file(tmp / "r.jsonl", url, "exposure-key")
    got = extract_round_features(url)
    both = got.merge(sim.units, on=["match_id", "round_no", "team_id"], suffixes=("", "_sim"))
    assert len(both) == len(got) == len(sim.units) > 400
    for intent in INTENTS:
        for col in (f"{intent}_count", f"{intent}_open_count"):
            assert (both[col] == both[f"{col}_sim"]).all(), col
        rate = both[f"{intent}_count_sim"] / both["alive_seconds_sim"]
        assert np.allclose(both[f"{intent}_rate"], rate, rtol=1e-4, atol=1e-9)
    # times are written with millisecond precision
    for col in ("open_seconds", "round_seconds"):
        assert np.allclose(both[col], both[f"{col}_sim"], atol=2e-3)
    assert np.allclose(both["alive_seconds"], both["alive_seconds_sim"], atol=1e-2)
    assert (both["open_actions"] < both["total_actions"]).mean() > 0.9
    engine = make_engine(url)
    try:
        # simulated signals are not derived from kills: engage and trade stay behaviours
        assert kill_derived_intents(engine) == ()
    finally:
        engine.dispose()
    assert outcome_mechanism("engage_open_count", "round_win", ("engage",)) is not None
    assert outcome_mechanism("engage_open_count", "round_win", ()) is None
    assert outcome_mechanism("plant_count", "site_executed") is not None
    assert outcome_mechanism("peek_open_count", "round_win", ("engage", "trade")) is None


def test_exposure_features_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    _check(sqlite_url, tmp_path)


@pytest.mark.postgres
def test_exposure_features_postgres(pg_url: str, tmp_path: Path) -> None:
    with private_pg_database(pg_url, "expo") as url:
        _check(url, tmp_path)
