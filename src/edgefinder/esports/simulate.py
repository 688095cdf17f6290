"""Match simulator with planted, known effects of intents on round outcomes.

Plausible CS-style matches: two teams of five, MR12 (sides switch after round 12, pistol rounds 1
and 13), first to 13 rounds (a 12-12 tie is settled by round 25), a team bank in dollars with the
win reward, the growing loss bonus, kill rewards and a plant bonus; buy decisions (eco / force /
full) that set the loadout value; kills, site executes, plants and defuses consistent with the
round's winner; and motion signals (several per player per round) from an intent model.

Causal structure (the ground truth written to ``<out>.truth.json``):

* Pre-round covariates Z: side, bank at round start, loadout value (and the opponent's loadout).
  The buy class is a deterministic function of the loadout (eco < 8,000 <= force < 20,000 <= full),
  so Z holds every confounder.
* Intents: each player emits Poisson(``signals_per_player``) signals per round, each with one
  intent. Only three intents have Z-dependent probabilities, and they trade probability mass among
  themselves so the other six stay independent of everything (counts *and* shares stay null):
  ``plant`` occurs on attack only (its mass goes to ``hold`` on defense); full buys shift mass from
  ``retreat`` to ``hold`` and eco rounds the other way (the confounding).
* Outcomes: site_executed (attack only) = Bernoulli(sigmoid(a0 + a_plant * plant_count + a_load *
  loadout gap)); round_win of the attackers = Bernoulli(sigmoid(b_load * loadout gap +
  f(attack) - f(defense) + b_exec * site_executed)) with f(team) = b_trade * trade_count +
  b_retreat * retreat_count + b_hold * hold_count. Planted: trade (+) and retreat (-) and hold (+)
  on round_win, plant (+) on site_executed. hold is CONFOUNDED: it is more frequent with full buys,
  which win more, so its naive difference overstates the small true effect.
* Team strength (``SimConfig.strength_sd`` = S > 0, ``esports simulate --strength S``): every team in
  every match gets a latent strength s ~ Normal(0, S) (log-odds), constant over the match and never
  observed. It adds s_own - s_opponent to the team's round-win log-odds **and** multiplies the team's
  signal rates of the intents in ``strength_intents`` (hold and peek) by exp(``strength_intent_effect``
  * s): better teams win more and hold and peek more, so hold's and peek's between-team associations
  with winning are confounded by strength, which no pre-round covariate measures. Peek has no causal
  effect at all; only a comparison of a team with itself inside a match removes the confounder. S = 0
  (the default) draws nothing and gives bit-identical output to a simulator without strength.
* Null features (no effect on any outcome): the counts and shares of advance, peek, defuse,
  rotate and engage, total actions, confidence, speed, approach velocity and distance to the
  objective. kills/deaths/opening kills are generated *from* the outcome (post-treatment).

True effects of a binarized treatment T = count > threshold are computed from the potential
outcomes: for every team-round, E[Y | T=t, Z] sums the outcome probability over the count's
conditional (Poisson) distribution given Z restricted to T=t, with every other variable at its
realized value (the team's strength included); the ATE is the mean over team-rounds of
E[Y | T=1, Z, s] - E[Y | T=0, Z, s] (the estimand of the within-match AIPW, which compares a team
with itself and so holds its strength fixed). Threshold rule as in
:func:`edgefinder.stats.causal.propensity_adjusted_effect`: the median of the count over all
finished team-rounds, treated = count > median.

Units: ts in game seconds since match start; bank, loadout and econ_delta in dollars (team totals).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit

from edgefinder.esports.dynamics import RoundsConfig, simulate_round_dynamics
from edgefinder.esports.events import INTENTS
from edgefinder.esports.simecon import (
    PLAYERS,
    _buy,
    _buy_class,
    concat_parts,
    round_income,
    round_unit_part,
    unit_columns,
    weapons,
)
from edgefinder.jsonsafe import jsonable

MAPS = ("de_dust2", "de_mirage", "de_inferno", "de_nuke", "de_ancient", "de_anubis", "de_vertigo")
N_TEAMS_POOL = 32
INTENT_INDEX = {name: i for i, name in enumerate(INTENTS)}


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulator; effects are log-odds per signal count unless named otherwise."""

    signals_per_player: float = 4.0
    #: base intent probabilities (sum 1), order of INTENTS
    intent_probs: tuple[float, ...] = (0.14, 0.10, 0.16, 0.14, 0.06, 0.06, 0.10, 0.10, 0.14)
    #: probability mass moved from retreat to hold on full buys (and back on eco rounds)
    econ_shift: float = 0.06
    b_load: float = 0.075  # log-odds per 1,000 dollars of loadout gap (attack minus defense)
    b_trade: float = 0.20
    # chosen so that the mean effect of one more signal of a random intent is ~0 (total_actions
    # and the shares of the null intents stay null): 0.1*b_trade + E[p_retreat]*b_retreat +
    # E[p_hold]*b_hold ~= 0 under the default buy mix
    b_retreat: float = -0.34
    b_hold: float = 0.08
    b_exec: float = 0.5  # attackers' log-odds bonus when they executed on a site
    a0: float = -0.6
    a_plant: float = 0.35
    a_load: float = 0.04  # log-odds of a site execute per 1,000 dollars of loadout gap
    plant_given_exec: float = 0.85
    frac_no_round: float = 0.30  # signals without round_no (resolved from the ts window)
    frac_no_team: float = 0.20  # signals without team (resolved from the roster)
    frac_early_round: float = 0.05  # signals written just before their round's ROUND_START
    frac_early_match: float = 0.02  # signals written before their match's MATCH_START
    #: SD (log-odds) of the latent per-match-and-team strength; 0 = no strength confounder
    strength_sd: float = 0.0
    #: log signal-rate multiplier of the strength intents per unit of strength
    strength_intent_effect: float = 0.5
    strength_intents: tuple[str, ...] = ("hold", "peek")


