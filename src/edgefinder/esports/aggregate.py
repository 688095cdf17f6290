"""Round-level feature vectors: one row per (round, team) of every finished round.

The grouping runs in SQL (SQLAlchemy Core; the same statement on Postgres and SQLite), pandas only
divides counts into shares. A finished round is one with ``macro_outcomes`` rows (the canonical
consumer writes them at ROUND_END for both teams).

Motion signals that arrived without ``round_no`` or ``team`` are resolved **at query time**: the round
is the one of the same match whose game-time window ``[start_ts, end_ts]`` (seconds since match start,
both ends inclusive) holds the signal's ``ts``, the team comes from the MATCH_START roster
(``match_players``, by pseudonymized player hash). So a signal that arrived before its round's events
is counted as soon as the round exists, without any rewrite of the stored signal. Round windows of
one match are disjoint in every game we ingest (the next round starts after the freeze time); a
signal lying exactly on a shared boundary would count in both rounds.

Columns (per round and team):

- ``match_id``, ``round_no``, ``team_id``
- ``{intent}_count`` and ``{intent}_share`` (count / total_actions; 0 when the team had no signals)
  for the nine intents of :data:`INTENTS`
- ``total_actions`` (signals), ``mean_confidence`` (0..1), ``low_conf_share`` (share of signals with
  confidence < 0.6), ``speed_mean`` / ``speed_max`` and ``approach_mean`` (the model's units, as sent
  in the signal's ``features``; NaN when no signal carried them)
- ``action_diversity``: the number of **distinct** intents the team showed in the round (0..9). A
  count, not an entropy: it is exact in SQL, and easy to read in a report.
- exposure-aware treatments (the outcome cannot inflate them): ``{intent}_open_count``, signals of
  the intent before the round's first kill (the whole round when nobody died), while all ten players
  live; ``{intent}_rate``, signals per alive player-second of the team. Exposure: ``open_seconds``
  (round start to the first kill, or to the end), ``round_seconds``, ``alive_seconds`` = 5 x
  round_seconds minus, for each of the team's deaths, the seconds from the death to the round's
  end (player-seconds; NaN when the round's window is unknown)
- ``kills``, ``deaths``, ``opening_kill`` (1 if this team made the round's first kill, by game time)
- pre-round covariates: ``side`` (attack = 1, defense = 0), ``bank_start``, ``loadout_value``,
  ``opp_loadout_value`` (dollars of game currency at ROUND_START), and the match state before the
  round (:func:`add_pre_round_state`, computed from earlier rounds only): ``score_diff`` (rounds won
  minus rounds lost so far), ``prev_round_result`` (+1 won, -1 lost the team's previous finished
  round of the match, 0 on its first) and ``loss_streak`` (rounds lost in a row just before this one)
- outcomes: ``round_win`` (0/1), ``econ_delta`` (bank at ROUND_END minus bank at ROUND_START,
  dollars), ``site_executed`` (0/1)

A SQLAlchemy :class:`~sqlalchemy.engine.Engine`, a :class:`~sqlalchemy.engine.Connection` or a
database URL string is accepted. The original system's example passes an asyncpg pool and awaits the
call: ``await edgefinder.analytics.aggregate.extract_round_features(pool)`` runs the same statement
(:func:`features_statement`, compiled for asyncpg) on the pool and builds the frame with the same
:func:`features_frame`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    union_all,
)

from edgefinder.esports.events import INTENTS
from edgefinder.store.engine import make_engine
from edgefinder.store.tables import (
    kills,
    macro_outcomes,
    match_players,
    micro_actions,
    round_teams,
    rounds,
)

LOW_CONFIDENCE = 0.6
"""Signals with confidence below this count towards ``low_conf_share``."""

KEY_COLUMNS = ("match_id", "round_no", "team_id")
COUNT_FEATURES = tuple(f"{i}_count" for i in INTENTS)
SHARE_FEATURES = tuple(f"{i}_share" for i in INTENTS)
ACTION_FEATURES = (
    "total_actions",
    "mean_confidence",
    "low_conf_share",
    "speed_mean",
    "speed_max",
    "approach_mean",
    "action_diversity",
)
#: Signals of each intent before the round's first kill (the opening phase; the whole round when
#: nobody died): every player of both teams is alive, so the count cannot be inflated by survival.
OPEN_COUNT_FEATURES = tuple(f"{i}_open_count" for i in INTENTS)
#: Signals of each intent per alive player-second of the team in the round.
RATE_FEATURES = tuple(f"{i}_rate" for i in INTENTS)
#: Exposure of a round: ``open_seconds`` (round start to the first kill, or to the end), the round's
#: length ``round_seconds`` and the team's ``alive_seconds`` (player-seconds alive).
EXPOSURE_COLUMNS: tuple[str, ...] = ("open_seconds", "round_seconds", "alive_seconds")
#: Players per team in both games (5 v 5): the alive player-seconds start from it.
PLAYERS_PER_TEAM = 5
#: Micro features: what the AI-inferred intents say about a team's play in a round.
MICRO_FEATURES: tuple[str, ...] = (
    COUNT_FEATURES + SHARE_FEATURES + ACTION_FEATURES + OPEN_COUNT_FEATURES + RATE_FEATURES
)
#: In-round facts (decided during the round, like the outcome itself): tested but tagged apart.
IN_ROUND_FEATURES: tuple[str, ...] = ("kills", "deaths", "opening_kill")
#: Side and money of the round (ROUND_START): vary inside a match with the half and the economy.
ROUND_COVARIATES: tuple[str, ...] = ("side", "bank_start", "loadout_value", "opp_loadout_value")
#: Match state before the round, from the team's earlier rounds of the match (no look-ahead).
STATE_COVARIATES: tuple[str, ...] = ("score_diff", "prev_round_result", "loss_streak")
#: Pre-round covariates (known at ROUND_START): the only adjustment set of the adjusted tests and
#: the causal step. All of them vary inside a match, so the within-match design can use them.
COVARIATES: tuple[str, ...] = (*ROUND_COVARIATES, *STATE_COVARIATES)
OUTCOMES: tuple[str, ...] = ("round_win", "econ_delta", "site_executed")
BINARY_OUTCOMES: tuple[str, ...] = ("round_win", "site_executed")
FEATURE_COLUMNS: tuple[str, ...] = MICRO_FEATURES + IN_ROUND_FEATURES
ALL_COLUMNS: tuple[str, ...] = (
    KEY_COLUMNS + FEATURE_COLUMNS + EXPOSURE_COLUMNS + COVARIATES + OUTCOMES
)


@contextmanager
def _connection(source: Engine | Connection | str) -> Iterator[Connection]:
    if isinstance(source, Connection):
        yield source
        return
    if isinstance(source, str):
        engine = make_engine(source)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()
        return
    if isinstance(source, Engine):
        with source.connect() as conn:
            yield conn
        return
    raise TypeError(
        f"extract_round_features needs an SQLAlchemy Engine, Connection or URL string, got {type(source).__name__}"
    )


def _resolved_actions():  # type: ignore[no-untyped-def]
    """Every signal with its round and team resolved (stored value first, then window/roster).

    Two branches joined by UNION ALL, so each can use an index: signals that carry ``round_no`` (the
    (match_id, round_no) index) and signals that do not (the rounds of the same match, by window).
    """
    ma = micro_actions
    mp = match_players
    team = func.coalesce(ma.c.team, mp.c.team_id)
    roster = and_(mp.c.match_id == ma.c.match_id, mp.c.player_hash == ma.c.player_hash)
    cols = (ma.c.intent, ma.c.confidence, ma.c.speed, ma.c.approach_velocity, ma.c.ts)
    known = (
        select(ma.c.match_id, ma.c.round_no.label("round_no"), team.label("team_id"), *cols)
        .select_from(ma.outerjoin(mp, roster))
        .where(ma.c.round_no.is_not(None))
    )
    r = rounds.alias("rw")
    by_window = (
        select(ma.c.match_id, r.c.round_no.label("round_no"), team.label("team_id"), *cols)
        .select_from(
            ma.join(
                r,
                and_(
                    r.c.match_id == ma.c.match_id,
                    ma.c.ts >= r.c.start_ts,
                    ma.c.ts <= r.c.end_ts,
                ),
            ).outerjoin(mp, roster)
        )
        .where(ma.c.round_no.is_(None))
    )
    return union_all(known, by_window).subquery("ra")


def features_statement():  # type: ignore[no-untyped-def]
    """The SELECT behind :func:`extract_round_features` (counts and means; shares come after)."""
    ra = _resolved_actions()
    one = literal(1)
    zero = literal(0)
    # the opening phase of a round ends at its first kill (or at its end when nobody died)
    first_kill_ts = (
        select(kills.c.match_id, kills.c.round_no, func.min(kills.c.ts).label("ts"))
        .group_by(kills.c.match_id, kills.c.round_no)
        .subquery("fkt")
    )
    rw = rounds.alias("ro")
    opening = (
        select(
            rw.c.match_id,
            rw.c.round_no,
            rw.c.start_ts,
            rw.c.end_ts,
            func.coalesce(first_kill_ts.c.ts, rw.c.end_ts).label("open_end"),
        )
        .select_from(
            rw.outerjoin(
                first_kill_ts,
                and_(
                    first_kill_ts.c.match_id == rw.c.match_id,
                    first_kill_ts.c.round_no == rw.c.round_no,
                ),
            )
        )
        .subquery("op")
    )
    in_opening = ra.c.ts < opening.c.open_end
    # COUNT(*) FILTER (WHERE ...) (Postgres, SQLite >= 3.30) is about twice as fast as SUM(CASE ...)
    per_intent = [func.count().filter(ra.c.intent == i).label(f"{i}_count") for i in INTENTS]
    per_intent_open = [
        func.count().filter(and_(ra.c.intent == i, in_opening)).label(f"{i}_open_count")
        for i in INTENTS
    ]
    actions = (
        select(
            ra.c.match_id,
            ra.c.round_no,
            ra.c.team_id,
            func.count().label("total_actions"),
            *per_intent,
            *per_intent_open,
            func.avg(ra.c.confidence).label("mean_confidence"),
            func.avg(
                case((ra.c.confidence < LOW_CONFIDENCE, literal(1.0)), else_=literal(0.0))
            ).label("low_conf_share"),
            func.avg(ra.c.speed).label("speed_mean"),
            func.max(ra.c.speed).label("speed_max"),
            func.avg(ra.c.approach_velocity).label("approach_mean"),
        )
        .select_from(
            ra.outerjoin(
                opening,
                and_(opening.c.match_id == ra.c.match_id, opening.c.round_no == ra.c.round_no),
            )
        )
        .where(ra.c.team_id.is_not(None))
        .group_by(ra.c.match_id, ra.c.round_no, ra.c.team_id)
        .subquery("act")
    )
    # player-seconds a team lost to deaths: each death removes (round end - time of death)
    lost = (
        select(
            kills.c.match_id,
            kills.c.round_no,
            kills.c.victim_team.label("team_id"),
            func.sum(rw.c.end_ts - kills.c.ts).label("lost_s"),
        )
        .select_from(
            kills.join(
                rw, and_(rw.c.match_id == kills.c.match_id, rw.c.round_no == kills.c.round_no)
            )
        )
        .group_by(kills.c.match_id, kills.c.round_no, kills.c.victim_team)
        .subquery("lost")
    )
    killed = (
        select(
            kills.c.match_id,
            kills.c.round_no,
            kills.c.killer_team.label("team_id"),
            func.count().label("n"),
        )
        .group_by(kills.c.match_id, kills.c.round_no, kills.c.killer_team)
        .subquery("k")
    )
    died = (
        select(
            kills.c.match_id,
            kills.c.round_no,
            kills.c.victim_team.label("team_id"),
            func.count().label("n"),
        )
        .group_by(kills.c.match_id, kills.c.round_no, kills.c.victim_team)
        .subquery("d")
    )
    # First kill of the round by game time; event_id breaks ties so the answer is deterministic.
    ranked = select(
        kills.c.match_id,
        kills.c.round_no,
        kills.c.killer_team,
        func.row_number()
        .over(
            partition_by=(kills.c.match_id, kills.c.round_no),
            order_by=(kills.c.ts, kills.c.event_id),
        )
        .label("rn"),
    ).subquery("kr")
    first_kill = (
        select(ranked.c.match_id, ranked.c.round_no, ranked.c.killer_team)
        .where(ranked.c.rn == 1)
        .subquery("fk")
    )
    mo = macro_outcomes
    rt = round_teams.alias("rt")
    opp = round_teams.alias("opp")

    def on(sub):  # type: ignore[no-untyped-def]
        return and_(
            sub.c.match_id == mo.c.match_id,
            sub.c.round_no == mo.c.round_no,
            sub.c.team_id == mo.c.team_id,
        )

    stmt = (
        select(
            mo.c.match_id,
            mo.c.round_no,
            mo.c.team_id,
            func.coalesce(actions.c.total_actions, 0).label("total_actions"),
            *[func.coalesce(actions.c[f"{i}_count"], 0).label(f"{i}_count") for i in INTENTS],
            actions.c.mean_confidence,
            actions.c.low_conf_share,
            actions.c.speed_mean,
            actions.c.speed_max,
            actions.c.approach_mean,
            *[
                func.coalesce(actions.c[f"{i}_open_count"], 0).label(f"{i}_open_count")
                for i in INTENTS
            ],
            cast(opening.c.open_end - opening.c.start_ts, Float).label("open_seconds"),
            cast(opening.c.end_ts - opening.c.start_ts, Float).label("round_seconds"),
            cast(func.coalesce(lost.c.lost_s, 0.0), Float).label("lost_seconds"),
            func.coalesce(killed.c.n, 0).label("kills"),
            func.coalesce(died.c.n, 0).label("deaths"),
            case((first_kill.c.killer_team == mo.c.team_id, one), else_=zero).label("opening_kill"),
            case((rt.c.side == "attack", one), (rt.c.side == "defense", zero), else_=None).label(
                "side"
            ),
            cast(rt.c.bank_start, Float).label("bank_start"),
            cast(rt.c.loadout_value, Float).label("loadout_value"),
            cast(opp.c.loadout_value, Float).label("opp_loadout_value"),
            mo.c.round_win,
            mo.c.econ_delta,
            mo.c.site_executed,
        )
        .select_from(
            mo.outerjoin(actions, on(actions))
            .outerjoin(killed, on(killed))
            .outerjoin(died, on(died))
            .outerjoin(lost, on(lost))
            .outerjoin(
                opening,
                and_(opening.c.match_id == mo.c.match_id, opening.c.round_no == mo.c.round_no),
            )
            .outerjoin(
                first_kill,
                and_(
                    first_kill.c.match_id == mo.c.match_id, first_kill.c.round_no == mo.c.round_no
                ),
            )
            .outerjoin(rt, on(rt))
            .outerjoin(
                opp,
                and_(
                    opp.c.match_id == mo.c.match_id,
                    opp.c.round_no == mo.c.round_no,
                    opp.c.team_id != mo.c.team_id,
                ),
            )
        )
        .order_by(mo.c.match_id, mo.c.round_no, mo.c.team_id)
    )
    return stmt


_INT_COLUMNS = (
    "total_actions",
    *COUNT_FEATURES,
    *OPEN_COUNT_FEATURES,
    "kills",
    "deaths",
    "opening_kill",
    "round_win",
    "site_executed",
)


def extract_round_features(source: Engine | Connection | str) -> pd.DataFrame:
    """One row per (round, team) of every finished round; see the module docstring for the columns.

    ``source`` is an Engine, a Connection or a database URL. An empty database gives an empty
    DataFrame with all columns. Raises SQLAlchemy errors when the database is unreachable.
    """
    stmt = features_statement()
    with _connection(source) as conn:
        result = conn.execute(stmt)
        names = list(result.keys())
        rows = result.fetchall()
    return features_frame(names, rows)


def features_frame(names: list[str], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The feature frame from the rows of :func:`features_statement` (any driver): types, shares, diversity."""
    # rows as tuples, which pandas makes of them anyway (the stubs take no Sequence rows)
    df = pd.DataFrame.from_records([tuple(r) for r in rows], columns=names)
    if df.empty:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="object" if c in ("match_id", "team_id") else "float64")
                for c in ALL_COLUMNS
            }
        )
    # A round could (in broken data) list more than two teams; keep one opponent deterministically.
    df = df.drop_duplicates(subset=list(KEY_COLUMNS), keep="first").reset_index(drop=True)
    for col in _INT_COLUMNS:
        df[col] = pd.to_numeric(df[col]).astype(np.int64)
    for col in (
        "mean_confidence",
        "low_conf_share",
        "speed_mean",
        "speed_max",
        "approach_mean",
        "side",
        "bank_start",
        "loadout_value",
        "opp_loadout_value",
        "econ_delta",
        "open_seconds",
        "round_seconds",
        "lost_seconds",
    ):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    df["round_no"] = df["round_no"].astype(np.int64)
    total = df["total_actions"].to_numpy(dtype=np.float64)
    safe = np.where(total > 0, total, 1.0)
    counts = df.loc[:, list(COUNT_FEATURES)].to_numpy(dtype=np.int64)
    for j, intent in enumerate(INTENTS):
        df[f"{intent}_share"] = counts[:, j] / safe
    # distinct intents shown = intents with a non-zero count (same as COUNT(DISTINCT intent), cheaper)
    df["action_diversity"] = (counts > 0).sum(axis=1).astype(np.int64)
    alive = PLAYERS_PER_TEAM * df["round_seconds"].to_numpy() - df["lost_seconds"].to_numpy()
    df["alive_seconds"] = alive
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / np.where(alive > 0, alive, np.nan)[:, None]
    for j, intent in enumerate(INTENTS):
        df[f"{intent}_rate"] = rates[:, j]
    return add_pre_round_state(df).loc[:, list(ALL_COLUMNS)]


