"""Win probability added per action: each micro action's value in win-probability points.

For an action of team k at game time t (W = the model's P(team k wins the round)):

    value = [W(state at t + h) - W(state just before t)]  -  m(stratum of the state before t)

The first term is what happened to the team's win probability over the horizon ``h`` after the
action (at or after the round's end, W is the result itself, 1 or 0). The second is the
**state-matched counterfactual**: the mean change over the same horizon from states of the same
stratum (side, players alive on each side, bomb planted, phase, ``time_bin_s`` of round time), read on a
regular grid of every round for both teams: what the same state brought when the round simply went
on (a grid instant holds no action). Only the instant of the action differs: excluding every
window in which the team took the intent again would also remove the later actions' own value
from the reference and credit it to this one.

Why matched rather than purely model-based: a calibrated model that saw the whole state would make
``m`` zero (the expected win probability later, given the state now, is the win probability now),
so the model alone could serve as the counterfactual. But the model is fitted on a few hundred
rounds and sees a coarse state; the matched mean removes whatever drift the model leaves in a state
(a too-low W for four-versus-two, say) instead of crediting it to the actions that happen there.
It costs nothing when the model is right (m is then about zero) and protects the estimate when it
is not. What it cannot remove is a difference the state does not show (a better team's actions):
the values are conditional on the modelled state, like any win-probability-added figure.

**Phase.** An action is in the ``opening`` phase when the round has had no kill before it (the
phase whose signals the round-level design counts, ``{intent}_open_count``), else ``later``. The
opening-phase value answers: "how much does one more signal of this intent before the round's
first kill move its team's win probability over the next ``h`` seconds, against the same state
without it?" It is the value the two-design verdict reads (:data:`VERDICT_STRATUM`), so both
designs speak about the same signals: an effect that lives in the opening (a won first fight)
would be averaged with the later signals' zero in the all-phase mean, and a later-phase value the
round-level design never sees could not confirm it. The phase is known at the action's time (no
look-ahead: "no kill yet"), and the matched counterfactual also matches on it.

Every action is valued (``max_actions`` None): the model is predicted once per cell of its split
thresholds (:mod:`edgefinder.esports.winprob.cells`), exact and several times cheaper than once per
state. Per intent: the mean value, its 95% CI with standard errors clustered by match (statsmodels
OLS on a constant, cluster-robust), ``n`` actions, ``n_matches``, p and Benjamini-Hochberg q over
the intents; the same by phase, by side and by map where a stratum holds at least ``min_n`` actions
(their q over their own family; each phase is a family of its own). Units: probability points
(0.01 = one percentage point of round win probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from edgefinder.esports.winprob.model import WinProbModel
from edgefinder.esports.winprob.state import RoundTimelines, state_at
from edgefinder.stats.multiple import multiple_test_correction

#: Seconds after an action over which its team's win probability change is read.
HORIZON_S = 10.0
#: Seconds between the reference points of the matched counterfactual.
REFERENCE_GRID_S = 5.0
#: Width (seconds of round time) of the time bins of the matching strata.
TIME_BIN_S = 15.0
ACTION_VALUE_COLUMNS: tuple[str, ...] = (
    "intent",
    "estimate",
    "ci_low",
    "ci_high",
    "q_value",
    "n",
)
#: Every column of :func:`action_values`' frame (``stratum``: ``all``, ``side=…``, ``map=…``).
VALUE_FRAME_COLUMNS: tuple[str, ...] = (
    "game",
    "stratum",
    "intent",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "n",
    "n_matches",
)
_KEY = ["match_id", "round_no"]
#: The stratum the two-design verdict reads: actions before the round's first kill, the phase of
#: the round-level design's opening-phase counts, so both designs answer about the same signals.
VERDICT_STRATUM = "phase=opening"


@dataclass(frozen=True)
class ActionValueParams:
    """``horizon_s``, ``grid_s``, ``time_bin_s`` (seconds, see the module docstring); ``min_n``:
    fewest actions of a side, map or phase stratum to report it; ``max_actions``: None values
    every action, a number caps the actions per intent with a seeded sample (a bound on the time,
    at the cost of power); ``max_reference_rounds``: rounds read for the counterfactual (a seeded
    sample above it: the matched mean needs far fewer points than the actions); ``seed``;
    ``alpha``: the CIs' level is 1 - alpha."""

    horizon_s: float = HORIZON_S
    grid_s: float = REFERENCE_GRID_S
    time_bin_s: float = TIME_BIN_S
    min_n: int = 30
    max_actions: int | None = None
    max_reference_rounds: int = 2_000
    seed: int = 0
    alpha: float = 0.05


def _team_wp(model: WinProbModel, st: pd.DataFrame, attacking: np.ndarray) -> np.ndarray:
    """The team's win probability from the state frame (the result itself once the round is over)."""
    p_att = np.where(st["over"].to_numpy() == 1, st["att_win"].to_numpy(), model.predict(st))
    return np.where(attacking, p_att, 1.0 - p_att)