@dataclass
class Simulation:
    """Lines to write plus the per-(round, team) ground truth the lines encode."""

    lines: list[str]
    units: pd.DataFrame
    truth: dict[str, Any]
    n_canonical: int
    n_signals: int
    config: SimConfig | RoundsConfig = field(default_factory=SimConfig)


def _intent_probs(cfg: SimConfig, attack: np.ndarray, buy: np.ndarray) -> np.ndarray:
    """Per-team intent probabilities (rows sum to 1), shape (n, 9)."""
    p = np.tile(np.asarray(cfg.intent_probs, dtype=float), (attack.size, 1))
    pl, ho, re = INTENT_INDEX["plant"], INTENT_INDEX["hold"], INTENT_INDEX["retreat"]
    p[:, ho] += np.where(attack, 0.0, p[:, pl])
    p[:, pl] = np.where(attack, p[:, pl], 0.0)
    shift = np.where(buy == 2, cfg.econ_shift, np.where(buy == 0, -cfg.econ_shift, 0.0))
    p[:, ho] += shift
    p[:, re] -= shift
    return p


def _strength(cfg: SimConfig, seed: int, n_matches: int) -> np.ndarray:
    """Latent strength (log-odds) per match and team, shape (M, 2); zeros when ``strength_sd`` is 0.

    Drawn from its own generator (seeded by ``(seed, 1)``) so that adding strength leaves every other
    random draw of the season unchanged.
    """
    if cfg.strength_sd < 0:
        raise ValueError("strength_sd must be >= 0")
    unknown = set(cfg.strength_intents) - set(INTENTS)
    if unknown:
        raise ValueError(f"unknown strength intent(s): {', '.join(sorted(unknown))}")
    if cfg.strength_sd == 0:
        return np.zeros((n_matches, 2))
    return np.random.default_rng([seed, 1]).normal(0.0, cfg.strength_sd, (n_matches, 2))


def _rate_weights(cfg: SimConfig, strength: np.ndarray) -> np.ndarray:
    """Per-team multipliers of each intent's signal rate, shape (n, 9): exp(effect * s) on the strength intents."""
    w = np.ones((strength.size, len(INTENTS)))
    for name in cfg.strength_intents:
        w[:, INTENT_INDEX[name]] = np.exp(cfg.strength_intent_effect * strength)
    return w


