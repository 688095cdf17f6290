"""Direct, batched loading of simulated team-rounds into the tables (benchmarks and analysis tests).

This bypasses the event pipeline on purpose: ``bench/esports_analysis.py`` needs 20,000 rounds in a
fresh database in seconds, and the analysis tests need known rows without waiting for consumers.
The input is the per-(round, team) frame of :func:`edgefinder.esports.simulate.simulate`
(``Simulation.units``): one micro action row is written per simulated signal count, with
round_no and team already resolved; the round windows are synthetic (150 s apart, 120 s long).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert

from edgefinder.esports.events import INTENTS
from edgefinder.store.tables import (
    kills,
    macro_outcomes,
    matches,
    micro_actions,
    round_teams,
    rounds,
)

ROUND_SPACING_S = 150.0
ROUND_LENGTH_S = 120.0


def _chunks(records: list[dict], size: int):  # type: ignore[no-untyped-def]
    for i in range(0, len(records), size):
        yield records[i : i + size]


def load_units(
    engine: Engine, units: pd.DataFrame, seed: int = 0, chunk: int = 20_000
) -> dict[str, int]:
    """Insert matches, rounds, round_teams, macro_outcomes, micro_actions and kills for ``units``.

    Signal-level values (confidence, speed, approach velocity) are drawn from ``default_rng(seed)``
    independently of everything (null features). Returns the number of rows per table.
    """
    rng = np.random.default_rng(seed)
    u = units.reset_index(drop=True)
    n = len(u)
    start = u["round_no"].to_numpy(dtype=np.float64) * ROUND_SPACING_S
    side = u["side"].to_numpy()
    win = u["round_win"].to_numpy(dtype=np.int64)

    m = u.groupby("match_id", sort=False)["team_id"].agg(
        lambda s: tuple(dict.fromkeys(s))[:2]  # type: ignore[type-var]  # pandas-stubs: scalars only
    )
    match_rows = [{"match_id": k, "team_a": v[0], "team_b": v[-1]} for k, v in m.items()]
    first = u.drop_duplicates(["match_id", "round_no"])
    winners = u.loc[u["round_win"] == 1].set_index(["match_id", "round_no"])["team_id"]
    round_rows = [
        {
            "match_id": mid,
            "round_no": int(rn),
            "start_ts": float(rn) * ROUND_SPACING_S,
            "end_ts": float(rn) * ROUND_SPACING_S + ROUND_LENGTH_S,
            "winner": winners.get((mid, rn)),
        }
        # the two columns, as itertuples yields them (whose fields the stubs type as any scalar)
        for mid, rn in zip(first["match_id"], first["round_no"])
    ]
    team_rows = pd.DataFrame(
        {
            "match_id": u["match_id"],
            "round_no": u["round_no"].astype(int),
            "team_id": u["team_id"],
            "side": side,
            "bank_start": u["bank_start"].astype(float),
            "loadout_value": u["loadout_value"].astype(float),
            "bank_end": u["bank_end"].astype(float),
        }
    ).to_dict(orient="records")
    outcome_rows = pd.DataFrame(
        {
            "match_id": u["match_id"],
            "round_no": u["round_no"].astype(int),
            "team_id": u["team_id"],
            "round_win": win,
            "econ_delta": u["econ_delta"].astype(float),
            "site_executed": u["site_executed"].astype(int),
        }
    ).to_dict(orient="records")

    counts = u[[f"{i}_count" for i in INTENTS]].to_numpy(dtype=np.int64)
    per_unit = counts.sum(axis=1)
    unit_idx = np.repeat(np.arange(n), per_unit)
    intent_idx = (
        np.concatenate([np.repeat(np.arange(len(INTENTS)), row) for row in counts])
        if n
        else np.array([], int)
    )
    ns = unit_idx.size
    sig = pd.DataFrame(
        {
            "signal_id": [f"sig{seed}-{i}" for i in range(ns)],
            "match_id": u["match_id"].to_numpy()[unit_idx],
            "round_no": u["round_no"].to_numpy(dtype=np.int64)[unit_idx],
            "team": u["team_id"].to_numpy()[unit_idx],
            "player_hash": [f"p{j}" for j in rng.integers(0, 5, ns)],
            "ts": start[unit_idx] + ROUND_LENGTH_S * rng.random(ns),
            "intent": np.asarray(INTENTS, dtype=object)[intent_idx],
            "confidence": rng.beta(5.0, 2.0, ns),
            "speed": rng.gamma(4.0, 0.6, ns),
            "approach_velocity": rng.normal(0.0, 1.0, ns),
        }
    )
    sig["player_hash"] = sig["team"] + ":" + sig["player_hash"]
    signal_rows = sig.to_dict(orient="records")

    k = u["kills"].to_numpy(dtype=np.int64)
    k_unit = np.repeat(np.arange(n), k)
    # the opponent is the other row of the same (match, round): rows come in pairs
    opp = u.groupby(["match_id", "round_no"])["team_id"].transform(
        lambda s: s.iloc[::-1].to_numpy()
    )
    kill_rows = pd.DataFrame(
        {
            "event_id": [f"kill{seed}-{i}" for i in range(k_unit.size)],
            "match_id": u["match_id"].to_numpy()[k_unit],
            "round_no": u["round_no"].to_numpy(dtype=np.int64)[k_unit],
            "ts": start[k_unit] + ROUND_LENGTH_S * rng.random(k_unit.size),
            "killer_team": u["team_id"].to_numpy()[k_unit],
            "victim_team": opp.to_numpy()[k_unit],
        }
    ).to_dict(orient="records")

    with engine.begin() as conn:
        for table, recs in (
            (matches, match_rows),
            (rounds, round_rows),
            (round_teams, team_rows),
            (macro_outcomes, outcome_rows),
            (micro_actions, signal_rows),
            (kills, kill_rows),
        ):
            for part in _chunks(recs, chunk):
                conn.execute(insert(table), part)
    return {
        "matches": len(match_rows),
        "rounds": len(round_rows),
        "round_teams": len(team_rows),
        "macro_outcomes": len(outcome_rows),
        "micro_actions": len(signal_rows),
        "kills": len(kill_rows),
    }
