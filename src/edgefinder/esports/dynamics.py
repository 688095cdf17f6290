"""Round-dynamics simulator: a round is a sequence of fights, signals come from living players.

This is how a round is played, written down without regard to any estimator:

* **Fights.** A round starts 5 v 5. Fights arrive one after another (the first after an exponential
  wait with mean ``first_fight_mean_s``, later ones every ``fight_gap_mean_s`` on average); each
  fight kills one player. Team A wins a fight with probability
  ``sigmoid(man_advantage * (alive_A - alive_B) + b_load * loadout gap (per 1,000 dollars) +
  s_A - s_B ± holder_edge)`` (s = latent strength, 0 unless ``strength_sd`` > 0; ``holder_edge``
  favours the side holding the position: the defenders before a plant, the attackers after it): a
  team a player up wins more
  fights, so the round **snowballs** through the man advantage.
* **Bomb.** The attackers try to plant at a time drawn uniformly from ``plant_window_s`` (seconds
  into the round); they plant when at least one of them lives and they are not two or more players
  down, else they try again 10 s later. A planted bomb explodes ``bomb_timer_s`` after the plant.
* **Round end.** Defenders all dead: the attackers win (elimination). Attackers all dead before a
  plant: the defenders win (elimination); after a plant: they defuse (``bomb_defused``) when
  ``defuse_time_s`` is left on the bomb, else it explodes. No plant by ``round_time_s``: the
  defenders win on time. A bomb that explodes wins for the attackers.
* **Signals.** Every living player emits motion signals at the same rate (``signal_rate`` per second,
  every intent together), so a team's per-round count of any intent grows with its alive
  player-seconds, which grow with winning the round's fights. Each signal's intent comes from a mix
  that depends on the side (``attack_mix``/``defense_mix`` over :data:`MIX_INTENTS`) and shifts
  ``retreat_shift`` of its mass to ``retreat`` once the team is ``down_for_retreat`` or more players
  down: retreating follows a lost position. ``plant`` is signalled by the planter at the plant,
  ``defuse`` by the defuser when the defuse starts (the outcome's own mechanisms).
* **Economy.** As in the count simulator (:mod:`edgefinder.esports.simecon`): buys from the bank,
  win reward, loss bonus, kill rewards, plant bonus; MR12, first to 13.

**Planted cause (the only one).** Peeks early in the round win the first fight: each ``peek``
signal a team emits before the round's first kill adds ``opening_peek_effect`` to its log-odds of
winning that first fight, minus the same for the opponent's opening peeks (team A's first-fight
log-odds gain ``opening_peek_effect * (peeks_A - peeks_B)``). Through the snowball the effect
reaches the round win. Nothing else any intent does has an effect on anything: advance, retreat,
hold, rotate, trade and engage are **no-effect** intents (retreat's association with losing is the
state shift above, an effect *of* losing fights), as are peeks after the first kill. ``plant`` and
``defuse`` are outcome mechanisms (a plant is a site execute by definition, a defuse ends the round
for the defenders), as are kills, deaths and the opening kill. The truth file (key
``planted_causes``) names the cause, its phase and sign, and gives the empirical P(round win | first
fight won / lost) of the season.

**Round state at each action.** Every motion signal carries, in ``features``: ``t_round`` (seconds
into the round), ``alive_own``/``alive_opp``, ``bomb_planted`` (0/1), ``since_plant`` (seconds,
null before a plant), ``attack`` (1 on attack), ``loadout_own``/``loadout_opp`` and ``bank_own``
(dollars at round start) and ``score_own``/``score_opp`` (rounds won before this one). Kills carry
their game time, so the same state can be rebuilt from the canonical events alone.

Units: seconds of game time, dollars of game currency (team totals).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from edgefinder.esports.events import INTENTS
from edgefinder.esports.simecon import (
    MAX_BANK,
    PLAYERS,
    _buy,
    _buy_class,
    concat_parts,
    round_income,
    round_unit_part,
    unit_columns,
    weapons,
)

#: The intents of the per-second mix (plant and defuse are signalled at their events).
MIX_INTENTS: tuple[str, ...] = ("advance", "retreat", "hold", "peek", "rotate", "trade", "engage")
NO_EFFECT_INTENTS: tuple[str, ...] = ("advance", "retreat", "hold", "rotate", "trade", "engage")
_MIX_TO_INTENT = np.array([INTENTS.index(i) for i in MIX_INTENTS])
_RETREAT = MIX_INTENTS.index("retreat")
_PEEK = MIX_INTENTS.index("peek")


@dataclass(frozen=True)
class RoundsConfig:
    """Knobs of the round-dynamics simulator (seconds, dollars, log-odds)."""

    signal_rate: float = 0.06  # signals per living player per second, all intents together
    attack_mix: tuple[float, ...] = (0.26, 0.06, 0.12, 0.14, 0.10, 0.14, 0.18)
    defense_mix: tuple[float, ...] = (0.08, 0.08, 0.30, 0.14, 0.14, 0.10, 0.16)
    retreat_shift: float = 0.30  # mass moved to retreat once down_for_retreat players down
    down_for_retreat: int = 2
    man_advantage: float = 0.45  # fight log-odds per living player more than the opponent
    b_load: float = 0.06  # fight log-odds per 1,000 dollars of loadout gap
    #: fight log-odds of the side holding the position: defenders before a plant, attackers after
    holder_edge: float = 0.4
    opening_peek_effect: float = 0.35  # first-fight log-odds per peek before the first kill
    first_fight_mean_s: float = 20.0
    fight_gap_mean_s: float = 7.0
    round_time_s: float = 115.0
    bomb_timer_s: float = 40.0
    defuse_time_s: float = 7.0
    plant_window_s: tuple[float, float] = (25.0, 80.0)
    strength_sd: float = 0.0  # SD of a latent per-match-and-team strength (fight log-odds)
    frac_no_round: float = 0.30
    frac_no_team: float = 0.20
    frac_early_round: float = 0.05
    frac_early_match: float = 0.02

    def __post_init__(self) -> None:
        for name in ("attack_mix", "defense_mix"):
            mix = getattr(self, name)
            if len(mix) != len(MIX_INTENTS) or abs(sum(mix) - 1.0) > 1e-9 or min(mix) < 0:
                raise ValueError(f"{name} must be {len(MIX_INTENTS)} probabilities summing to 1")
        if self.strength_sd < 0 or self.signal_rate <= 0:
            raise ValueError("strength_sd must be >= 0 and signal_rate > 0")


def _pick_alive(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A uniformly drawn living player (index 0..4) per row of ``mask`` (rows, 5); rows need one."""
    cs = np.cumsum(mask, axis=1)
    k = np.floor(rng.random(mask.shape[0]) * cs[:, -1]).astype(np.int64)
    return np.argmax(cs > k[:, None], axis=1)


