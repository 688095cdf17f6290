"""What each event becomes in the database: per-batch row building and the materializing SQL.

:class:`BatchRows` turns validated events into rows (player ids pseudonymized). The SQLite path
writes every table's rows with executemany; the Postgres path stages canonical events and signals
with COPY and runs :func:`pg_script`, which derives the same tables in SQL. The post-batch
statements (outcomes of both teams of every finished round, resolution of signals waiting for a
round window or a roster) are shared by both back ends.

The duplicate-id rule, the same on both back ends: the first stored copy of an ``event_id`` /
``signal_id`` wins in every table (the tables derived from canonical events are built from newly
stored events only); a later copy with the same content (:func:`same_content`) changes nothing,
one with other content is a conflict (the pipeline dead-letters it, with both copies'
:func:`content_hash`). Different events of one natural key (two ROUND_END events of a round)
are not duplicates: the later one in the stream updates the round.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from edgefinder.esports.events import SITE_TYPES, STANDARD_FEATURES, CanonicalEvent, MotionSignal
from edgefinder.esports.pseudonym import Pseudonymizer

# Post-batch SQL, shared by both back ends (``:mids`` = the matches the batch touched; SQLite
# binds a list, the Postgres script substitutes a sub-select of the staged events).

#: macro_outcomes of BOTH teams of every finished round: round_win; econ_delta = bank at
#: ROUND_END - bank at ROUND_START (dollars); site_executed = the team planted or executed. Both
#: teams, because winners-only rows leave round_win constant (docs/decisions.md §D5).
MACRO_SQL = """
INSERT INTO macro_outcomes (match_id, round_no, team_id, round_win, econ_delta, site_executed)
SELECT rt.match_id, rt.round_no, rt.team_id,
       CASE WHEN r.winner = rt.team_id THEN 1 ELSE 0 END,
       rt.bank_end - rt.bank_start,
       CASE WHEN EXISTS (
           SELECT 1 FROM site_events s
           WHERE s.match_id = rt.match_id AND s.round_no = rt.round_no
             AND s.team = rt.team_id AND s.kind IN ('BOMB_PLANT', 'SITE_EXECUTE')
       ) THEN 1 ELSE 0 END
FROM round_teams rt, rounds r
WHERE r.match_id = rt.match_id AND r.round_no = rt.round_no
  AND r.winner IS NOT NULL AND rt.match_id IN :mids
ON CONFLICT (match_id, round_no, team_id) DO UPDATE SET
    round_win = excluded.round_win,
    econ_delta = excluded.econ_delta,
    site_executed = excluded.site_executed
WHERE macro_outcomes.round_win IS DISTINCT FROM excluded.round_win
   OR macro_outcomes.econ_delta IS DISTINCT FROM excluded.econ_delta
   OR macro_outcomes.site_executed IS DISTINCT FROM excluded.site_executed
"""

ROUND_MAP_SQL = """
UPDATE rounds SET map = (SELECT m.map FROM matches m WHERE m.match_id = rounds.match_id)
WHERE rounds.map IS NULL AND rounds.match_id IN :mids
  AND EXISTS (SELECT 1 FROM matches m WHERE m.match_id = rounds.match_id AND m.map IS NOT NULL)
"""

# UPDATE … FROM (Postgres, and SQLite >= 3.33): one join instead of a subquery per row. Round
# windows [start_ts, end_ts] (game seconds) of a match are disjoint: at most one round matches.
RESOLVE_ROUND_SQL = """
UPDATE micro_actions SET round_no = r.round_no
FROM rounds r
WHERE micro_actions.round_no IS NULL AND micro_actions.match_id IN :mids
  AND r.match_id = micro_actions.match_id AND r.end_ts IS NOT NULL
  AND r.start_ts <= micro_actions.ts AND micro_actions.ts <= r.end_ts