def _stratum(
    st: pd.DataFrame, attacking: np.ndarray, opening: np.ndarray, time_bin_s: float
) -> pd.Series:
    own = np.where(attacking, st["att_alive"], st["def_alive"]).astype(np.int64)
    opp = np.where(attacking, st["def_alive"], st["att_alive"]).astype(np.int64)
    tb = np.floor(st["time_in_round"].to_numpy() / time_bin_s).astype(np.int64)
    cell = (attacking.astype(np.int64) * 8 + own) * 8 + opp
    cell = (cell * 2 + st["planted"].to_numpy().astype(np.int64)) * 2 + opening.astype(np.int64)
    return pd.Series(cell * 1000 + tb, index=st.index)


def _opening(tl: RoundTimelines, q: pd.DataFrame) -> np.ndarray:
    """True where ``t`` lies before the round's first kill (any time of a round without a kill):
    the opening phase, as the round-level design's ``{intent}_open_count`` counts it."""
    first = tl.kills.groupby(_KEY, sort=False)["ts"].min().rename("_first_kill").reset_index()
    fk = q[_KEY].merge(first, on=_KEY, how="left")["_first_kill"].to_numpy(dtype=np.float64)
    t = q["t"].to_numpy(dtype=np.float64)
    return ~(fk <= t)  # NaN (no kill): opening


def _delta(
    model: WinProbModel, tl: RoundTimelines, q: pd.DataFrame, params: ActionValueParams
) -> pd.DataFrame:
    """For queries (match_id, round_no, team_id, t, any other columns carried along): W before t,
    W at t + h, stratum; rows kept only for rounds in ``tl`` and teams of the round."""
    roles = tl.rounds[[*_KEY, "attacker", "defender", "map"]]
    q = q.merge(roles, on=_KEY)
    q = q[(q["team_id"] == q["attacker"]) | (q["team_id"] == q["defender"])].reset_index(drop=True)
    attacking = (q["team_id"] == q["attacker"]).to_numpy()
    before = state_at(tl, q).sort_index()
    after = state_at(tl, q.assign(t=q["t"] + params.horizon_s)).sort_index()
    q = q.loc[before.index]
    # the state before t belongs to the running round: an action at or after the end is dropped
    keep = before["over"].to_numpy() == 0
    q, before, after, attacking = q[keep], before[keep], after[keep], attacking[keep]
    opening = _opening(tl, q)
    return q.assign(
        delta=_team_wp(model, after, attacking) - _team_wp(model, before, attacking),
        stratum=_stratum(before, attacking, opening, params.time_bin_s).to_numpy(),
        side=np.where(attacking, "attack", "defense"),
        phase=np.where(opening, "opening", "later"),
    )


def _clustered_mean(
    v: np.ndarray, groups: np.ndarray, alpha: float
) -> tuple[float, float, float, float]:
    """Mean of ``v`` with a match-clustered CI and p (statsmodels OLS on a constant)."""
    if len(v) < 2 or len(np.unique(groups)) < 2 or np.allclose(v, v[0]):
        m = float(np.mean(v)) if len(v) else float("nan")
        return m, float("nan"), float("nan"), float("nan")
    fit = sm.OLS(v, np.ones((len(v), 1))).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(groups)[0]}
    )
    lo, hi = fit.conf_int(alpha)[0]
    return float(fit.params[0]), float(lo), float(hi), float(fit.pvalues[0])


def per_action_values(
    model: WinProbModel,
    tl: RoundTimelines,
    actions: pd.DataFrame,
    params: ActionValueParams | None = None,
) -> pd.DataFrame:
    """One row per valued action of ``model``'s game: ``match_id``, ``round_no``, ``team_id``,
    ``t``, ``intent``, ``side``, ``map``, ``game``, ``phase`` (``opening`` before the round's first
    kill, else ``later``), ``delta`` (the change over the horizon) and ``value`` (``delta`` minus
    the matched counterfactual), probability points.

    ``actions``: ``match_id``, ``round_no``, ``team_id``, ``ts`` (game seconds), ``intent``; only
    rounds of the game count; every action is valued unless ``params.max_actions`` caps them (a
    seeded sample per intent).
    """
    params = params or ActionValueParams()
    tl = tl.for_game(model.game)
    acts = actions.rename(columns={"ts": "t"})[[*_KEY, "team_id", "t", "intent"]].copy()
    acts = acts.dropna(subset=["round_no", "team_id"])
    acts["round_no"] = acts["round_no"].astype(np.int64)
    acts["t"] = acts["t"].astype(np.float64)
    acts = acts[acts["match_id"].isin(set(tl.rounds["match_id"]))]
    if acts.empty:
        return pd.DataFrame(
            columns=[
                *_KEY, "team_id", "t", "intent", "side", "map", "game", "phase", "delta", "value"
            ]
        )  # fmt: skip
    rng = np.random.default_rng(params.seed)
    cap = params.max_actions
    if cap is not None:
        parts = [
            g.iloc[np.sort(rng.choice(len(g), cap, replace=False))] if len(g) > cap else g
            for _, g in acts.groupby("intent", sort=True)
        ]
        acts = pd.concat(parts, ignore_index=True)
    valued = _delta(model, tl, acts, params)
    ref_rounds = tl.rounds
    if len(ref_rounds) > params.max_reference_rounds:
        pick = rng.choice(len(ref_rounds), params.max_reference_rounds, replace=False)
        ref_rounds = ref_rounds.iloc[np.sort(pick)]
    ref = _delta(model, tl, _grid(ref_rounds, params.grid_s), params)
    base = ref.groupby("stratum")["delta"].mean()
    # a stratum no reference point visited: the model alone is the counterfactual (m = 0)
    m = valued["stratum"].map(base).fillna(0.0).to_numpy()
    return valued.assign(value=valued["delta"].to_numpy() - m, game=model.game).drop(
        columns=["stratum", "attacker", "defender"]
    )


