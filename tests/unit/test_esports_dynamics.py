"""The round-dynamics simulator does what its docstring says (``edgefinder.esports.dynamics``).

Checked on the rendered events and the per-(round, team) frame: the events pass the contract, a
player never signals after his death, every living player signals at the same rate whatever the
round's result, retreat's share jumps once a team is two players down, and the planted cause
(opening peeks win the first fight) has the documented log-odds, recovered by statsmodels.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from edgefinder.esports.dynamics import MIX_INTENTS, RoundsConfig
from edgefinder.esports.events import MotionSignal, parse_line
from edgefinder.esports.simulate import simulate_rounds, simulate_to_file


@pytest.fixture(scope="module")
def season():  # type: ignore[no-untyped-def]
    return simulate_rounds(40, seed=11)


def _signals(lines: list[str]) -> pd.DataFrame:
    rows = []
    for line in lines:
        if '"signal_id"' in line:
            d = json.loads(line)
            rows.append({"match_id": d["match_id"], "player": d["player_id"], "ts": d["ts"],
                         "intent": d["intent"], **d["features"]})  # fmt: skip
    return pd.DataFrame(rows)


def test_events_pass_the_contract_and_carry_the_round_state(season) -> None:  # type: ignore[no-untyped-def]
    kinds = [type(parse_line(line)).__name__ for line in season.lines]
    assert kinds.count("MotionSignal") == season.n_signals > 0
    sig = _signals(season.lines)
    for col in ("t_round", "alive_own", "alive_opp", "bomb_planted", "since_plant", "attack",
                "loadout_own", "loadout_opp", "bank_own", "score_own", "score_opp"):  # fmt: skip
        assert col in sig.columns
    assert sig["alive_own"].between(1, 5).all() and sig["alive_opp"].between(0, 5).all()
    assert (sig["since_plant"].isna() == (sig["bomb_planted"] == 0)).all()
    assert isinstance(parse_line(next(x for x in season.lines if "signal_id" in x)), MotionSignal)


def test_nobody_signals_after_his_death(season) -> None:  # type: ignore[no-untyped-def]
    starts, deaths = {}, []
    for line in season.lines:
        if '"ROUND_START"' in line or '"KILL"' in line:
            d = json.loads(line)
            key = (d["match_id"], d["payload"]["round_no"])
            if d["event_type"] == "ROUND_START":
                starts[key] = d["ts"]
            else:
                deaths.append((*key, d["payload"]["victim"], d["ts"]))
    k = pd.DataFrame(deaths, columns=["match_id", "round_no", "player", "death_ts"])
    k["start"] = [round(starts[(m, r)], 2) for m, r in zip(k["match_id"], k["round_no"])]
    sig = _signals(season.lines)
    sig["start"] = (sig["ts"] - sig["t_round"]).round(2)
    both = sig.merge(k, on=["match_id", "player", "start"])
    assert len(k) > 500 and len(both) > 500
    assert (both["ts"] <= both["death_ts"] + 1e-3).all()


def test_every_living_player_signals_at_one_rate_win_or_lose() -> None:
    u = simulate_rounds(300, seed=3, render=False).units
    mix = u["total_actions"] - u["plant_count"] - u["defuse_count"]
    by = u.assign(mix=mix).groupby("round_win")[["mix", "alive_seconds"]].sum()
    rate = by["mix"] / by["alive_seconds"]
    assert rate.to_numpy() == pytest.approx([RoundsConfig().signal_rate] * 2, rel=0.03)
    # ... while the per-round counts of a no-effect intent differ a lot between winners and losers
    means = u.groupby("round_win")["advance_count"].mean()
    assert means[1] > 1.3 * means[0]


def test_retreat_share_jumps_two_players_down(season) -> None:  # type: ignore[no-untyped-def]
    sig = _signals(season.lines)
    sig = sig[sig["intent"].isin(MIX_INTENTS)]
    down = sig["alive_opp"] - sig["alive_own"] >= 2
    cfg = RoundsConfig()
    base = (np.asarray(cfg.attack_mix) + np.asarray(cfg.defense_mix))[1] / 2
    share_up = (sig.loc[~down, "intent"] == "retreat").mean()
    share_down = (sig.loc[down, "intent"] == "retreat").mean()
    assert share_up == pytest.approx(base, abs=0.015)
    assert share_down == pytest.approx(base * (1 - cfg.retreat_shift) + cfg.retreat_shift, abs=0.04)


def test_opening_peeks_win_the_first_fight_with_the_documented_log_odds() -> None:
    cfg = RoundsConfig()
    u = simulate_rounds(400, seed=5, render=False).units
    u = u[u["kills"] + u["deaths"] > 0].sort_values(["match_id", "round_no", "team_id"])
    a, b = u.iloc[0::2].reset_index(drop=True), u.iloc[1::2].reset_index(drop=True)
    holder = np.where((a["side"] == "defense").to_numpy(), 1.0, -1.0)  # before any plant, mostly
    X = pd.DataFrame(
        {
            "peek_diff": a["open_peeks"] - b["open_peeks"],
            "gap": (a["loadout_value"] - b["loadout_value"]) / 1000.0,
            "holder": holder,
        }
    )
    fit = sm.Logit(a["first_fight_won"], sm.add_constant(X)).fit(disp=0)
    est, se = fit.params["peek_diff"], fit.bse["peek_diff"]
    assert abs(est - cfg.opening_peek_effect) < 3 * se and se < 0.05
    assert fit.params["gap"] == pytest.approx(cfg.b_load, abs=4 * fit.bse["gap"])
    # the snowball: winning the first fight wins most rounds
    truth = simulate_rounds(50, seed=5, render=False).truth
    assert truth["first_fight"]["p_round_win_if_won"] > 0.65
    assert truth["planted_causes"][0]["feature"] == "peek_open_count"


def test_file_mode_and_bad_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = simulate_to_file(3, 1, tmp_path / "r.jsonl", dynamics="rounds")
    assert json.loads((tmp_path / "r.truth.json").read_text())["dynamics"] == "rounds"
    assert sim.n_signals > 0
    with pytest.raises(ValueError, match="unknown dynamics"):
        simulate_to_file(3, 1, tmp_path / "x.jsonl", dynamics="fights")
    with pytest.raises(ValueError, match="attack_mix"):
        RoundsConfig(attack_mix=(0.5, 0.5))