"""

RESOLVE_TEAM_SQL = """
UPDATE micro_actions SET team = p.team_id
FROM match_players p
WHERE micro_actions.team IS NULL AND micro_actions.match_id IN :mids
  AND p.match_id = micro_actions.match_id AND p.player_hash = micro_actions.player_hash
"""


_OUTCOME_TYPES = frozenset(
    {"ROUND_START", "ROUND_END", "BOMB_PLANT", "SITE_EXECUTE", "BOMB_DEFUSE"}
)
_WINDOW_TYPES = frozenset({"ROUND_START", "ROUND_END"})

#: payload keys whose string values (or lists of strings) are player ids, in any event type
PLAYER_KEYS = frozenset(
    {
        "player",
        "player_id",
        "players",
        "killer",
        "victim",
        "actor",
        "assister",
        "attacker",
        "planter",
        "defuser",
        "flasher",
        "steamid",
        "steam_id",
    }
)


def scrub(value: Any, pseudo: Callable[[str], str]) -> Any:
    """Replace player ids under :data:`PLAYER_KEYS` (at any depth) with their pseudonyms."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in PLAYER_KEYS:
                if isinstance(v, str):
                    v = pseudo(v)
                elif isinstance(v, list):
                    v = [pseudo(x) if isinstance(x, str) else scrub(x, pseudo) for x in v]
                else:
                    v = scrub(v, pseudo)
            else:
                v = scrub(v, pseudo)
            out[k] = v
        return out
    if isinstance(value, list):
        return [scrub(v, pseudo) for v in value]
    return value


#: micro_actions columns in the order of the row tuples built by :func:`micro_row`
MICRO_COLS = (
    "signal_id",
    "match_id",
    "round_no",
    "team",
    "player_hash",
    "ts",
    "intent",
    "confidence",
    "speed",
    "approach_velocity",
    "dist_to_objective",
    "features",
    "artifact_url",
    "model_version",
)
#: raw_events columns in the order of the row tuples built by :func:`raw_row` (the stored content
#: of a canonical event: the envelope with pseudonyms, and the normalized payload)
RAW_COLS = (
    "event_id",
    "match_id",
    "event_type",
    "ts",
    "occurred_at",
    "actor_hash",
    "team",
    "payload",
)
_STANDARD = frozenset(STANDARD_FEATURES)
# a signal's fields in one C call on the model's __dict__ (where pydantic keeps validated values),
# instead of eleven attribute lookups per signal
_SIGNAL_FIELDS = itemgetter(
    "signal_id",
    "match_id",
    "round_no",
    "team",
    "player_id",
    "ts",
    "intent",
    "confidence",
    "features",
    "artifact_url",
    "model_version",
)


def micro_row(ev: MotionSignal, pseudo: Callable[[str], str], *head: Any) -> tuple[Any, ...]:
    """A signal's micro_actions row in :data:`MICRO_COLS` order (``features`` as a dict or None),
    after the values of ``head`` (the Postgres path puts the batch position first).

    The three standard features get their own columns (as floats; anything but a number is
    None); ``features`` keeps the dict only when it carries anything else (no need to store and
    index the same numbers twice). Validation bounded the numbers, so every float is finite.
    """
    sid, mid, rn, team, player, ts, intent, conf, f, url, version = _SIGNAL_FIELDS(ev.__dict__)
    speed, approach, dist = f.get("speed"), f.get("approach_velocity"), f.get("dist_to_objective")
    # inline (this runs for most of the traffic): int -> float, non-numbers (bool too) -> None
    if speed.__class__ is not float:
        speed = float(speed) if speed.__class__ is int else None
    if approach.__class__ is not float:
        approach = float(approach) if approach.__class__ is int else None
    if dist.__class__ is not float:
        dist = float(dist) if dist.__class__ is int else None
    return (
        *head,
        sid,
        mid,
        rn,
        team,
        pseudo(player),
        ts,
        intent,
        conf,
        speed,
        approach,
        dist,
        f if f and not _STANDARD.issuperset(f) else None,
        url,
        version,
    )