def _grid(r: pd.DataFrame, grid_s: float) -> pd.DataFrame:
    """Reference points: every ``grid_s`` seconds of every round, for each of its two teams."""
    dur = (r["end_ts"] - r["start_ts"]).clip(lower=0.0).to_numpy(dtype=np.float64)
    n_ticks = np.floor(dur / grid_s).astype(np.int64) + 1
    idx = np.repeat(np.arange(len(r)), n_ticks)
    offs = np.concatenate([np.arange(n) for n in n_ticks]) * grid_s if len(r) else np.zeros(0)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "match_id": r["match_id"].to_numpy()[idx],
                    "round_no": r["round_no"].to_numpy()[idx],
                    "team_id": r[role].to_numpy()[idx],
                    "t": r["start_ts"].to_numpy(dtype=np.float64)[idx] + offs,
                }
            )
            for role in ("attacker", "defender")
        ],
        ignore_index=True,
    )


def summarize_values(values: pd.DataFrame, params: ActionValueParams | None = None) -> pd.DataFrame:
    """Per intent (stratum ``all``), then by ``phase=opening``/``phase=later``, ``side=…``,
    ``map=…`` and, with several games, ``game=…``: mean value, match-clustered CI, p, BH q within
    each stratum family, ``n`` actions, ``n_matches`` (columns :data:`VALUE_FRAME_COLUMNS`; ``game``
    is the game, or ``all`` pooled). A stratum other than ``all`` needs ``params.min_n`` actions
    and two matches. Families: ``all``; each phase on its own (the opening phase's q is over the
    intents, as the verdict reads it: :data:`VERDICT_STRATUM`); every side; every map; every game."""
    params = params or ActionValueParams()
    rows = []
    games = sorted(set(values["game"])) if len(values) else []
    pooled = games[0] if len(games) == 1 else "all"
    for intent, vals in values.groupby("intent", sort=True):
        strata = [("all", vals)]
        if "phase" in vals.columns:
            strata += [(f"phase={k!s}", d) for k, d in vals.groupby("phase", sort=False)]
        strata += [(f"side={s!s}", d) for s, d in vals.groupby("side", sort=True)]
        strata += [(f"map={k!s}", d) for k, d in vals.groupby("map", sort=True) if k]
        if len(games) > 1:
            strata += [(f"game={k!s}", d) for k, d in vals.groupby("game", sort=True)]
        for name, d in strata:
            if name != "all" and (len(d) < params.min_n or d["match_id"].nunique() < 2):
                continue
            est, lo, hi, p = _clustered_mean(
                d["value"].to_numpy(dtype=np.float64), d["match_id"].to_numpy(), params.alpha
            )
            rows.append(
                {
                    "game": d["game"].iloc[0] if d["game"].nunique() == 1 else pooled,
                    "stratum": name,
                    "intent": intent,
                    "estimate": est,
                    "ci_low": lo,
                    "ci_high": hi,
                    "p_value": p,
                    "n": len(d),
                    "n_matches": int(d["match_id"].nunique()),
                }
            )
    out = pd.DataFrame(rows, columns=[c for c in VALUE_FRAME_COLUMNS if c != "q_value"])
    out["q_value"] = np.nan
    prefix = out["stratum"].str.split("=").str[0]
    family = out["stratum"].where(prefix == "phase", prefix)
    for _, members in out.groupby(family).groups.items():
        p = out.loc[members, "p_value"].to_numpy(dtype=np.float64)
        out.loc[members, "q_value"] = multiple_test_correction(p, alpha=params.alpha).q_values
    return out.loc[:, list(VALUE_FRAME_COLUMNS)]


def verdict_input(summary: pd.DataFrame, stratum: str = VERDICT_STRATUM) -> pd.DataFrame:
    """The per-intent rows of one stratum (by default the opening phase's, which the verdict
    reads) in the shape the verdict takes (:data:`ACTION_VALUE_COLUMNS`)."""
    return summary.loc[summary["stratum"] == stratum, list(ACTION_VALUE_COLUMNS)].reset_index(
        drop=True
    )
