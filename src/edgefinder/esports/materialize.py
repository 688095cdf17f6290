"""What each event becomes in the database: per-batch row building and the materializing SQL.

:class:`BatchRows` turns validated events into rows (player ids pseudonymized, the last event of a
key in a batch wins). The SQLite path writes every table's rows with executemany; the Postgres
path stages canonical events and signals with COPY and runs :func:`pg_script`, which derives
the same tables in SQL. The post-batch statements (outcomes of both teams of every finished round,
resolution of signals waiting for a round window or a roster) are shared by both back ends.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgefinder.esports.events import SITE_TYPES, CanonicalEvent, MotionSignal
from edgefinder.esports.pseudonym import Pseudonymizer

# Post-batch SQL, shared by both back ends (``:mids`` = the matches the batch touched; SQLite
# binds a list, the Postgres script substitutes a sub-select of the staged events).

#: macro_outcomes of BOTH teams of every finished round: round_win; econ_delta = bank at
#: ROUND_END - bank at ROUND_START (dollars); site_executed = the team planted or executed.
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


_OUTCOME_TYPES = frozenset({"ROUND_START", "ROUND_END", "BOMB_PLANT", "SITE_EXECUTE", "BOMB_DEFUSE"})
_WINDOW_TYPES = frozenset({"ROUND_START", "ROUND_END"})

#: payload keys whose string values (or lists of strings) are player ids, in any event type
PLAYER_KEYS = frozenset(
    {"player", "player_id", "players", "killer", "victim", "actor", "assister", "attacker",
     "planter", "defuser", "flasher", "steamid", "steam_id"}
)


def scrub(value: Any, pseudo: Pseudonymizer) -> Any:
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


#: micro_actions columns in the order of the row tuples built by BatchRows.add
MICRO_COLS = (
    "signal_id", "match_id", "round_no", "team", "player_hash", "ts", "intent", "confidence",
    "speed", "approach_velocity", "dist_to_objective", "features", "artifact_url", "model_version",
)
_STANDARD_FEATURES = frozenset({"speed", "approach_velocity", "dist_to_objective"})


def _num(v: Any) -> float | None:
    """A finite number from a features dict, else None (bools and strings are not numbers)."""
    if v.__class__ is float:
        return v if math.isfinite(v) else None
    if v.__class__ is int:
        return float(v)
    return None


class BatchRows:
    """Row dicts per table for one batch, keyed by primary key (last event wins in a batch)."""

    def __init__(self, pseudo: Pseudonymizer, *, full: bool = True) -> None:
        # full: build every table's rows (SQLite); otherwise only the staging rows (Postgres
        # materializes the other tables in SQL from the staged canonical events)
        self.full = full
        self.pseudo = pseudo
        self.types: set[str] = set()
        self.raw: dict[Any, dict[str, Any]] = {}
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
        self.match_ids: set[str] = set()
        self.micro_events = 0  # valid signals in the batch (duplicates included)
        self._seq = 0
        self.outcome_matches: set[str] = set()  # matches whose round outcomes may have changed
        self.structure_matches: set[str] = set()  # matches with new rounds/roster
        self.roster_matches: set[str] = set()  # MATCH_START in this batch
        self.window_matches: set[str] = set()  # a round window closed (ROUND_END/ROUND_START)
        self.teamless_matches: set[str] = set()  # signals without team in this batch
        self.roundless_matches: set[str] = set()  # signals without round_no in this batch

    @property
    def signals_only(self) -> bool:
        return not self.raw

    def add(self, ev: CanonicalEvent | MotionSignal) -> None:
        mid = ev.match_id
        self.match_ids.add(mid)
        if isinstance(ev, MotionSignal):
            self.micro_events += 1
            f = ev.features
            if ev.round_no is None:
                self.roundless_matches.add(mid)
            if ev.team is None:
                self.teamless_matches.add(mid)
            # a tuple in MICRO_COLS order (the hot path: most traffic is signals); the three
            # standard features get their own columns, `features` keeps the dict only when it
            # carries anything else (no need to store and index the same numbers twice)
            self.micro[ev.signal_id] = (
                ev.signal_id,
                mid,
                ev.round_no,
                ev.team,
                self.pseudo(ev.player_id),
                ev.ts,
                ev.intent,
                ev.confidence,
                _num(f.get("speed")),
                _num(f.get("approach_velocity")),
                _num(f.get("dist_to_objective")),
                f if f and not _STANDARD_FEATURES.issuperset(f) else None,
                ev.artifact_url,
                ev.model_version,
            )
            return
        p = ev.payload
        t = ev.event_type
        self.types.add(t)
        # the stored payload carries pseudonyms too: raw player ids are never written
        stored = scrub(p if isinstance(p, dict) else p.model_dump(mode="json"), self.pseudo)
        if t in _OUTCOME_TYPES:
            self.outcome_matches.add(mid)
        if t in _WINDOW_TYPES:
            self.window_matches.add(mid)
            self.structure_matches.add(mid)
        if t == "MATCH_START":
            self.roster_matches.add(mid)
            self.structure_matches.add(mid)
        if not self.full:
            self._seq += 1  # position in the batch: the last duplicate of a key wins, as in SQLite
            self.raw.pop(ev.event_id, None)
            self.raw[ev.event_id] = (
                self._seq,
                ev.event_id, mid, t, ev.ts, ev.timestamp, json.dumps(stored, separators=(",", ":")),
            )
            return
        self.raw[ev.event_id] = {
            "event_id": ev.event_id,
            "match_id": mid,
            "event_type": t,
            "ts": ev.ts,
            "payload": stored,
        }
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
                    self.players[(mid, h)] = {"match_id": mid, "player_hash": h, "team_id": team.team_id}
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


_RAW_MIDS = "SELECT match_id FROM _ef_raw WHERE event_type IN ({types})"


def pg_script(rows: BatchRows) -> str:
    """The SQL that materializes one staged batch on Postgres (no parameters: one round trip).

    Every upsert keeps, per key, the batch's last event (``DISTINCT ON … ORDER BY seq DESC``),
    exactly like the row dicts of the SQLite path.
    """
    t = rows.types
    parts: list[str] = []
    rn = "(payload->>'round_no')::integer"
    rrn = "(r.payload->>'round_no')::integer"
    if rows.raw:
        parts.append(
            "INSERT INTO raw_events (event_id, match_id, event_type, ts, payload) "
            "SELECT DISTINCT ON (event_id) event_id, match_id, event_type, ts, payload FROM _ef_raw "
            "ORDER BY event_id, seq DESC ON CONFLICT (event_id) DO NOTHING"
        )
    if "MATCH_START" in t:
        parts.append(
            "INSERT INTO matches (match_id, map, team_a, team_b, started_at) "
            "SELECT DISTINCT ON (match_id) match_id, payload->>'map', payload->'teams'->0->>'team_id', "
            "payload->'teams'->1->>'team_id', wall FROM _ef_raw WHERE event_type = 'MATCH_START' "
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
            f"victim_team, weapon, headshot) SELECT DISTINCT ON (event_id) event_id, match_id, {rn}, ts, "
            "payload->>'killer', payload->>'victim', payload->>'killer_team', payload->>'victim_team', "
            "payload->>'weapon', (payload->>'headshot')::boolean FROM _ef_raw WHERE event_type = 'KILL' "
            "ORDER BY event_id, seq DESC ON CONFLICT (event_id) DO NOTHING"
        )
    if t & SITE_TYPES:
        parts.append(
            "INSERT INTO site_events (event_id, match_id, round_no, ts, kind, team, site) "
            f"SELECT DISTINCT ON (event_id) event_id, match_id, {rn}, ts, event_type, payload->>'team', "
            "payload->>'site' FROM _ef_raw WHERE event_type IN ('BOMB_PLANT', 'SITE_EXECUTE', 'BOMB_DEFUSE') "
            "ORDER BY event_id, seq DESC ON CONFLICT (event_id) DO NOTHING"
        )
    if "MATCH_END" in t:
        parts.append(
            "INSERT INTO matches (match_id, winner, score, ended_at) SELECT DISTINCT ON (match_id) "
            "match_id, payload->>'winner', payload->'score', wall FROM _ef_raw WHERE event_type = 'MATCH_END' "
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
            f"INSERT INTO micro_actions ({', '.join(MICRO_COLS)}) SELECT {select} FROM _ef_micro s "
            "ON CONFLICT (signal_id) DO NOTHING"
        )
    if t & _OUTCOME_TYPES:
        mids = _RAW_MIDS.format(types="'ROUND_START', 'ROUND_END', 'BOMB_PLANT', 'SITE_EXECUTE', 'BOMB_DEFUSE'")
        parts.append(MACRO_SQL.replace(":mids", f"({mids})"))
    if t & (_WINDOW_TYPES | {"MATCH_START"}):
        mids = _RAW_MIDS.format(types="'ROUND_START', 'ROUND_END', 'MATCH_START'")
        parts.append(ROUND_MAP_SQL.replace(":mids", f"({mids})"))
    if "MATCH_START" in t:
        parts.append(RESOLVE_TEAM_SQL.replace(":mids", f"({_RAW_MIDS.format(types=repr('MATCH_START'))})"))
    if t & _WINDOW_TYPES:
        mids = _RAW_MIDS.format(types="'ROUND_START', 'ROUND_END'")
        parts.append(RESOLVE_ROUND_SQL.replace(":mids", f"({mids})"))
    return ";\n".join(parts)