def raw_row(ev: CanonicalEvent, pseudo: Callable[[str], str]) -> tuple[Any, ...]:
    """A canonical event's raw_events row in :data:`RAW_COLS` order (``payload`` as a dict).

    The stored payload carries pseudonyms too: raw player ids are never written.
    """
    p = ev.payload
    stored = scrub(p if isinstance(p, dict) else p.model_dump(mode="json"), pseudo)
    actor = pseudo(ev.actor) if ev.actor is not None else None
    return (ev.event_id, ev.match_id, ev.event_type, ev.ts, ev.timestamp, actor, ev.team, stored)


def _utc_naive(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo is not None else v
    return v


def same_content(kind: str, copy: Sequence[Any], stored: Sequence[Any]) -> bool:
    """Is ``copy`` (a row of this batch) the same event as ``stored`` (the row in the database)?

    ``kind`` is ``raw`` (:data:`RAW_COLS` rows) or ``micro`` (:data:`MICRO_COLS` rows). Times are
    compared as UTC instants. A signal's ``round_no`` / ``team`` that the copy leaves out match
    whatever is stored (the stored row may carry the value resolved later). A raw_events row
    stored before ``occurred_at`` existed (NULL there) is compared on its other columns only.
    """
    if kind == "micro":
        for i, (a, b) in enumerate(zip(copy, stored)):
            if a != b and not (a is None and i in _RESOLVED):
                return False
        return True
    if stored[4] is None:  # a row written before the envelope columns existed
        return tuple(copy[:4]) == tuple(stored[:4]) and copy[7] == stored[7]
    return all(_utc_naive(a) == _utc_naive(b) for a, b in zip(copy, stored))


_RESOLVED = frozenset({MICRO_COLS.index("round_no"), MICRO_COLS.index("team")})


def content_hash(row: Sequence[Any]) -> str:
    """16 hex digits of BLAKE2b over a stored row's content (the id column excluded).

    The same definition on both back ends: JSON with sorted keys, times as UTC ISO text. Shown in
    ``conflict`` dead letters so that the two copies of an id can be told apart and found again.
    """
    values = [_utc_naive(v) for v in row[1:]]
    text_ = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text_.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class BatchRows:
    """The rows of one batch's valid events: staging rows (Postgres) or every table's (SQLite).

    The first copy of an id in the batch is the one written (the duplicate-id rule: the first
    stored copy wins); later copies of the same id are kept apart (``raw_dups`` /
    ``micro_dups``) for the content check. Rows keyed by a natural key (a round, a team in a
    round, a match) take the batch's last event of that key, on both back ends.
    """

    def __init__(self, pseudo: Pseudonymizer, *, full: bool = True) -> None:
        # full: build every table's rows (SQLite); otherwise only the staging rows (Postgres
        # materializes the other tables in SQL from the staged canonical events)
        self.full = full
        self.pseudo = pseudo
        self._hash = pseudo.hash  # no method call per player id
        self.types: set[str] = set()
        self.raw: dict[Any, Any] = {}
        self.raw_dups: list[tuple[Any, ...]] = []
        self.match_start: dict[Any, dict[str, Any]] = {}
        self.match_end: dict[Any, dict[str, Any]] = {}
        self.players: dict[Any, dict[str, Any]] = {}
        self.round_start: dict[Any, dict[str, Any]] = {}
        self.round_end: dict[Any, dict[str, Any]] = {}
        self.rt_start: dict[Any, dict[str, Any]] = {}
        self.rt_end: dict[Any, dict[str, Any]] = {}
        self.kills: dict[Any, dict[str, Any]] = {}
        self.sites: dict[Any, dict[str, Any]] = {}
        self.micro: dict[Any, tuple[Any, ...]] = {}
        self.micro_dups: list[tuple[Any, ...]] = []
        self.outcome_matches: set[str] = set()  # matches whose round outcomes may have changed
        self.structure_matches: set[str] = set()  # matches with new rounds/roster
        self.roster_matches: set[str] = set()  # MATCH_START in this batch
        self.window_matches: set[str] = set()  # a round window closed (ROUND_END/ROUND_START)
        self.teamless_matches: set[str] = set()  # signals without team in this batch
        self.roundless_matches: set[str] = set()  # signals without round_no in this batch

    def add(
        self, ev: CanonicalEvent | MotionSignal, seq: int, row: tuple[Any, ...] | None = None
    ) -> None:
        """Add the valid event at position ``seq`` of the batch (``row``: its row, if built)."""
        mid = ev.match_id
        if ev.__class__ is MotionSignal:
            staged = (seq, *row) if row is not None else micro_row(ev, self._hash, seq)
            # staged: seq, then MICRO_COLS (signal_id, match_id, round_no, team, …)
            if staged[3] is None:
                self.roundless_matches.add(mid)
            if staged[4] is None:
                self.teamless_matches.add(mid)
            if staged[1] in self.micro:
                self.micro_dups.append(staged)
            else:
                self.micro[staged[1]] = staged
            return
        assert isinstance(ev, CanonicalEvent)
        t = ev.event_type
        self.types.add(t)
        if row is None:
            row = raw_row(ev, self._hash)
        if not self.full:
            staged = (seq, *row)
            if ev.event_id in self.raw:
                self.raw_dups.append(staged)
            else:
                self.raw[ev.event_id] = staged
        elif ev.event_id in self.raw:
            return  # SQLite: the caller passes first copies only; a repeat adds nothing
        else:
            self.raw[ev.event_id] = dict(zip(RAW_COLS, row))
        if t in _OUTCOME_TYPES:
            self.outcome_matches.add(mid)
        if t in _WINDOW_TYPES:
            self.window_matches.add(mid)
            self.structure_matches.add(mid)
        if t == "MATCH_START":
            self.roster_matches.add(mid)
            self.structure_matches.add(mid)
        if not self.full:
            return
        p = ev.payload
        if t == "MATCH_START":
            self.match_start[mid] = {
                "match_id": mid,
                "map": p.map,
                "team_a": p.teams[0].team_id,
                "team_b": p.teams[1].team_id,
                "started_at": ev.timestamp,
            }
            for team in p.teams:
                for player in team.players:
                    h = self.pseudo(player)
                    self.players[(mid, h)] = {
                        "match_id": mid,
                        "player_hash": h,
                        "team_id": team.team_id,
                    }
        elif t == "ROUND_START":
            rn = p.round_no
            self.round_start[(mid, rn)] = {"match_id": mid, "round_no": rn, "start_ts": ev.ts}
            for team in p.teams:
                self.rt_start[(mid, rn, team.team_id)] = {
                    "match_id": mid,
                    "round_no": rn,
                    "team_id": team.team_id,
                    "side": team.side,
                    "bank_start": team.bank,
                    "loadout_value": team.loadout_value,
                }
        elif t == "ROUND_END":
            rn = p.round_no
            self.round_end[(mid, rn)] = {
                "match_id": mid,
                "round_no": rn,
                "end_ts": ev.ts,
                "winner": p.winner,
                "win_reason": p.win_reason,
            }
            for team in p.teams:
                self.rt_end[(mid, rn, team.team_id)] = {
                    "match_id": mid,
                    "round_no": rn,
                    "team_id": team.team_id,
                    "bank_end": team.bank,
                }
        elif t == "KILL":
            self.kills[ev.event_id] = {
                "event_id": ev.event_id,
                "match_id": mid,
                "round_no": p.round_no,
                "ts": ev.ts,
                "killer_hash": self.pseudo(p.killer) if p.killer else None,
                "victim_hash": self.pseudo(p.victim) if p.victim else None,
                "killer_team": p.killer_team,
                "victim_team": p.victim_team,
                "weapon": p.weapon,
                "headshot": p.headshot,
            }
        elif t in SITE_TYPES:
            self.sites[ev.event_id] = {
                "event_id": ev.event_id,
                "match_id": mid,
                "round_no": p.round_no,
                "ts": ev.ts,
                "kind": t,
                "team": p.team,
                "site": p.site,
            }
        elif t == "MATCH_END":
            self.match_end[mid] = {
                "match_id": mid,
                "winner": p.winner,
                "score": p.score,
                "ended_at": ev.timestamp,
            }
        # other event types: kept in raw_events only


_RAW_MIDS = "SELECT DISTINCT match_id FROM _ef_raw WHERE event_type IN ({types})"


def _any(subquery: str) -> str:
    """``= ANY(ARRAY(subquery))`` for the post-batch SQL's ``IN :mids``: the few match ids are
    computed once and probed through the index; an ``IN (subquery)`` on the unanalysed staging
    table lets the planner scan the whole target table instead, every batch."""
    return f"= ANY(ARRAY({subquery}))"


#: staging tables of the Postgres path (temporary, per connection, emptied at commit): first
#: copies of the batch's canonical events and signals, and the copies whose id was already taken
PG_STAGES = {
    "_ef_raw": "CREATE TEMP TABLE IF NOT EXISTS _ef_raw (seq integer, event_id text, match_id text, "
    "event_type text, ts double precision, occurred_at timestamptz, actor_hash text, team text, payload jsonb) "
    "ON COMMIT DELETE ROWS",
    "_ef_rawdup": "CREATE TEMP TABLE IF NOT EXISTS _ef_rawdup (LIKE _ef_raw) ON COMMIT DELETE ROWS",
    "_ef_micro": "CREATE TEMP TABLE IF NOT EXISTS _ef_micro ON COMMIT DELETE ROWS AS "
    f"SELECT 0::integer AS seq, {', '.join(MICRO_COLS)} FROM micro_actions WITH NO DATA",
    "_ef_microdup": "CREATE TEMP TABLE IF NOT EXISTS _ef_microdup (LIKE _ef_micro) ON COMMIT DELETE ROWS",
}

#: the staging tables' column types, for binary COPY (a few times cheaper per row than text)
PG_STAGE_TYPES = {
    "raw": ["int4", "text", "text", "text", "float8", "timestamptz", "text", "text", "jsonb"],
    "micro": [
        "int4",
        "varchar",
        "varchar",
        "int4",
        "varchar",
        "varchar",
        "float8",
        "varchar",
        "float8",
        "float8",
        "float8",
        "float8",
        "jsonb",
        "text",
        "varchar",
    ],
}

_RAW_DIFFERS = (
    "(d.match_id, d.event_type, d.ts, d.payload) IS DISTINCT FROM (r.match_id, r.event_type, r.ts, r.payload) "
    "OR (r.occurred_at IS NOT NULL AND (d.occurred_at, d.actor_hash, d.team) "
    "IS DISTINCT FROM (r.occurred_at, r.actor_hash, r.team))"
)
_MICRO_FIXED = [c for c in MICRO_COLS if c not in ("signal_id", "round_no", "team")]
_MICRO_DIFFERS = (
    f"({', '.join('d.' + c for c in _MICRO_FIXED)}) IS DISTINCT FROM ({', '.join('m.' + c for c in _MICRO_FIXED)}) "
    "OR (d.round_no IS NOT NULL AND d.round_no IS DISTINCT FROM m.round_no) "
    "OR (d.team IS NOT NULL AND d.team IS DISTINCT FROM m.team)"
)


#: first keys of the two-key advisory locks ("ES" ingest; the second is the match id's hash):
#: a match's writer lock and its resolution lock (see :func:`pg_script`)
WRITER_LOCK = 0x45530001
RESOLUTION_LOCK = 0x45530002


def _lock(fn: str, cls: int, stages: Sequence[str]) -> str:
    """Lock every match of the staged rows, in bytewise order ("C": the order of every batch)."""
    ids = " UNION ".join(f"SELECT match_id FROM {t}" for t in stages)
    return (
        f"SELECT count({fn}({cls}, hashtext(m))) FROM "
        f'(SELECT DISTINCT match_id COLLATE "C" AS m FROM ({ids}) AS u ORDER BY 1) AS o'
    )


def pg_script(rows: BatchRows) -> str:
    """The SQL that materializes one staged batch on Postgres (no parameters: one round trip).

    raw_events and micro_actions keep the first stored copy of an id (``ON CONFLICT DO
    NOTHING``); a staged event whose id was already stored moves to the ``…dup`` stage, so the
    tables derived from canonical events are built from newly stored events only. Upserts keyed
    by a natural key keep the batch's last event of that key (``DISTINCT ON … ORDER BY seq
    DESC``), exactly like the row dicts of the SQLite path. The last statement returns the
    conflicts: ``(kind, seq, stored row as jsonb)`` for every staged copy whose content differs
    from the stored copy of its id (see :func:`same_content`; the same rule in SQL).

    Locks (transaction-scoped advisory locks per match, so the later of two conflicting
    transactions sees the earlier one's rows): a batch with canonical events first takes its
    matches' writer lock exclusively (outcomes and rounds are computed from everything committed
    for the match), and their resolution lock exclusively just before it resolves waiting
    signals; a batch of signals takes the resolution lock shared, so motion consumers run in
    parallel and wait for a canonical batch only during its last statements. Either the signals
    commit first and the canonical batch's resolution sees them, or they come after and their
    own insert sees the new rounds and roster.
    """
    t = rows.types
    parts: list[str] = []
    raw_stages = ["_ef_raw", "_ef_rawdup"] if rows.raw or rows.raw_dups else []
    micro_stages = ["_ef_micro", "_ef_microdup"] if rows.micro or rows.micro_dups else []
    if not raw_stages and not micro_stages:
        return ""
    if not raw_stages:
        parts.append(_lock("pg_advisory_xact_lock_shared", RESOLUTION_LOCK, micro_stages))
    else:
        parts.append(_lock("pg_advisory_xact_lock", WRITER_LOCK, raw_stages + micro_stages))
        if micro_stages:  # a file's batch holds both kinds: it resolves as it inserts
            parts.append(_lock("pg_advisory_xact_lock", RESOLUTION_LOCK, raw_stages + micro_stages))
    rn = "(payload->>'round_no')::integer"
    rrn = "(r.payload->>'round_no')::integer"
    cols = ", ".join(RAW_COLS)
    if rows.raw:
        parts.append(
            f"WITH ins AS (INSERT INTO raw_events ({cols}) SELECT {cols} FROM _ef_raw "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id), "
            "gone AS (DELETE FROM _ef_raw r WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.event_id = r.event_id) "
            "RETURNING r.*) INSERT INTO _ef_rawdup SELECT * FROM gone"
        )
    if "MATCH_START" in t:
        parts.append(
            "INSERT INTO matches (match_id, map, team_a, team_b, started_at) "
            "SELECT DISTINCT ON (match_id) match_id, payload->>'map', payload->'teams'->0->>'team_id', "
            "payload->'teams'->1->>'team_id', occurred_at FROM _ef_raw WHERE event_type = 'MATCH_START' "
            "ORDER BY match_id, seq DESC ON CONFLICT (match_id) DO UPDATE SET map = excluded.map, "
            "team_a = excluded.team_a, team_b = excluded.team_b, started_at = excluded.started_at"
        )
        parts.append(
            "INSERT INTO match_players (match_id, player_hash, team_id) "
            "SELECT DISTINCT ON (r.match_id, p.h) r.match_id, p.h, t.v->>'team_id' FROM _ef_raw r "
            "CROSS JOIN LATERAL jsonb_array_elements(r.payload->'teams') WITH ORDINALITY AS t(v, ti) "
            "CROSS JOIN LATERAL jsonb_array_elements_text(t.v->'players') WITH ORDINALITY AS p(h, pi) "
            "WHERE r.event_type = 'MATCH_START' ORDER BY r.match_id, p.h, r.seq DESC, t.ti DESC, p.pi DESC "
            "ON CONFLICT (match_id, player_hash) DO UPDATE SET team_id = excluded.team_id"
        )
    if "ROUND_START" in t:
        parts.append(
            f"INSERT INTO rounds (match_id, round_no, start_ts) SELECT DISTINCT ON (match_id, {rn}) "
            f"match_id, {rn}, ts FROM _ef_raw WHERE event_type = 'ROUND_START' ORDER BY match_id, {rn}, seq DESC "
            "ON CONFLICT (match_id, round_no) DO UPDATE SET start_ts = excluded.start_ts"
        )
        parts.append(
            "INSERT INTO round_teams (match_id, round_no, team_id, side, bank_start, loadout_value) "
            f"SELECT DISTINCT ON (r.match_id, {rrn}, t.v->>'team_id') r.match_id, {rrn}, "
            "t.v->>'team_id', t.v->>'side', (t.v->>'bank')::double precision, "
            "(t.v->>'loadout_value')::double precision FROM _ef_raw r "
            "CROSS JOIN LATERAL jsonb_array_elements(r.payload->'teams') WITH ORDINALITY AS t(v, ti) "
            f"WHERE r.event_type = 'ROUND_START' ORDER BY r.match_id, {rrn}, t.v->>'team_id', r.seq DESC, t.ti DESC "
            "ON CONFLICT (match_id, round_no, team_id) DO UPDATE SET side = excluded.side, "
            "bank_start = excluded.bank_start, loadout_value = excluded.loadout_value"
        )
    if "ROUND_END" in t:
        parts.append(
            f"INSERT INTO rounds (match_id, round_no, end_ts, winner, win_reason) SELECT DISTINCT ON "
            f"(match_id, {rn}) match_id, {rn}, ts, payload->>'winner', payload->>'win_reason' FROM _ef_raw "
            f"WHERE event_type = 'ROUND_END' ORDER BY match_id, {rn}, seq DESC "
            "ON CONFLICT (match_id, round_no) DO UPDATE SET end_ts = excluded.end_ts, "
            "winner = excluded.winner, win_reason = excluded.win_reason"
        )
        parts.append(
            "INSERT INTO round_teams (match_id, round_no, team_id, bank_end) "
            f"SELECT DISTINCT ON (r.match_id, {rrn}, t.v->>'team_id') r.match_id, {rrn}, "
            "t.v->>'team_id', (t.v->>'bank')::double precision FROM _ef_raw r "
            "CROSS JOIN LATERAL jsonb_array_elements(r.payload->'teams') WITH ORDINALITY AS t(v, ti) "
            f"WHERE r.event_type = 'ROUND_END' ORDER BY r.match_id, {rrn}, t.v->>'team_id', r.seq DESC, t.ti DESC "
            "ON CONFLICT (match_id, round_no, team_id) DO UPDATE SET bank_end = excluded.bank_end"
        )
    if "KILL" in t:
        parts.append(
            "INSERT INTO kills (event_id, match_id, round_no, ts, killer_hash, victim_hash, killer_team, "
            f"victim_team, weapon, headshot) SELECT event_id, match_id, {rn}, ts, "
            "payload->>'killer', payload->>'victim', payload->>'killer_team', payload->>'victim_team', "
            "payload->>'weapon', (payload->>'headshot')::boolean FROM _ef_raw WHERE event_type = 'KILL' "
            "ON CONFLICT (event_id) DO NOTHING"
        )
    if t & SITE_TYPES:
        parts.append(
            "INSERT INTO site_events (event_id, match_id, round_no, ts, kind, team, site) "
            f"SELECT event_id, match_id, {rn}, ts, event_type, payload->>'team', "
            "payload->>'site' FROM _ef_raw WHERE event_type IN ('BOMB_PLANT', 'SITE_EXECUTE', 'BOMB_DEFUSE') "
            "ON CONFLICT (event_id) DO NOTHING"
        )
    if "MATCH_END" in t:
        parts.append(
            "INSERT INTO matches (match_id, winner, score, ended_at) SELECT DISTINCT ON (match_id) "
            "match_id, payload->>'winner', payload->'score', occurred_at FROM _ef_raw WHERE event_type = 'MATCH_END' "
            "ORDER BY match_id, seq DESC ON CONFLICT (match_id) DO UPDATE SET winner = excluded.winner, "
            "score = excluded.score, ended_at = excluded.ended_at"
        )
    if rows.micro:
        # resolve round and team while inserting (no second write of the new rows); a signal
        # whose round or roster is not stored yet stays NULL until a canonical batch completes it
        select = ", ".join(
            {
                "round_no": "COALESCE(s.round_no, (SELECT r.round_no FROM rounds r "
                "WHERE r.match_id = s.match_id AND r.end_ts IS NOT NULL "
                "AND r.start_ts <= s.ts AND s.ts <= r.end_ts ORDER BY r.round_no LIMIT 1))",
                "team": "COALESCE(s.team, (SELECT p.team_id FROM match_players p "
                "WHERE p.match_id = s.match_id AND p.player_hash = s.player_hash))",
            }.get(c, f"s.{c}")
            for c in MICRO_COLS
        )
        parts.append(
            f"WITH ins AS (INSERT INTO micro_actions ({', '.join(MICRO_COLS)}) SELECT {select} FROM _ef_micro s "
            "ON CONFLICT (signal_id) DO NOTHING RETURNING signal_id) "
            "INSERT INTO _ef_microdup SELECT s.* FROM _ef_micro s "
            "WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.signal_id = s.signal_id)"
        )
    if t & _OUTCOME_TYPES:
        mids = _RAW_MIDS.format(
            types="'ROUND_START', 'ROUND_END', 'BOMB_PLANT', 'SITE_EXECUTE', 'BOMB_DEFUSE'"
        )
        parts.append(MACRO_SQL.replace("IN :mids", _any(mids)))
    if t & (_WINDOW_TYPES | {"MATCH_START"}):
        mids = _RAW_MIDS.format(types="'ROUND_START', 'ROUND_END', 'MATCH_START'")
        parts.append(ROUND_MAP_SQL.replace("IN :mids", _any(mids)))
    if raw_stages and not micro_stages and t & (_WINDOW_TYPES | {"MATCH_START"}):
        parts.append(_lock("pg_advisory_xact_lock", RESOLUTION_LOCK, ["_ef_raw"]))
    if "MATCH_START" in t:
        parts.append(
            RESOLVE_TEAM_SQL.replace("IN :mids", _any(_RAW_MIDS.format(types="'MATCH_START'")))
        )
    if t & _WINDOW_TYPES:
        mids = _RAW_MIDS.format(types="'ROUND_START', 'ROUND_END'")
        parts.append(RESOLVE_ROUND_SQL.replace("IN :mids", _any(mids)))
    # a separate, last statement: its snapshot sees rows that a concurrent transaction committed
    # while our INSERT waited on the same id
    checks = []
    if rows.raw or rows.raw_dups:
        checks.append(
            "SELECT 'raw', d.seq, to_jsonb(r) FROM _ef_rawdup d JOIN raw_events r ON r.event_id = d.event_id "
            f"WHERE {_RAW_DIFFERS}"
        )
    if rows.micro or rows.micro_dups:
        checks.append(
            "SELECT 'micro', d.seq, to_jsonb(m) FROM _ef_microdup d JOIN micro_actions m ON m.signal_id = d.signal_id "
            f"WHERE {_MICRO_DIFFERS}"
        )
    if checks:
        parts.append(" UNION ALL ".join(checks))
    return ";\n".join(parts)