def _signal_rows(
    alive: np.ndarray,
    planted: np.ndarray,
    plant_t: np.ndarray,
    i: np.ndarray,
    team: np.ndarray,
    player: np.ndarray,
    intent: np.ndarray,
    ts: np.ndarray,
) -> dict[str, np.ndarray]:
    """Signals of rows ``i`` with the round state at that moment (alive counts, bomb)."""
    own = alive[i, team].sum(axis=1)
    opp = alive[i, 1 - team].sum(axis=1)
    return dict(
        i=i, t=team, p=player, intent=intent, ts=ts, alive_own=own, alive_opp=opp,
        planted=planted[i], plant_t=plant_t[i],
    )  # fmt: skip


def simulate_round_dynamics(
    n_matches: int, seed: int, cfg: RoundsConfig, match_ids: np.ndarray, tid: np.ndarray
) -> dict[str, Any]:
    """Play ``n_matches`` matches round by round, fight by fight; every draw from ``default_rng(seed)``.

    Returns the raw arrays (units, signals, kills, final score) for rendering and the truth.
    ``match_ids`` (M,) and ``tid`` (M, 2) name the matches and teams.
    """
    rng = np.random.default_rng(seed)
    M = n_matches
    strength = (
        np.random.default_rng([seed, 1]).normal(0.0, cfg.strength_sd, (M, 2))
        if cfg.strength_sd > 0
        else np.zeros((M, 2))
    )
    mixes = np.stack([np.asarray(cfg.defense_mix), np.asarray(cfg.attack_mix)])  # by attack flag
    bank = np.full((M, 2), 4000.0)
    streak = np.zeros((M, 2), dtype=np.int64)
    score = np.zeros((M, 2), dtype=np.int64)
    clock = np.full(M, 15.0)
    unit_parts: list[dict[str, np.ndarray]] = []
    sig_parts: list[dict[str, np.ndarray]] = []
    kill_parts: list[dict[str, np.ndarray]] = []

    for r in range(1, 26):
        active = np.flatnonzero((score[:, 0] < 13) & (score[:, 1] < 13))
        if active.size == 0:
            break
        n = active.size
        if r == 13:
            bank[active] = 4000.0
            streak[active] = 0
        pistol = np.full(n * 2, r in (1, 13))
        a_attack = np.full(n, r <= 12 or r == 25)
        attack = np.stack([a_attack, ~a_attack], axis=1)
        att_idx = np.where(a_attack, 0, 1)
        rows = np.arange(n)
        bank_start = bank[active]
        loadout = _buy(rng, bank_start.ravel(), pistol).reshape(n, 2)
        buy = _buy_class(loadout)
        gap0 = (loadout[:, 0] - loadout[:, 1]) / 1000.0
        s_now = strength[active]
        score_before = score[active].copy()

        alive = np.ones((n, 2, PLAYERS), dtype=bool)
        death_t = np.full((n, 2, PLAYERS), np.nan)
        t = np.zeros(n)
        done = np.zeros(n, dtype=bool)
        planted = np.zeros(n, dtype=bool)
        plant_t = np.full(n, np.nan)
        fought = np.zeros(n, dtype=bool)
        open_end = np.full(n, np.nan)
        open_peeks = np.zeros((n, 2))
        next_fight = rng.exponential(cfg.first_fight_mean_s, n)
        plant_try = rng.uniform(*cfg.plant_window_s, n)
        winner = np.full(n, -1)
        reason = np.full(n, "", dtype=object)
        end = np.zeros(n)
        defuse_t = np.full(n, np.nan)
        first_won = np.full(n, -1)
        seg_sig: list[dict[str, np.ndarray]] = []
        seg_kill: list[dict[str, np.ndarray]] = []

        while not done.all():
            i = np.flatnonzero(~done)
            n_alive = alive[i].sum(axis=2)  # (k, 2)
            limit = np.where(planted[i], plant_t[i] + cfg.bomb_timer_s, cfg.round_time_s)
            cand_plant = np.where(planted[i], np.inf, plant_try[i])
            t_next = np.minimum(np.minimum(next_fight[i], cand_plant), limit)
            # signals over [t, t_next): every living player at the same rate, state-dependent mix
            dur = t_next - t[i]
            deficit = n_alive[:, ::-1] - n_alive
            mix = mixes[attack[i].astype(np.int64)]  # (k, 2, 7)
            down = deficit >= cfg.down_for_retreat
            mix = np.where(down[..., None], mix * (1 - cfg.retreat_shift), mix)
            mix[..., _RETREAT] += np.where(down, cfg.retreat_shift, 0.0)
            lam = cfg.signal_rate * n_alive[..., None] * dur[:, None, None] * mix
            counts = rng.poisson(lam)
            open_peeks[i] += np.where(~fought[i][:, None], counts[..., _PEEK], 0)
            ki, kt, kj = np.nonzero(counts)
            reps = counts[ki, kt, kj]
            si, st, sj = np.repeat(ki, reps), np.repeat(kt, reps), np.repeat(kj, reps)
            if si.size:
                player = _pick_alive(rng, alive[i[si], st])
                ts = t[i[si]] + dur[si] * rng.random(si.size)
                seg_sig.append(
                    _signal_rows(alive, planted, plant_t, i[si], st, player, _MIX_TO_INTENT[sj], ts)
                )

            is_fight = next_fight[i] <= np.minimum(cand_plant, limit)
            is_plant = ~is_fight & (cand_plant <= limit)
            is_limit = ~is_fight & ~is_plant
            t[i] = t_next

            f = i[is_fight]
            if f.size:
                na = alive[f].sum(axis=2)
                logit = (
                    cfg.man_advantage * (na[:, 0] - na[:, 1])
                    + cfg.b_load * gap0[f]
                    + s_now[f, 0]
                    - s_now[f, 1]
                    # team 0 holds the position when it defends before a plant or attacks after it
                    + cfg.holder_edge * np.where(a_attack[f] == planted[f], 1.0, -1.0)
                    + np.where(
                        ~fought[f],
                        cfg.opening_peek_effect * (open_peeks[f, 0] - open_peeks[f, 1]),
                        0.0,
                    )
                )
                w = np.where(rng.random(f.size) < expit(logit), 0, 1)
                lose = 1 - w
                killer = _pick_alive(rng, alive[f, w])
                victim = _pick_alive(rng, alive[f, lose])
                alive[f, lose, victim] = False
                death_t[f, lose, victim] = t[f]
                seg_kill.append(
                    dict(i=f, t=w, killer=killer, victim=victim, ts=t[f], buy=buy[f, w])
                )
                first = ~fought[f]
                open_end[f[first]] = t[f[first]]
                first_won[f[first]] = w[first]
                fought[f] = True
                next_fight[f] = t[f] + rng.exponential(cfg.fight_gap_mean_s, f.size)
                na = alive[f].sum(axis=2)
                att = att_idx[f]
                n_att, n_def = na[np.arange(f.size), att], na[np.arange(f.size), 1 - att]
                def_dead = n_def == 0
                att_dead = (n_att == 0) & ~def_dead
                g = f[def_dead]
                winner[g], reason[g], end[g], done[g] = att_idx[g], "elimination", t[g], True
                g = f[att_dead & ~planted[f]]
                winner[g], reason[g], end[g], done[g] = 1 - att_idx[g], "elimination", t[g], True
                g = f[att_dead & planted[f]]
                left = plant_t[g] + cfg.bomb_timer_s - t[g]
                # the defuse starts up to 3 s after the last kill
                ok = left >= cfg.defuse_time_s + 3.0
                gd, gx = g[ok], g[~ok]
                defuse_t[gd] = t[gd] + rng.uniform(0.5, 3.0, gd.size)
                winner[gd], reason[gd], done[gd] = 1 - att_idx[gd], "bomb_defused", True
                end[gd] = defuse_t[gd] + cfg.defuse_time_s
                winner[gx], reason[gx], done[gx] = att_idx[gx], "bomb_exploded", True
                end[gx] = plant_t[gx] + cfg.bomb_timer_s
                if gd.size:
                    team = 1 - att_idx[gd]
                    who = _pick_alive(rng, alive[gd, team])
                    seg_sig.append(
                        _signal_rows(
                            alive,
                            planted,
                            plant_t,
                            gd,
                            team,
                            who,
                            np.full(gd.size, INTENTS.index("defuse")),
                            defuse_t[gd],
                        )
                    )

            p = i[is_plant]
            if p.size:
                na = alive[p].sum(axis=2)
                att = att_idx[p]
                n_att, n_def = na[np.arange(p.size), att], na[np.arange(p.size), 1 - att]
                ok = (n_att >= 1) & (n_att > n_def - 2)
                g = p[ok]
                if g.size:
                    who = _pick_alive(rng, alive[g, att_idx[g]])
                    seg_sig.append(
                        _signal_rows(
                            alive,
                            planted,
                            plant_t,
                            g,
                            att_idx[g],
                            who,
                            np.full(g.size, INTENTS.index("plant")),
                            t[g],
                        )
                    )
                planted[g] = True
                plant_t[g] = t[g]
                plant_try[p[~ok]] = t[p[~ok]] + 10.0

            g = i[is_limit]
            exploded = planted[g]
            winner[g] = np.where(exploded, att_idx[g], 1 - att_idx[g])
            reason[g] = np.where(exploded, "bomb_exploded", "time")
            end[g] = t[g]
            done[g] = True

        open_end = np.where(np.isnan(open_end), end, open_end)
        start_now = clock[active].copy()
        won = np.zeros((n, 2), dtype=bool)
        won[rows, winner] = True
        deaths = (~alive).sum(axis=2)
        kills_by = deaths[:, ::-1]
        streak_now = np.where(won, 0, streak[active] + 1)
        income = round_income(won, streak_now, kills_by, attack, planted)
        spend = loadout - 1000.0
        bank_end = np.minimum(bank_start - spend + income, MAX_BANK)
        bank[active] = bank_end
        streak[active] = streak_now
        score[active] += won
        start = clock[active]
        clock[active] = start + end + 20.0
        alive_s = np.where(np.isnan(death_t), end[:, None, None], death_t).sum(axis=2)

        sig = concat_parts(seg_sig) if seg_sig else None
        counts_all = np.zeros((n, 2, len(INTENTS)), dtype=np.int64)
        counts_open = np.zeros((n, 2, len(INTENTS)), dtype=np.int64)
        if sig is not None:
            np.add.at(counts_all, (sig["i"], sig["t"], sig["intent"]), 1)
            # compared as written (game time since match start, to the millisecond), so the
            # events say the same as the frame even for a signal in the last millisecond before a kill
            si0 = sig["i"]
            is_open = np.round(start_now[si0] + sig["ts"], 3) < np.round(
                start_now[si0] + open_end[si0], 3
            )
            np.add.at(
                counts_open,
                (sig["i"][is_open], sig["t"][is_open], sig["intent"][is_open]),
                1,
            )
            si, stm = sig["i"], sig["t"]
            sig_parts.append(
                dict(
                    m=active[si],
                    r=np.full(si.size, r),
                    t=stm,
                    p=sig["p"],
                    intent=sig["intent"],
                    ts=start[si] + sig["ts"],
                    t_round=sig["ts"],
                    alive_own=sig["alive_own"],
                    alive_opp=sig["alive_opp"],
                    bomb_planted=sig["planted"].astype(np.int64),
                    since_plant=np.where(sig["planted"], sig["ts"] - sig["plant_t"], np.nan),
                    attack=attack[si, stm].astype(np.int64),
                    loadout_own=loadout[si, stm],
                    loadout_opp=loadout[si, 1 - stm],
                    bank_own=bank_start[si, stm],
                    score_own=score_before[si, stm],
                    score_opp=score_before[si, 1 - stm],
                )
            )
        if seg_kill:
            kl = concat_parts(seg_kill)
            kill_parts.append(
                dict(
                    m=active[kl["i"]],
                    r=np.full(kl["i"].size, r),
                    t=kl["t"],
                    killer=kl["killer"],
                    victim=kl["victim"],
                    ts=start[kl["i"]] + kl["ts"],
                    weapon=weapons(rng, kl["buy"]),
                    hs=rng.random(kl["i"].size) < 0.42,
                )
            )
        exec_ts = start + np.where(planted, plant_t - rng.uniform(2.0, 6.0, n), np.nan)
        site = np.where(rng.random(n) < 0.5, "A", "B")
        opening_team = np.where(first_won >= 0, first_won, -1)
        sides = np.array([0, 1])[None, :]
        unit_parts.append(
            round_unit_part(
                active,
                r,
                (attack, bank_start, loadout, bank_end, won),
                per_team=dict(
                    executed=attack & planted[:, None],
                    counts=counts_all,
                    open_counts=counts_open,
                    alive_seconds=alive_s,
                    kills=kills_by,
                    deaths=deaths,
                    opening_kill=opening_team[:, None] == sides,
                    open_peeks=open_peeks,
                    strength=s_now,
                    first_fight_won=first_won[:, None] == sides,
                ),
                per_round=dict(
                    open_seconds=open_end,
                    start=start,
                    end=start + end,
                    duration=end,
                    winner=winner,
                    reason=reason.astype(str),
                    site=site,
                    exec_ts=exec_ts,
                    plant_ts=start + plant_t,
                    defuse_ts=start + defuse_t,
                    planted=planted,
                    defused=reason == "bomb_defused",
                    fought=first_won >= 0,
                ),
            )
        )

    units = concat_parts(unit_parts)
    sigs = concat_parts(sig_parts)
    kls = concat_parts(kill_parts)
    frame = units_frame(units, match_ids, tid)
    return dict(
        units=units,
        signals=sigs,
        kills=kls,
        score=score,
        frame=frame,
        truth=_truth(frame, cfg, seed, M),
    )


