"""Pre-round match state (score difference, previous result, loss streak) and the simulator's strength."""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgefinder.esports.aggregate import STATE_COVARIATES, add_pre_round_state
from edgefinder.esports.events import INTENTS
from edgefinder.esports.simulate import SimConfig, simulate


def _brute_force(df: pd.DataFrame) -> pd.DataFrame:
    """Round by round, from the rounds before the current one only."""
    out = []
    for (match, team), g in df.groupby(["match_id", "team_id"]):
        opp = df[(df.match_id == match) & (df.team_id != team)].set_index("round_no")["round_win"]
        diff, prev, streak = 0, 0, 0
        for r in g.sort_values("round_no").itertuples():
            out.append(
                {
                    "match_id": match,
                    "team_id": team,
                    "round_no": r.round_no,
                    "score_diff": diff,
                    "prev_round_result": prev,
                    "loss_streak": streak,
                }
            )
            diff += r.round_win - int(opp.get(r.round_no, 0))
            prev = 1 if r.round_win else -1
            streak = 0 if r.round_win else streak + 1
    return pd.DataFrame(out)


def test_state_matches_a_round_by_round_loop() -> None:
    units = simulate(6, seed=4, render=False).units
    got = add_pre_round_state(units.sample(frac=1.0, random_state=1))  # row order must not matter
    ref = _brute_force(units)
    merged = got.merge(ref, on=["match_id", "team_id", "round_no"], suffixes=("", "_ref"))
    assert len(merged) == len(units)
    for col in STATE_COVARIATES:
        np.testing.assert_array_equal(
            merged[col].to_numpy(), merged[f"{col}_ref"].to_numpy(), err_msg=col
        )
    assert set(merged["prev_round_result"]) == {-1.0, 0.0, 1.0}
    assert (merged.loc[merged.round_no == 1, list(STATE_COVARIATES)] == 0).all().all()


def test_state_has_no_look_ahead() -> None:
    units = simulate(3, seed=8, render=False).units
    before = add_pre_round_state(units)
    flipped = units.copy()
    last = flipped["round_no"] == flipped.groupby("match_id")["round_no"].transform("max")
    flipped.loc[last, "round_win"] = (
        1 - flipped.loc[last, "round_win"]
    )  # change only the final rounds
    after = add_pre_round_state(flipped)
    pd.testing.assert_frame_equal(before[list(STATE_COVARIATES)], after[list(STATE_COVARIATES)])


def test_strength_zero_changes_nothing_and_strength_touches_only_its_intents() -> None:
    assert simulate(5, seed=2).lines == simulate(5, seed=2, config=SimConfig(strength_sd=0.0)).lines
    sim = simulate(300, seed=2, config=SimConfig(strength_sd=1.0), render=False)
    u = sim.units
    assert (
        sim.truth["strength"]["intents"] == ["hold", "peek"] and sim.truth["strength"]["sd"] == 1.0
    )
    s = u["strength"].to_numpy()
    assert abs(np.std(u.groupby(["match_id", "team_id"])["strength"].first()) - 1.0) < 0.1
    # constant over a match and team
    assert (u.groupby(["match_id", "team_id"])["strength"].nunique() == 1).all()
    corr = {i: np.corrcoef(s, u[f"{i}_count"])[0, 1] for i in INTENTS}
    assert corr["hold"] > 0.1 and corr["peek"] > 0.1
    # the others only through the economy (a strong team wins, buys full, retreats a little less), which
    # the bank and loadout covariates see
    assert all(abs(corr[i]) < 0.06 for i in INTENTS if i not in ("hold", "peek")), corr
    # better teams win more: the match-level win rate rises with strength
    rate = u.groupby(["match_id", "team_id"]).agg(
        win=("round_win", "mean"), s=("strength", "first")
    )
    assert np.corrcoef(rate["win"], rate["s"])[0, 1] > 0.5
    assert abs(sim.truth["strength"]["strength_only_effects"][0]["true_ate"]) < 1e-12