def add_pre_round_state(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with the match state before each round: ``score_diff``, ``prev_round_result``, ``loss_streak``.

    Needs ``match_id``, ``team_id``, ``round_no`` and ``round_win`` (0/1). Only rounds that come
    *before* the current one in the same match count (no look-ahead): ``score_diff`` = the team's
    rounds won minus its opponent's rounds won so far (rounds), ``prev_round_result`` = +1 / -1 when
    the team won / lost its previous finished round of the match and 0 on its first round (a signed
    code rather than a missing value, so every row stays usable), ``loss_streak`` = rounds lost in a
    row just before this one (0 after a win and on the first round). A round missing from the data
    (not finished) is skipped, not guessed. One vectorized pass: sort, grouped cumulative sums, shift.
    """
    out = df.copy()
    if out.empty:
        for col in STATE_COVARIATES:
            out[col] = pd.Series(dtype="float64")
        return out
    order = out.sort_values(["match_id", "team_id", "round_no"], kind="stable").index
    d = out.loc[order, ["match_id", "team_id", "round_no", "round_win"]]
    win = d["round_win"].astype(np.int64)
    # the opponent's result of the same round: the round's wins minus the team's own
    opp = (
        d.groupby(["match_id", "round_no"], sort=False)["round_win"]
        .transform("sum")
        .astype(np.int64)
        - win
    )
    unit = [d["match_id"], d["team_id"]]
    net = (win - opp).groupby(unit, sort=False).cumsum() - (
        win - opp
    )  # exclusive: earlier rounds only
    prev = (2 * win - 1).groupby(unit, sort=False).shift(1).fillna(0).astype(np.int64)
    # wins before this round, per team: a new block starts after every win, and the rows of one block
    # before the current one are all losses, so the streak is the position inside the block
    block = win.groupby(unit, sort=False).cumsum() - win
    streak = d.groupby([d["match_id"], d["team_id"], block], sort=False).cumcount()
    out.loc[order, "score_diff"] = net.to_numpy(dtype=np.float64)
    out.loc[order, "prev_round_result"] = prev.to_numpy(dtype=np.float64)
    out.loc[order, "loss_streak"] = streak.to_numpy(dtype=np.float64)
    return out
