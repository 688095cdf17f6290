"""The state of a round at any moment, rebuilt from the stored tables.

A round is seen from its **attacking** side: the model predicts P(attackers win the round | state)
and the defenders' probability is its complement, so the two teams' probabilities always add up
to 1 and "side" is the perspective rather than a column. The state at game time ``t`` counts only
what happened strictly before ``t`` (a kill at ``t`` is not yet in the state at ``t``):

========================  ============================================================================
``time_in_round``         seconds since the round's ROUND_START
``att_alive``/``def_alive`` players alive per side: the roster size (``match_players``; 5 when the
                          source names no players) minus the side's deaths so far (revivals ignored)
``alive_diff``            ``att_alive - def_alive``
``att_equip``/``def_equip`` team loadout value at ROUND_START (dollars of game currency; NaN when the
                          source records none)
``equip_diff``            ``att_equip - def_equip`` (dollars)
``att_tier``/``def_tier``   buy tier at ROUND_START (0 full eco .. 3 full buy; NaN when absent)
``tier_diff``             ``att_tier - def_tier``
``att_bank``/``def_bank``   team bank at ROUND_START (dollars; NaN when absent)
``planted``               1 once the bomb (spike) is planted
``since_plant``           seconds since the plant (NaN before it)
``score_diff``            attackers' rounds won minus defenders' before this round
``rounds_played``         finished rounds of the match before this one
========================  ============================================================================

The gradient-boosted model takes NaN as "unknown" natively, so a source without money keeps its
rows. Which game a match belongs to is read from its id (:func:`game_of`): real Valorant and real
CS never share a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, and_, func, select

from edgefinder.esports.aggregate import _connection, _resolved_actions, add_pre_round_state
from edgefinder.store.tables import (
    kills,
    match_players,
    matches,
    raw_events,
    round_teams,
    rounds,
    site_events,
)

#: Game keys: one model each. ``other`` is any other producer (the simulator, a live feed).
GAMES: tuple[str, ...] = ("valorant", "cs", "other")
_PREFIX_GAME = {"ribgg-": "valorant", "awpy-": "cs", "esea-": "cs"}
#: Players per side when the source lists no roster.
DEFAULT_TEAM_SIZE = 5
STATE_FEATURES: tuple[str, ...] = (
    "time_in_round",
    "att_alive",
    "def_alive",
    "alive_diff",
    "att_equip",
    "def_equip",
    "equip_diff",
    "att_tier",
    "def_tier",
    "tier_diff",
    "att_bank",
    "def_bank",
    "planted",
    "since_plant",
    "score_diff",
    "rounds_played",
)
_KEY = ["match_id", "round_no"]


def game_of(match_id: str) -> str:
    """The game key of a match, from the importer's id prefix (``ribgg-`` Valorant; ``awpy-``,
    ``esea-`` CS; anything else ``other``)."""
    for prefix, game in _PREFIX_GAME.items():
        if match_id.startswith(prefix):
            return game
    return "other"


@dataclass(frozen=True)
class RoundTimelines:
    """Everything needed to rebuild any round's state.

    ``rounds``: one row per finished round with a known attacking side (``match_id``, ``round_no``,
    ``game``, ``map``, ``start_ts``, ``end_ts`` (game seconds), ``attacker``, ``defender`` (team ids),
    ``att_win`` (0/1), ``match_order`` (matches ranked by start time, then id), the pre-round part of
    the state); ``kills``: ``match_id``, ``round_no``, ``ts``, cumulative ``att_deaths`` and
    ``def_deaths`` after each kill; ``plants``: the first plant of a round (``plant_ts``).
    """

    rounds: pd.DataFrame
    kills: pd.DataFrame
    plants: pd.DataFrame

    def for_game(self, game: str) -> RoundTimelines:
        """The timelines of one game's matches."""
        r = self.rounds[self.rounds["game"] == game]
        ids = set(r["match_id"])
        return RoundTimelines(
            r.reset_index(drop=True),
            self.kills[self.kills["match_id"].isin(ids)].reset_index(drop=True),
            self.plants[self.plants["match_id"].isin(ids)].reset_index(drop=True),
        )

    @property
    def games(self) -> list[str]:
        """Games with at least one round, in :data:`GAMES` order."""
        present = set(self.rounds["game"])
        return [g for g in GAMES if g in present]