def simulate(
    n_matches: int, seed: int = 0, config: SimConfig | None = None, *, render: bool = True
) -> Simulation:
    """Simulate ``n_matches`` matches; every random step draws from ``numpy.random.default_rng(seed)``.

    ``render=False`` skips the JSON lines (``lines`` is empty; ``n_canonical``/``n_signals`` are 0): the
    analysis tests need only the per-(round, team) frame and the truth, in a fraction of the time.
    """
    if n_matches < 1:
        raise ValueError("n_matches must be at least 1")
    cfg = config or SimConfig()
    rng = np.random.default_rng(seed)
    M = n_matches
    strength = _strength(cfg, seed, M)
    team_a = rng.integers(0, N_TEAMS_POOL, M)
    team_b = (team_a + rng.integers(1, N_TEAMS_POOL, M)) % N_TEAMS_POOL  # never equal to team_a
    maps = rng.integers(0, len(MAPS), M)
    match_ids = np.array([f"sim{seed}-m{i:05d}" for i in range(M)])
    team_names = np.array([f"team{t:02d}" for t in range(N_TEAMS_POOL)])
    tid = np.stack([team_names[team_a], team_names[team_b]], axis=1)  # (M, 2)

    bank = np.full((M, 2), 4000.0)
    streak = np.zeros((M, 2), dtype=np.int64)
    score = np.zeros((M, 2), dtype=np.int64)
    clock = np.full(M, 15.0)  # game seconds: the first freeze time ends at 15 s
    unit_parts: list[dict[str, np.ndarray]] = []
    sig_parts: list[dict[str, np.ndarray]] = []
    kill_parts: list[dict[str, np.ndarray]] = []
    lam = cfg.signals_per_player

    for r in range(1, 26):
        active = np.flatnonzero((score[:, 0] < 13) & (score[:, 1] < 13))
        if active.size == 0:
            break
        n = active.size
        if r == 13:  # MR12: side switch, pistol round, money reset
            bank[active] = 4000.0
            streak[active] = 0
        pistol = np.full(n * 2, r in (1, 13))
        # team A attacks in the first half (and the decider), team B in the second
        a_attack = np.full(n, r <= 12 or r == 25)
        attack = np.stack([a_attack, ~a_attack], axis=1)  # (n, 2)
        bank_start = bank[active]
        loadout = _buy(rng, bank_start.ravel(), pistol).reshape(n, 2)
        spend = loadout - 1000.0
        buy = _buy_class(loadout)

        # signals: per player Poisson counts, per signal one intent (Poisson thinning keeps the
        # per-intent team counts independent Poisson variables given Z)
        probs = _intent_probs(cfg, attack.ravel(), buy.ravel())  # (2n, 9)
        s_now = strength[active]  # (n, 2)
        if cfg.strength_sd > 0:
            # Poisson thinning backwards: scaling intent j's rate by w_j means a total rate of
            # lam * sum(p * w) per player and intent probabilities p * w / sum(p * w); every other
            # intent keeps its rate. (With S = 0 nothing changes, so neither do the draws.)
            pw = probs * _rate_weights(cfg, s_now.ravel())
            scale = pw.sum(axis=1)
            probs = pw / scale[:, None]
            n_sig = rng.poisson(lam * np.repeat(scale, PLAYERS).reshape(n, 2, PLAYERS))
        else:
            n_sig = rng.poisson(lam, size=(n, 2, PLAYERS))
        flat = n_sig.ravel()
        s_unit = np.repeat(np.arange(n * 2), flat.reshape(n * 2, PLAYERS).sum(axis=1))
        s_player = np.repeat(np.tile(np.arange(PLAYERS), n * 2), flat)
        cum = np.cumsum(probs, axis=1)
        draws = rng.random(s_unit.size)
        s_intent = np.minimum((draws[:, None] > cum[s_unit]).sum(axis=1), len(INTENTS) - 1)
        counts = np.zeros((n * 2, len(INTENTS)), dtype=np.int64)
        np.add.at(counts, (s_unit, s_intent), 1)
        counts3 = counts.reshape(n, 2, len(INTENTS))

        # outcomes
        att_idx = np.where(a_attack, 0, 1)
        def_idx = 1 - att_idx
        rows = np.arange(n)
        gap = (loadout[rows, att_idx] - loadout[rows, def_idx]) / 1000.0
        plant_att = counts3[rows, att_idx, INTENT_INDEX["plant"]]
        exec_logit = cfg.a0 + cfg.a_plant * plant_att + cfg.a_load * gap
        executed = rng.random(n) < expit(exec_logit)
        planted = executed & (rng.random(n) < cfg.plant_given_exec)

        def f(team_counts: np.ndarray) -> np.ndarray:
            return (
                cfg.b_trade * team_counts[:, INTENT_INDEX["trade"]]
                + cfg.b_retreat * team_counts[:, INTENT_INDEX["retreat"]]
                + cfg.b_hold * team_counts[:, INTENT_INDEX["hold"]]
            )

        f_team = np.stack([f(counts3[:, 0]), f(counts3[:, 1])], axis=1)
        win_logit_att = (
            cfg.b_load * gap + f_team[rows, att_idx] - f_team[rows, def_idx] + cfg.b_exec * executed
        )
        win_logit_att = win_logit_att + s_now[rows, att_idx] - s_now[rows, def_idx]
        att_wins = rng.random(n) < expit(win_logit_att)
        winner_idx = np.where(att_wins, att_idx, def_idx)
        # own-team win logit of each unit, and the part that does not involve its own counts
        own_logit = np.stack([win_logit_att, win_logit_att], axis=1)
        own_logit = np.where(attack, own_logit, -own_logit)

        # round reasons and kills
        u = rng.random(n)
        reason = np.where(
            att_wins,
            np.where(planted & (u < 0.6), "bomb_exploded", "elimination"),
            np.where(
                planted,
                np.where(u < 0.7, "bomb_defused", "elimination"),
                np.where(u < 0.3, "time", "elimination"),
            ),
        )
        defused = reason == "bomb_defused"
        loser_deaths = np.where(reason == "elimination", 5, rng.integers(0, 5, n))
        winner_deaths = rng.binomial(4, 0.4, n)
        deaths = np.zeros((n, 2), dtype=np.int64)
        deaths[rows, winner_idx] = winner_deaths
        deaths[rows, 1 - winner_idx] = loser_deaths
        kills_by = deaths[:, ::-1]

        # economy: income = win reward or loss bonus, plus kill rewards and the plant bonus
        won = np.zeros((n, 2), dtype=bool)
        won[rows, winner_idx] = True
        streak_now = np.where(won, 0, streak[active] + 1)
        income = round_income(won, streak_now, kills_by, attack, planted)
        bank_end = np.minimum(bank_start - spend + income, PLAYERS * 16_000.0)
        bank[active] = bank_end
        streak[active] = streak_now
        score[active] += won

        # game-time windows
        start = clock[active]
        dur = rng.uniform(35.0, 110.0, n)
        end = start + dur
        clock[active] = end + 20.0  # 20 s of freeze/buy time before the next round

        site = np.where(rng.random(n) < 0.5, "A", "B")
        exec_ts = start + dur * rng.uniform(0.35, 0.6, n)
        plant_ts = np.minimum(exec_ts + rng.uniform(3.0, 10.0, n), end - 1.0)
        defuse_ts = end - rng.uniform(0.2, 1.0, n)
        unit_parts.append(
            round_unit_part(
                active,
                r,
                (attack, bank_start, loadout, bank_end, won),
                per_team=dict(
                    executed=attack & executed[:, None],
                    counts=counts.reshape(n, 2, -1),
                    kills=kills_by,
                    deaths=deaths,
                    own_logit=own_logit,
                    buy=buy,
                    strength=s_now,
                ),
                per_round=dict(
                    exec_logit=exec_logit,
                    start=start,
                    end=end,
                    winner=winner_idx,
                    reason=reason,
                    site=site,
                    exec_ts=exec_ts,
                    plant_ts=plant_ts,
                    defuse_ts=defuse_ts,
                    planted=planted,
                    defused=defused,
                ),
            )
        )
        # signals: times inside the round window
        s_m = active[s_unit // 2]
        s_t = s_unit % 2
        s_ts = start[s_unit // 2] + dur[s_unit // 2] * rng.random(s_unit.size)
        sig_parts.append(
            dict(m=s_m, r=np.full(s_m.size, r), t=s_t, p=s_player, intent=s_intent, ts=s_ts)
        )
        # kills: victims are distinct players of the victim team, killers any player of the other
        tot = kills_by.ravel()  # kills by unit (n*2)
        k_unit = np.repeat(np.arange(n * 2), tot)
        order = np.argsort(rng.random((n * 2, PLAYERS)), axis=1)  # a random permutation per unit
        rank = np.arange(k_unit.size) - np.repeat(np.cumsum(tot) - tot, tot)
        victim_team_unit = k_unit ^ 1
        k_victim = order[victim_team_unit, rank]
        k_killer = rng.integers(0, PLAYERS, k_unit.size)
        k_round = k_unit // 2
        k_ts = start[k_round] + 3.0 + (dur[k_round] - 4.0) * rng.random(k_unit.size)
        k_buy = buy.ravel()[k_unit]
        k_weapon = weapons(rng, k_buy)
        kill_parts.append(
            dict(
                m=active[k_round],
                r=np.full(k_unit.size, r),
                t=k_unit % 2,
                killer=k_killer,
                victim=k_victim,
                ts=k_ts,
                weapon=k_weapon,
                hs=rng.random(k_unit.size) < 0.42,
            )
        )

    units = concat_parts(unit_parts)
    sigs = concat_parts(sig_parts)
    kls = concat_parts(kill_parts)
    frame = _units_frame(units, match_ids, tid, cfg)
    truth = _truth(frame, units, cfg, seed, M)
    return _finish(
        cfg, rng, seed, match_ids, tid, maps, score, units, sigs, kls, frame, truth, render
    )


def _finish(
    cfg: SimConfig | RoundsConfig,
    rng: np.random.Generator,
    seed: int,
    match_ids: np.ndarray,
    tid: np.ndarray,
    maps: np.ndarray,
    score: np.ndarray,
    units: dict[str, np.ndarray],
    sigs: dict[str, np.ndarray],
    kls: dict[str, np.ndarray],
    frame: pd.DataFrame,
    truth: dict[str, Any],
    render: bool,
    extra: list[str] | None = None,
) -> Simulation:
    """Draw the signal-level details (independent of everything: null features) and render."""
    ns = sigs["m"].size
    conf = rng.beta(5.0, 2.0, ns)
    speed = rng.gamma(4.0, 0.6, ns)
    approach = rng.normal(0.0, 1.0, ns)
    dist = rng.uniform(0.0, 60.0, ns)
    no_round = rng.random(ns) < cfg.frac_no_round
    no_team = rng.random(ns) < cfg.frac_no_team
    early = rng.random(ns)
    if not render:
        return Simulation(
            lines=[], units=frame, truth=truth, n_canonical=0, n_signals=0, config=cfg
        )
    lines, n_can, n_signals = _render(
        cfg,
        seed,
        match_ids,
        tid,
        maps,
        score,
        units,
        sigs,
        kls,
        dict(
            conf=conf,
            speed=speed,
            approach=approach,
            dist=dist,
            no_round=no_round,
            no_team=no_team,
            early=early,
        ),
        extra,
    )
    return Simulation(
        lines=lines, units=frame, truth=truth, n_canonical=n_can, n_signals=n_signals, config=cfg
    )


def simulate_rounds(
    n_matches: int, seed: int = 0, config: RoundsConfig | None = None, *, render: bool = True
) -> Simulation:
    """Simulate ``n_matches`` matches with round dynamics (:mod:`edgefinder.esports.dynamics`).

    Fights that snowball through the man advantage, signals from living players at one rate, a
    side- and state-dependent intent mix, one planted cause (opening peeks win the first fight).
    Every signal's ``features`` carry the round state at that moment. ``units`` has one row per
    (round, team) with the per-round and opening-phase counts; the truth is documented in
    :mod:`edgefinder.esports.dynamics`. Every random step draws from ``default_rng(seed)``.
    """
    if n_matches < 1:
        raise ValueError("n_matches must be at least 1")
    cfg = config or RoundsConfig()
    rng = np.random.default_rng([seed, 2])  # the fights draw from default_rng(seed)
    M = n_matches
    team_a = rng.integers(0, N_TEAMS_POOL, M)
    team_b = (team_a + rng.integers(1, N_TEAMS_POOL, M)) % N_TEAMS_POOL
    maps = rng.integers(0, len(MAPS), M)
    match_ids = np.array([f"simr{seed}-m{i:05d}" for i in range(M)])
    team_names = np.array([f"team{t:02d}" for t in range(N_TEAMS_POOL)])
    tid = np.stack([team_names[team_a], team_names[team_b]], axis=1)
    out = simulate_round_dynamics(M, seed, cfg, match_ids, tid)
    sigs = out["signals"]
    extra = (
        [
            f',"t_round":{tr:.3f},"alive_own":{ao},"alive_opp":{ap},"bomb_planted":{bp},'
            f'"since_plant":{"null" if sp != sp else f"{sp:.3f}"},"attack":{at},'
            f'"loadout_own":{lo:.0f},"loadout_opp":{lp:.0f},"bank_own":{bo:.0f},'
            f'"score_own":{so},"score_opp":{sq}'
            for tr, ao, ap, bp, sp, at, lo, lp, bo, so, sq in zip(
                sigs["t_round"].tolist(),
                sigs["alive_own"].tolist(),
                sigs["alive_opp"].tolist(),
                sigs["bomb_planted"].tolist(),
                sigs["since_plant"].tolist(),
                sigs["attack"].tolist(),
                sigs["loadout_own"].tolist(),
                sigs["loadout_opp"].tolist(),
                sigs["bank_own"].tolist(),
                sigs["score_own"].tolist(),
                sigs["score_opp"].tolist(),
            )
        ]
        if render
        else None
    )
    return _finish(
        cfg,
        rng,
        seed,
        match_ids,
        tid,
        maps,
        out["score"],
        out["units"],
        sigs,
        out["kills"],
        out["frame"],
        out["truth"],
        render,
        extra,
    )


def _units_frame(
    u: dict[str, np.ndarray], match_ids: np.ndarray, tid: np.ndarray, cfg: SimConfig
) -> pd.DataFrame:
    """One row per (round, team): what the database should hold once everything is ingested."""
    df = pd.DataFrame(
        {
            **unit_columns(u, match_ids, tid),
            # the latent confounder: never ingested, kept for the tests' and the truth's use
            "strength": u["strength"],
        }
    )
    for i, name in enumerate(INTENTS):
        df[f"{name}_count"] = u["counts"][:, i]
    df["total_actions"] = u["counts"].sum(axis=1)
    return df.sort_values(["match_id", "round_no", "team_id"], kind="stable").reset_index(drop=True)


def _conditional_effects(
    mu: np.ndarray, base_logit: np.ndarray, beta: float, thresholds: list[float]
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """E[Y | T=t, Z] for t = 1, 0 per threshold: Y ~ Bernoulli(sigmoid(base + beta * X)), X ~ Poisson(mu).

    T = X > threshold. Cumulative sums over the count support make every threshold one lookup.
    """
    kmax = int(max(30, np.ceil(mu.max() * 4 + 20)))
    k = np.arange(kmax + 1)
    pmf = sps.poisson.pmf(k[None, :], mu[:, None])  # (n, K)
    a = np.cumsum(pmf * expit(base_logit[:, None] + beta * k[None, :]), axis=1)
    b = np.cumsum(pmf, axis=1)
    out = {}
    for c in thresholds:
        i = int(np.floor(c))  # X <= c  <=>  X <= floor(c) for integer X
        with np.errstate(invalid="ignore", divide="ignore"):
            p0 = a[:, i] / b[:, i] if i >= 0 else np.full(mu.size, np.nan)
            p1 = (a[:, -1] - (a[:, i] if i >= 0 else 0.0)) / (
                b[:, -1] - (b[:, i] if i >= 0 else 0.0)
            )
        out[c] = (p1, p0)
    return out


def _truth(
    df: pd.DataFrame, u: dict[str, np.ndarray], cfg: SimConfig, seed: int, n_matches: int
) -> dict[str, Any]:
    probs = _intent_probs(cfg, u["attack"], u["buy"]) * _rate_weights(cfg, u["strength"])
    mu_all = (
        PLAYERS * cfg.signals_per_player * probs
    )  # (units, 9) expected counts given Z and strength
    counts = u["counts"]
    won = u["won"].astype(float)
    executed = u["executed"].astype(float)
    attack = u["attack"]

    def effect(intent: str, beta: float, outcome: str) -> dict[str, Any]:
        j = INTENT_INDEX[intent]
        x = counts[:, j].astype(float)
        if outcome == "round_win":
            base = u["own_logit"] - beta * x
            y = won
            keep = np.ones(x.size, dtype=bool)
        else:  # site_executed: attack rows only (defenders never execute: no positivity)
            base = u["exec_logit"] - beta * x
            y = executed
            keep = attack
        thr = float(np.median(counts[:, j]))
        grid = sorted({thr, *np.arange(0.0, 8.0, 0.5).tolist()})
        by_thr = {}
        for c, (p1, p0) in _conditional_effects(mu_all[keep, j], base[keep], beta, grid).items():
            ok = np.isfinite(p1) & np.isfinite(p0)
            by_thr[f"{c:g}"] = float(np.mean((p1 - p0)[ok])) if ok.any() else None
        t = x[keep] > thr
        naive = float(y[keep][t].mean() - y[keep][~t].mean()) if t.any() and (~t).any() else None
        return {
            "feature": f"{intent}_count",
            "intent": intent,
            "outcome": outcome,
            "sign": int(np.sign(beta)),
            "log_odds_per_count": beta,
            "population": "all team-rounds" if outcome == "round_win" else "attack team-rounds",
            "treatment_rule": "count > median(count)",
            "threshold": thr,
            "true_ate": by_thr[f"{thr:g}"],
            "naive_diff": naive,
            "true_ate_by_threshold": by_thr,
        }

    planted = [
        effect("trade", cfg.b_trade, "round_win"),
        effect("retreat", cfg.b_retreat, "round_win"),
        effect("hold", cfg.b_hold, "round_win"),
        effect("plant", cfg.a_plant, "site_executed"),
    ]
    confounded = dict(planted[2])
    confounded["confounders"] = ["side", "loadout_value (buy class)"] + (
        ["strength (latent, per match and team)"]
        if "hold" in cfg.strength_intents and cfg.strength_sd > 0
        else []
    )
    confounded["note"] = (
        "hold is more frequent on full buys (which win more) and on defense: the naive difference "
        "overstates the true effect; adjust for side, bank_start, loadout_value, opp_loadout_value"
        + (
            "; with strength, better teams also hold more: compare a team with itself inside a match"
            if cfg.strength_sd > 0
            else ""
        )
    )
    nulls = ["advance", "peek", "defuse", "rotate", "engage"]
    planted_intents = {p["intent"] for p in planted if p["outcome"] == "round_win"}
    touched = list(cfg.strength_intents) if cfg.strength_sd > 0 else []
    strength = {
        "sd": cfg.strength_sd,
        "per": "match and team (constant over a match, never observed)",
        "round_win_log_odds": "own strength minus the opponent's strength",
        "intents": touched,
        "log_rate_per_unit_strength": cfg.strength_intent_effect if touched else 0.0,
        # intents whose only link to round_win is strength: any effect found for them is confounding
        "strength_only_features": [f"{i}_count" for i in touched if i not in planted_intents],
        "strength_only_effects": [
            effect(i, 0.0, "round_win") for i in touched if i not in planted_intents
        ],
        "note": (
            "better teams win more and show the listed intents more; the covariates (side, bank, loadout) "
            "cannot see strength, a comparison of a team with its own rounds of the same match removes it"
            if touched
            else "no strength confounder (strength_sd = 0)"
        ),
    }
    return {
        "seed": seed,
        "matches": n_matches,
        "rounds": int(df.groupby(["match_id", "round_no"]).ngroups),
        "team_rounds": int(len(df)),
        "config": asdict(cfg),
        "planted_features": sorted(
            {p["feature"] for p in planted} | {f"{p['intent']}_share" for p in planted}
        ),
        "planted_effects": planted,
        "implied_effects": [
            {
                "feature": "plant_count",
                "outcome": "round_win",
                "sign": 1,
                "via": "site_executed (attack)",
            },
            *[
                {
                    "feature": p["feature"],
                    "outcome": "econ_delta",
                    "sign": p["sign"],
                    "via": "round_win",
                }
                for p in planted[:3]
            ],
            {
                "feature": "plant_count",
                "outcome": "econ_delta",
                "sign": 1,
                "via": "round_win and plant bonus",
            },
        ],
        "confounded": confounded,
        "strength": strength,
        "null_features": [f"{i}_count" for i in nulls]
        + [f"{i}_share" for i in nulls]
        + [
            "total_actions",
            "mean_confidence",
            "low_conf_share",
            "speed_mean",
            "speed_max",
            "approach_mean",
            "dist_to_objective_mean",
        ],
        "post_treatment_features": ["kills", "deaths", "opening_kill"],
        "covariates": ["side", "bank_start", "loadout_value", "opp_loadout_value"],
        "notes": (
            "Counts are per (round, team). Shares of planted intents carry their effects too. "
            "action_diversity is nearly constant (about 9) and has no planted effect. "
            "kills/deaths/opening_kill are generated from the round winner: associated, not causal."
        ),
    }


_KIND_ORDER = {
    "MATCH_START": 0,
    "ROUND_START": 1,
    "SIGNAL": 2,
    "SITE_EXECUTE": 3,
    "BOMB_PLANT": 4,
    "KILL": 5,
    "BOMB_DEFUSE": 6,
    "ROUND_END": 7,
    "MATCH_END": 8,
}


def _iso(base: datetime, seconds: np.ndarray) -> list[str]:
    """Wall-clock ISO 8601 UTC strings (millisecond precision), vectorized."""
    t0 = np.datetime64(base.replace(tzinfo=None), "ms")
    stamps = t0 + np.round(np.asarray(seconds, dtype=float) * 1000).astype("timedelta64[ms]")
    return [x + "Z" for x in np.datetime_as_string(stamps, unit="ms").tolist()]


def _render(
    cfg: SimConfig | RoundsConfig,
    seed: int,
    match_ids: np.ndarray,
    tid: np.ndarray,
    maps: np.ndarray,
    score: np.ndarray,
    u: dict[str, np.ndarray],
    s: dict[str, np.ndarray],
    k: dict[str, np.ndarray],
    sx: dict[str, np.ndarray],
    extra: list[str] | None = None,
) -> tuple[list[str], int, int]:
    """JSON lines in file order: per match sorted by game time, with some signals moved earlier."""
    M = match_ids.size
    base = datetime(2025, 1, 1, tzinfo=UTC)
    match_base = np.arange(M) * 7200.0  # one match every two hours of wall-clock time
    players = np.array(
        [[f"{tid[m, t]}-p{p}" for t in range(2) for p in range(PLAYERS)] for m in range(M)]
    )
    lines: list[str] = []
    keys_m: list[np.ndarray] = []
    keys_ts: list[np.ndarray] = []
    keys_kind: list[np.ndarray] = []
    chunks: list[list[str]] = []

    def add(
        m: np.ndarray,
        ts: np.ndarray,
        kind: str,
        texts: list[str],
        sort_ts: np.ndarray | None = None,
    ) -> None:
        keys_m.append(m)
        keys_ts.append(ts if sort_ts is None else sort_ts)
        keys_kind.append(np.full(m.size, _KIND_ORDER[kind]))
        chunks.append(texts)

    def eid(m: np.ndarray, tag: str) -> list[str]:
        return [f"{match_ids[mm]}-{tag}{i}" for i, mm in enumerate(m.tolist())]

    all_m = np.arange(M)
    # MATCH_START
    texts = []
    for m in range(M):
        payload = {
            "map": MAPS[maps[m]],
            "teams": [
                {
                    "team_id": tid[m, t],
                    "players": players[m, t * PLAYERS : (t + 1) * PLAYERS].tolist(),
                }
                for t in range(2)
            ],
        }
        texts.append(
            json.dumps(
                {
                    "event_id": f"{match_ids[m]}-start",
                    "match_id": match_ids[m],
                    "event_type": "MATCH_START",
                    "ts": 0.0,
                    "timestamp": _iso(base, np.array([match_base[m]]))[0],
                    "payload": payload,
                }
            )
        )
    add(all_m, np.zeros(M), "MATCH_START", texts)

    # ROUND_START / ROUND_END (units come in pairs: team 0 then team 1 of the same round)
    a = {key: val[0::2] for key, val in u.items() if key != "counts"}
    b = {key: val[1::2] for key, val in u.items() if key != "counts"}
    rm = a["m"]
    side = lambda x: np.where(x, "attack", "defense")  # noqa: E731
    sa, sb = side(a["attack"]), side(b["attack"])
    iso_start = _iso(base, match_base[rm] + a["start"])
    iso_end = _iso(base, match_base[rm] + a["end"])
    texts = [
        f'{{"event_id":"{match_ids[m]}-r{r}-start","match_id":"{match_ids[m]}","event_type":"ROUND_START",'
        f'"ts":{st:.3f},"timestamp":"{iso}","payload":{{"round_no":{r},"teams":['
        f'{{"team_id":"{tid[m, 0]}","side":"{s0}","bank":{b0:.0f},"loadout_value":{l0:.0f}}},'
        f'{{"team_id":"{tid[m, 1]}","side":"{s1}","bank":{b1:.0f},"loadout_value":{l1:.0f}}}]}}}}'
        for m, r, st, iso, s0, s1, b0, b1, l0, l1 in zip(
            rm.tolist(),
            a["r"].tolist(),
            a["start"].tolist(),
            iso_start,
            sa.tolist(),
            sb.tolist(),
            a["bank_start"].tolist(),
            b["bank_start"].tolist(),
            a["loadout"].tolist(),
            b["loadout"].tolist(),
        )
    ]
    add(rm, a["start"], "ROUND_START", texts)
    texts = [
        f'{{"event_id":"{match_ids[m]}-r{r}-end","match_id":"{match_ids[m]}","event_type":"ROUND_END",'
        f'"ts":{en:.3f},"timestamp":"{iso}","payload":{{"round_no":{r},"winner":"{tid[m, w]}","win_reason":"{why}",'
        f'"teams":[{{"team_id":"{tid[m, 0]}","bank":{b0:.0f}}},{{"team_id":"{tid[m, 1]}","bank":{b1:.0f}}}]}}}}'
        for m, r, en, iso, w, why, b0, b1 in zip(
            rm.tolist(),
            a["r"].tolist(),
            a["end"].tolist(),
            iso_end,
            a["winner"].tolist(),
            a["reason"].tolist(),
            a["bank_end"].tolist(),
            b["bank_end"].tolist(),
        )
    ]
    add(rm, a["end"], "ROUND_END", texts)

    # site events by the attacking team (and the defuse by the defenders)
    att_t = np.where(a["attack"], 0, 1)
    for kind, mask, ts_key, team_of in (
        ("SITE_EXECUTE", a["executed"] | b["executed"], "exec_ts", att_t),
        ("BOMB_PLANT", a["planted"], "plant_ts", att_t),
        ("BOMB_DEFUSE", a["defused"], "defuse_ts", 1 - att_t),
    ):
        idx = np.flatnonzero(mask)
        ts = a[ts_key][idx]
        iso = _iso(base, match_base[rm[idx]] + ts)
        tag = {"SITE_EXECUTE": "x", "BOMB_PLANT": "p", "BOMB_DEFUSE": "d"}[kind]
        texts = [
            f'{{"event_id":"{match_ids[m]}-r{r}-{tag}","match_id":"{match_ids[m]}","event_type":"{kind}",'
            f'"ts":{t_:.3f},"timestamp":"{i_}","team":"{tid[m, tm]}","payload":{{"round_no":{r},'
            f'"team":"{tid[m, tm]}","site":"{site}"}}}}'
            for m, r, t_, i_, tm, site in zip(
                rm[idx].tolist(),
                a["r"][idx].tolist(),
                ts.tolist(),
                iso,
                team_of[idx].tolist(),
                a["site"][idx].tolist(),
            )
        ]
        add(rm[idx], ts, kind, texts)

    # kills
    km, kt = k["m"], k["t"]
    iso = _iso(base, match_base[km] + k["ts"])
    ids = eid(km, "k")
    texts = [
        f'{{"event_id":"{i0}","match_id":"{match_ids[m]}","event_type":"KILL","ts":{t_:.3f},"timestamp":"{i_}",'
        f'"actor":"{players[m, t * PLAYERS + kp]}","team":"{tid[m, t]}","payload":{{"round_no":{r},'
        f'"killer":"{players[m, t * PLAYERS + kp]}","victim":"{players[m, (1 - t) * PLAYERS + vp]}",'
        f'"killer_team":"{tid[m, t]}","victim_team":"{tid[m, 1 - t]}","weapon":"{w}","headshot":{"true" if hs else "false"}}}}}'
        for i0, m, r, t, kp, vp, t_, i_, w, hs in zip(
            ids,
            km.tolist(),
            k["r"].tolist(),
            kt.tolist(),
            k["killer"].tolist(),
            k["victim"].tolist(),
            k["ts"].tolist(),
            iso,
            k["weapon"].tolist(),
            k["hs"].tolist(),
        )
    ]
    add(km, k["ts"], "KILL", texts)

    # MATCH_END
    mend = np.array([u["end"][u["m"] == m].max() + 5.0 for m in range(M)])
    iso = _iso(base, match_base + mend)
    texts = [
        json.dumps(
            {
                "event_id": f"{match_ids[m]}-end",
                "match_id": match_ids[m],
                "event_type": "MATCH_END",
                "ts": round(float(mend[m]), 3),
                "timestamp": iso[m],
                "payload": {
                    "winner": tid[m, int(np.argmax(score[m]))],
                    "score": {tid[m, 0]: int(score[m, 0]), tid[m, 1]: int(score[m, 1])},
                },
            }
        )
        for m in range(M)
    ]
    add(all_m, mend, "MATCH_END", texts)
    n_canonical = sum(len(c) for c in chunks)

    # motion signals
    sm, st = s["m"], s["t"]
    ids = eid(sm, "s")
    iso = _iso(base, match_base[sm] + s["ts"])
    texts = []
    more = extra if extra is not None else [""] * sm.size
    for i0, m, r, t, p, it, t_, i_, c, sp, ap, d, nr, nt, x in zip(
        ids,
        sm.tolist(),
        s["r"].tolist(),
        st.tolist(),
        s["p"].tolist(),
        s["intent"].tolist(),
        s["ts"].tolist(),
        iso,
        sx["conf"].tolist(),
        sx["speed"].tolist(),
        sx["approach"].tolist(),
        sx["dist"].tolist(),
        sx["no_round"].tolist(),
        sx["no_team"].tolist(),
        more,
    ):
        opt = ("" if nr else f'"round_no":{r},') + ("" if nt else f'"team":"{tid[m, t]}",')
        texts.append(
            f'{{"signal_id":"{i0}","match_id":"{match_ids[m]}",{opt}"player_id":"{players[m, t * PLAYERS + p]}",'
            f'"ts":{t_:.3f},"timestamp":"{i_}","intent":"{INTENTS[it]}","confidence":{c:.4f},'
            f'"features":{{"speed":{sp:.3f},"approach_velocity":{ap:.3f},"dist_to_objective":{d:.2f}{x}}},'
            f'"artifact_url":"s3://edgefinder-sim/clips/{i0}.mp4","model_version":"sim-1"}}'
        )
    # file position: most signals at their ts; some just before their round's ROUND_START, some
    # before the match's MATCH_START (so they reach the consumer before their round and roster)
    sort_ts = s["ts"].copy()
    round_start = dict(zip(zip(a["m"].tolist(), a["r"].tolist()), a["start"].tolist()))
    early_r = sx["early"] < cfg.frac_early_round
    early_m = (sx["early"] >= cfg.frac_early_round) & (
        sx["early"] < cfg.frac_early_round + cfg.frac_early_match
    )
    idx = np.flatnonzero(early_r)
    sort_ts[idx] = [
        round_start[(m, r)] - 0.0005 for m, r in zip(sm[idx].tolist(), s["r"][idx].tolist())
    ]
    sort_ts[early_m] = -1.0
    add(sm, s["ts"], "SIGNAL", texts, sort_ts=sort_ts)
    n_signals = len(texts)

    all_texts = [t for c in chunks for t in c]
    km_ = np.concatenate(keys_m)
    kts = np.concatenate(keys_ts)
    kkind = np.concatenate(keys_kind)
    # early signals sort before ROUND_START at the same key because ROUND_START sits at start_ts
    order = np.lexsort((kkind, kts, km_))
    lines = [all_texts[i] for i in order.tolist()]
    return lines, n_canonical, n_signals


def truth_path(out: Path) -> Path:
    """``events.jsonl`` -> ``events.truth.json`` (beside the events file)."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(f"{stem}.truth.json")


def write_simulation(sim: Simulation, out: Path) -> tuple[Path, Path]:
    """Write the JSONL events and the ground-truth JSON; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        fh.write("\n".join(sim.lines))
        fh.write("\n")
    tp = truth_path(out)
    tp.write_text(json.dumps(jsonable(sim.truth), indent=2) + "\n", encoding="utf-8")
    return out, tp


DYNAMICS = ("counts", "rounds")
"""Simulator modes: ``counts`` (per-round Poisson counts with planted count effects, :func:`simulate`)
and ``rounds`` (fights, survival-driven signals, :func:`simulate_rounds`)."""


def simulate_to_file(
    n_matches: int,
    seed: int,
    out: Path,
    config: SimConfig | RoundsConfig | None = None,
    *,
    dynamics: str = "counts",
) -> Simulation:
    """Simulate and write ``out`` (JSONL) plus ``<out>.truth.json``; returns the simulation.

    ``dynamics`` picks the mode (:data:`DYNAMICS`); ``config`` must be the mode's config class.
    """
    if dynamics == "rounds":
        if config is not None and not isinstance(config, RoundsConfig):
            raise TypeError("dynamics 'rounds' takes a RoundsConfig")
        sim = simulate_rounds(n_matches, seed, config)
    elif dynamics == "counts":
        if config is not None and not isinstance(config, SimConfig):
            raise TypeError("dynamics 'counts' takes a SimConfig")
        sim = simulate(n_matches, seed, config)
    else:
        raise ValueError(f"unknown dynamics {dynamics!r}: one of {', '.join(DYNAMICS)}")
    write_simulation(sim, out)
    return sim