def units_frame(u: dict[str, np.ndarray], match_ids: np.ndarray, tid: np.ndarray) -> pd.DataFrame:
    """One row per (round, team), with the columns the feature extraction gives for the same rounds.

    Besides the per-round counts: ``{intent}_open_count`` (signals before the round's first kill, or
    in the whole round when nobody died), ``open_seconds`` (seconds from the round start to the
    first kill, or the round's length), ``alive_seconds`` (the team's player-seconds alive), and
    for the tests only the latent ``strength``, ``open_peeks`` and ``first_fight_won``.
    """
    df = pd.DataFrame(
        {
            **unit_columns(u, match_ids, tid),
            "opening_kill": u["opening_kill"].astype(int),
            "open_seconds": u["open_seconds"],
            "round_seconds": u["duration"],
            "alive_seconds": u["alive_seconds"],
            "strength": u["strength"],
            "open_peeks": u["open_peeks"],
            "first_fight_won": u["first_fight_won"].astype(int),
        }
    )
    for j, name in enumerate(INTENTS):
        df[f"{name}_count"] = u["counts"][:, j]
        df[f"{name}_open_count"] = u["open_counts"][:, j]
    df["total_actions"] = u["counts"].sum(axis=1)
    df["open_actions"] = u["open_counts"].sum(axis=1)
    return df.sort_values(["match_id", "round_no", "team_id"], kind="stable").reset_index(drop=True)