def _frame(conn: Connection, stmt) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    res = conn.execute(stmt)
    return pd.DataFrame([tuple(r) for r in res.fetchall()], columns=list(res.keys()))


def _buy_tiers(conn: Connection) -> pd.DataFrame:
    """``buy_tier`` per (match, round, team) from the stored ROUND_START payloads (not materialized)."""
    res = conn.execute(
        select(raw_events.c.match_id, raw_events.c.payload).where(
            raw_events.c.event_type == "ROUND_START"
        )
    )
    recs = []
    for mid, payload in res:
        rn = payload.get("round_no")
        for t in payload.get("teams") or ():
            tier = t.get("buy_tier")
            if rn is not None and tier is not None:
                recs.append((mid, int(rn), t.get("team_id"), float(tier)))
    return pd.DataFrame(recs, columns=["match_id", "round_no", "team_id", "tier"])


def load_timelines(source: Engine | Connection | str) -> RoundTimelines:
    """Read the finished rounds, their kills and plants from the database (any back end)."""
    with _connection(source) as conn:
        rnd = _frame(
            conn,
            select(
                rounds.c.match_id,
                rounds.c.round_no,
                rounds.c.start_ts,
                rounds.c.end_ts,
                rounds.c.winner,
                matches.c.map,
                matches.c.started_at,
            )
            .select_from(rounds.outerjoin(matches, matches.c.match_id == rounds.c.match_id))
            .where(rounds.c.end_ts.is_not(None), rounds.c.winner.is_not(None)),
        )
        teams = _frame(
            conn,
            select(
                round_teams.c.match_id,
                round_teams.c.round_no,
                round_teams.c.team_id,
                round_teams.c.side,
                round_teams.c.bank_start,
                round_teams.c.loadout_value,
            ),
        )
        sizes = _frame(
            conn,
            select(
                match_players.c.match_id,
                match_players.c.team_id,
                func.count().label("size"),
            ).group_by(match_players.c.match_id, match_players.c.team_id),
        )
        kl = _frame(
            conn,
            select(kills.c.match_id, kills.c.round_no, kills.c.ts, kills.c.victim_team),
        )
        pl = _frame(
            conn,
            select(
                site_events.c.match_id,
                site_events.c.round_no,
                func.min(site_events.c.ts).label("plant_ts"),
            )
            .where(and_(site_events.c.kind == "BOMB_PLANT"))
            .group_by(site_events.c.match_id, site_events.c.round_no),
        )
        tiers = _buy_tiers(conn)
    return build_timelines(rnd, teams, sizes, kl, pl, tiers)


def build_timelines(
    rnd: pd.DataFrame,
    teams: pd.DataFrame,
    sizes: pd.DataFrame,
    kl: pd.DataFrame,
    pl: pd.DataFrame,
    tiers: pd.DataFrame,
) -> RoundTimelines:
    """:class:`RoundTimelines` from the raw table frames of :func:`load_timelines` (pure)."""
    teams = teams.merge(tiers, on=["match_id", "round_no", "team_id"], how="left")
    if "tier" not in teams:
        teams["tier"] = np.nan
    teams = teams.merge(sizes, on=["match_id", "team_id"], how="left")
    teams["size"] = pd.to_numeric(teams["size"]).fillna(DEFAULT_TEAM_SIZE)
    cols = ["match_id", "round_no", "team_id", "bank_start", "loadout_value", "tier", "size"]

    def side(name: str, prefix: str, role: str) -> pd.DataFrame:
        names = {"team_id": role, "bank_start": "bank", "loadout_value": "equip"}
        renamed = {c: f"{prefix}_{names.get(c, c)}" for c in cols[3:]}
        renamed["team_id"] = role
        return teams.loc[teams["side"] == name, cols].drop_duplicates(_KEY).rename(columns=renamed)

    att = side("attack", "att", "attacker")
    dfn = side("defense", "def", "defender")
    r = rnd.merge(att, on=_KEY).merge(dfn, on=_KEY)
    r = r[(r["winner"] == r["attacker"]) | (r["winner"] == r["defender"])].copy()
    for c in ("att_bank", "def_bank", "att_equip", "def_equip", "att_tier", "def_tier"):
        r[c] = pd.to_numeric(r[c], errors="coerce").astype(np.float64)
    r["round_no"] = r["round_no"].astype(np.int64)
    r["att_win"] = (r["winner"] == r["attacker"]).astype(np.int64)
    r["game"] = [game_of(m) for m in r["match_id"]]
    # the score before the round, from earlier finished rounds only
    per_team = pd.concat(
        [
            r[["match_id", "round_no"]].assign(team_id=r["attacker"], round_win=r["att_win"]),
            r[["match_id", "round_no"]].assign(team_id=r["defender"], round_win=1 - r["att_win"]),
        ],
        ignore_index=True,
    )
    state = add_pre_round_state(per_team)
    att_state = state.iloc[: len(r)]
    r["score_diff"] = att_state["score_diff"].to_numpy(dtype=np.float64)
    r["rounds_played"] = (
        r.groupby("match_id")["round_no"].rank(method="first").to_numpy(dtype=np.float64) - 1.0
    )
    started = pd.to_datetime(r["started_at"], utc=True, errors="coerce")
    first = (
        pd.DataFrame({"match_id": r["match_id"], "s": started})
        .groupby("match_id")["s"]
        .min()
        .reset_index()
        .sort_values(["s", "match_id"], na_position="last", kind="stable")
    )
    order = {m: i for i, m in enumerate(first["match_id"])}
    r["match_order"] = r["match_id"].map(order).astype(np.int64)
    r = r.drop(columns=["winner", "started_at"]).reset_index(drop=True)

    k = kl.merge(r[[*_KEY, "attacker", "defender"]], on=_KEY)
    k = k.sort_values([*_KEY, "ts"], kind="stable")
    k["att_deaths"] = (k["victim_team"] == k["attacker"]).astype(np.int64)
    k["def_deaths"] = (k["victim_team"] == k["defender"]).astype(np.int64)
    g = k.groupby(_KEY, sort=False)
    k["att_deaths"] = g["att_deaths"].cumsum()
    k["def_deaths"] = g["def_deaths"].cumsum()
    k = k[[*_KEY, "ts", "att_deaths", "def_deaths"]].reset_index(drop=True)
    p = pl.merge(r[_KEY], on=_KEY)[[*_KEY, "plant_ts"]].reset_index(drop=True)
    return RoundTimelines(r, k, p)