def _truth(df: pd.DataFrame, cfg: RoundsConfig, seed: int, n_matches: int) -> dict[str, Any]:
    fought = df["kills"] + df["deaths"] > 0
    won_first = df["first_fight_won"] == 1
    p_won = float(df.loc[fought & won_first, "round_win"].mean())
    p_lost = float(df.loc[fought & ~won_first, "round_win"].mean())
    naive = {}
    for intent in INTENTS:
        x = df[f"{intent}_count"]
        t = x > x.median()
        if t.any() and (~t).any():
            naive[f"{intent}_count"] = float(
                df.loc[t, "round_win"].mean() - df.loc[~t, "round_win"].mean()
            )
    return {
        "dynamics": "rounds",
        "seed": seed,
        "matches": n_matches,
        "rounds": int(df.groupby(["match_id", "round_no"]).ngroups),
        "team_rounds": int(len(df)),
        "config": asdict(cfg),
        "planted_causes": [
            {
                "intent": "peek",
                "feature": "peek_open_count",
                "phase": "opening: before the round's first kill",
                "outcome": "round_win",
                "sign": 1,
                "via": "the first fight, then the man advantage",
                "first_fight_log_odds_per_peek": cfg.opening_peek_effect,
                "rule": "first-fight log-odds of team A gain effect * (opening peeks of A - of B)",
            }
        ],
        "no_effect_intents": list(NO_EFFECT_INTENTS),
        "no_effect_note": (
            "these intents change nothing; peeks after the first kill change nothing either. Their "
            "per-round counts still grow with alive player-seconds, and retreat's share grows once a "
            "team is down, so per-round counts and full-round rates are associated with winning"
        ),
        "state_dependent_intents": {
            "retreat": {
                "shift": cfg.retreat_shift,
                "when": f"the team is {cfg.down_for_retreat}+ players down",
            }
        },
        "outcome_mechanisms": {
            "plant_count": "a plant is a site execute (site_executed) and the bomb's win condition",
            "defuse_count": "a defuse ends the round for the defenders",
            "kills": "fights decide the round",
            "deaths": "fights decide the round",
            "opening_kill": "the first fight",
        },
        "first_fight": {
            "p_round_win_if_won": p_won,
            "p_round_win_if_lost": p_lost,
        },
        "naive_count_differences": naive,
        "signal_rate_per_alive_player_s": cfg.signal_rate,
        "covariates": ["side", "bank_start", "loadout_value", "opp_loadout_value"],
    }