def state_at(tl: RoundTimelines, queries: pd.DataFrame) -> pd.DataFrame:
    """The state of each query's round at game time ``t``, from the attackers' side.

    ``queries``: columns ``match_id``, ``round_no``, ``t`` (game seconds since match start). Returns
    a frame aligned with ``queries`` (same index) holding :data:`STATE_FEATURES`, ``att_win``,
    ``over`` (1 when ``t`` is at or after the round's end) and ``game``. Queries of rounds not in
    ``tl`` are dropped.
    """
    q = queries[[*_KEY, "t"]].copy()
    q["_row"] = np.arange(len(q))
    q["t"] = q["t"].astype(np.float64)
    q["round_no"] = q["round_no"].astype(np.int64)
    base = q.merge(tl.rounds, on=_KEY)
    base = base.sort_values("t", kind="stable")
    kl = tl.kills.sort_values("ts", kind="stable").rename(columns={"ts": "t"})
    kl["t"] = kl["t"].astype(np.float64)
    # deaths strictly before t: the last kill with ts < t in the same round
    base = pd.merge_asof(base, kl, on="t", by=_KEY, direction="backward", allow_exact_matches=False)
    base = base.merge(tl.plants, on=_KEY, how="left").sort_values("_row", kind="stable")
    att_deaths = base["att_deaths"].fillna(0.0).to_numpy(dtype=np.float64)
    def_deaths = base["def_deaths"].fillna(0.0).to_numpy(dtype=np.float64)
    t = base["t"].to_numpy(dtype=np.float64)
    plant = base["plant_ts"].to_numpy(dtype=np.float64)
    planted = np.isfinite(plant) & (plant < t)
    out = pd.DataFrame(index=queries.index[base["_row"].to_numpy()])
    out["game"] = base["game"].to_numpy()
    out["time_in_round"] = np.maximum(t - base["start_ts"].to_numpy(dtype=np.float64), 0.0)
    out["att_alive"] = np.maximum(base["att_size"].to_numpy(dtype=np.float64) - att_deaths, 0.0)
    out["def_alive"] = np.maximum(base["def_size"].to_numpy(dtype=np.float64) - def_deaths, 0.0)
    out["alive_diff"] = out["att_alive"] - out["def_alive"]
    for c in ("att_equip", "def_equip", "att_tier", "def_tier", "att_bank", "def_bank"):
        out[c] = base[c].to_numpy(dtype=np.float64)
    out["equip_diff"] = out["att_equip"] - out["def_equip"]
    out["tier_diff"] = out["att_tier"] - out["def_tier"]
    out["planted"] = planted.astype(np.float64)
    out["since_plant"] = np.where(planted, t - plant, np.nan)
    out["score_diff"] = base["score_diff"].to_numpy(dtype=np.float64)
    out["rounds_played"] = base["rounds_played"].to_numpy(dtype=np.float64)
    out["att_win"] = base["att_win"].to_numpy(dtype=np.int64)
    out["over"] = (t >= base["end_ts"].to_numpy(dtype=np.float64)).astype(np.int64)
    out["match_id"] = base["match_id"].to_numpy()
    out["match_order"] = base["match_order"].to_numpy(dtype=np.int64)
    return out


#: Seconds between the regular snapshots of a round (besides one after every kill and plant).
SNAPSHOT_GRID_S = 10.0
#: A snapshot right after an event: the event is in the state (the state at t excludes events at t).
AFTER_EVENT_S = 1e-3


def snapshots(tl: RoundTimelines, grid_s: float = SNAPSHOT_GRID_S) -> pd.DataFrame:
    """Training rows: the state at the round's start, right after every kill and plant, and every
    ``grid_s`` seconds of the round; with the round's result ``att_win``.

    Rows of one round share its outcome and are strongly dependent: every evaluation resamples and
    splits whole matches.
    """
    r = tl.rounds
    dur = (r["end_ts"] - r["start_ts"]).clip(lower=0.0).to_numpy(dtype=np.float64)
    n_ticks = np.floor(dur / grid_s).astype(np.int64) + 1
    idx = np.repeat(np.arange(len(r)), n_ticks)
    offs = np.concatenate([np.arange(n) for n in n_ticks]) * grid_s if len(r) else np.zeros(0)
    grid = pd.DataFrame(
        {
            "match_id": r["match_id"].to_numpy()[idx],
            "round_no": r["round_no"].to_numpy()[idx],
            "t": r["start_ts"].to_numpy(dtype=np.float64)[idx] + offs,
        }
    )
    ev = pd.concat(
        [
            tl.kills[_KEY].assign(t=tl.kills["ts"].astype(np.float64) + AFTER_EVENT_S),
            tl.plants[_KEY].assign(t=tl.plants["plant_ts"].astype(np.float64) + AFTER_EVENT_S),
        ],
        ignore_index=True,
    )
    q = pd.concat([grid, ev], ignore_index=True)
    st = state_at(tl, q)
    return st[st["over"] == 0].reset_index(drop=True)


def load_actions(source: Engine | Connection | str) -> pd.DataFrame:
    """Every motion signal with its round and team resolved: ``match_id``, ``round_no``,
    ``team_id``, ``ts`` (game seconds), ``intent`` (the resolution rule of the feature frame)."""
    ra = _resolved_actions()
    with _connection(source) as conn:
        return _frame(
            conn,
            select(ra.c.match_id, ra.c.round_no, ra.c.team_id, ra.c.ts, ra.c.intent),
        )
