"""rib.gg Valorant match dumps (JSON or JSON.gz page-state files) -> canonical events + signals.

One file is the page state of one map of a series: ``series.seriesById`` lists **every** map of
the series, ``matches.matchDetails`` holds the events of one of them, so the map is the entry of
``seriesById.matches`` whose ``id`` equals ``matchDetails.id`` (``playerStats`` is filtered the
same way). What becomes what:

* match id ``ribgg-{matchDetails.id}``; teams by name (``team1``/``team2``); players
  ``ribgg-{playerId}`` with ``players[].teamNumber``.
* game time: the dump has no clock between rounds, so round ``n`` starts at
  ``(n - 1) * ROUND_SLOT_S`` seconds and an event is at that plus ``roundTimeMillis / 1000``.
  ROUND_END (not timestamped by rib.gg) is at the round's last event or position sample, a
  lower bound.
* ROUND_START: the attacking team from the events' ``attackingTeamNumber`` (else the players'
  ``playerStats`` side); ``bank`` = the team's summed ``remainingCreds + spentCreds`` (money
  before buying), ``loadout_value`` = summed ``loadoutValue`` (credits); null when a player's
  economy row is missing. ``buy_tier`` = rib.gg's ``team{n}LoadoutTier`` 1..4 minus one
  (1 = team loadout under 5,000 credits -> full_eco ... 4 = 20,000 and more -> full_buy).
* KILL (killer ``playerId``, victim ``referencePlayerId``; a player killed by their own damage,
  e.g. the spike, has no killer), BOMB_PLANT (no site: rib.gg has none), BOMB_DEFUSE;
  ``revival`` events are kept as raw ``REVIVAL`` events. ROUND_END reason: kills -> elimination,
  bomb, defuse, time. MATCH_END with the score.
* Motion signals: see :mod:`edgefinder.esports.importers.motion`. Site centres for the movement
  rules are the k-means centres of the planters' positions per map over all files of the import
  (k from :data:`SITES_PER_MAP`); a map with fewer plants than sites gets no movement signals.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgefinder.esports.importers.common import (
    UNKNOWN_WALL_CLOCK,
    ImportReport,
    MalformedSource,
    MatchBuilder,
    expand_paths,
)
from edgefinder.esports.importers.motion import TRADE_WINDOW_S, position_move

#: Seconds of game time reserved per round (longer than any Valorant round with buy phase).
ROUND_SLOT_S = 300.0
#: Bombsites per map (Valorant 2021 map pool); any other map is taken to have two.
SITES_PER_MAP: dict[str, int] = {"haven": 3}
_REASONS = {"kills": "elimination", "bomb": "bomb", "defuse": "defuse", "time": "time"}
SUFFIXES = (".json", ".json.gz")


@dataclass
class _Map:
    path: Path
    series: dict[str, Any]
    match: dict[str, Any]
    details: dict[str, Any]
    content: dict[str, Any]


def _load(path: Path) -> _Map:
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, EOFError) as exc:
        raise MalformedSource(
            f"{path}: not a readable rib.gg JSON dump ({type(exc).__name__}: {exc})"
        ) from None
    try:
        series = doc["series"]["seriesById"]
        details = doc["matches"]["matchDetails"]
        mid = details["id"]
        match = next(m for m in series["matches"] if m.get("id") == mid)
    except (KeyError, TypeError, StopIteration):
        raise MalformedSource(
            f"{path}: not a rib.gg match dump (needs series.seriesById.matches[] and matches.matchDetails "
            "with the id of one of those maps)"
        ) from None
    content = (doc.get("gameContent") or {}).get("content") or {}
    return _Map(path, series, match, details, content)


def _sites(maps: list[_Map], report: ImportReport) -> dict[str, list[tuple[float, float]]]:
    """Site centres per map name: k-means (seeded) of the planters' positions at their plants."""
    from sklearn.cluster import KMeans

    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for m in maps:
        name = ((m.match.get("map") or {}).get("name") or "").lower()
        at = {
            (loc["roundNumber"], loc["playerId"], loc["roundTimeMillis"]): (
                loc["locationX"],
                loc["locationY"],
            )
            for loc in m.details.get("locations") or []
        }
        for e in m.details.get("events") or []:
            if e.get("eventType") == "plant":
                xy = at.get((e.get("roundNumber"), e.get("playerId"), e.get("roundTimeMillis")))
                if xy is not None:
                    points[name].append((float(xy[0]), float(xy[1])))
    out: dict[str, list[tuple[float, float]]] = {}
    for name, pts in sorted(points.items()):
        k = SITES_PER_MAP.get(name, 2)
        if len(pts) < k:
            report.notes.append(
                f"{name}: {len(pts)} located plants for {k} sites: no movement signals"
            )
            continue
        km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(np.asarray(pts))
        centres = sorted((float(x), float(y)) for x, y in km.cluster_centers_)
        out[name] = centres
    return out


def _name(table: list[dict[str, Any]], key: Any) -> str | None:
    for row in table:
        if row.get("id") == key:
            return str(row.get("name"))[:64] if row.get("name") is not None else None
    return None


def import_ribgg(
    paths: list[str | Path], report: ImportReport | None = None
) -> tuple[list[MatchBuilder], ImportReport]:
    """Read rib.gg dumps (files or directories of ``*.json[.gz]``) into one builder per map."""
    report = report or ImportReport("ribgg")
    files = expand_paths(paths, SUFFIXES)
    maps = [_load(p) for p in files]
    report.files.extend(str(p) for p in files)
    sites = _sites(maps, report)
    builders = [_build(m, sites, report) for m in maps]
    return builders, report


def _build(
    m: _Map, sites: dict[str, list[tuple[float, float]]], report: ImportReport
) -> MatchBuilder:
    src = m.path.name
    mid = f"ribgg-{m.details['id']}"
    start = m.match.get("startDate") or m.series.get("startDate")
    try:
        wall = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        wall = UNKNOWN_WALL_CLOCK
    b = MatchBuilder(mid, report, m.path, wall)
    names = {
        n: str((m.series.get(f"team{n}") or {}).get("name") or f"team{n}")[:128] for n in (1, 2)
    }
    if names[1] == names[2]:
        names = {n: f"{names[n]} ({n})" for n in (1, 2)}
    team_of: dict[int, int] = {}
    for p in m.match.get("players") or []:
        if p.get("teamNumber") in (1, 2) and p.get("playerId") is not None:
            team_of[int(p["playerId"])] = int(p["teamNumber"])
    pid = {p: f"ribgg-{p}" for p in team_of}
    mapname = (m.match.get("map") or {}).get("name") or None
    b.match_start(
        mapname, {names[n]: [pid[p] for p, t in team_of.items() if t == n] for n in (1, 2)}
    )
    events = m.details.get("events") or []
    econ = m.details.get("economies") or []
    locs = m.details.get("locations") or []
    by_round: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, e in enumerate(events):
        by_round[e.get("roundNumber")].append((i, e))
    econ_by: dict[tuple[int, int], dict[str, Any]] = {
        (e["roundNumber"], e["playerId"]): e for e in econ if "roundNumber" in e and "playerId" in e
    }
    locs_by: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, loc in enumerate(locs):
        locs_by[loc.get("roundNumber")].append((i, loc))
    stats_side: dict[tuple[int, int], str] = {}
    for s in m.series.get("playerStats") or []:
        if s.get("matchId") == m.details["id"] and s.get("playerId") in team_of:
            stats_side[(s["roundNumber"], team_of[s["playerId"]])] = s.get("side")
    map_sites = sites.get((mapname or "").lower(), [])
    weapons = m.content.get("weapons") or []
    for rnd in sorted(m.match.get("rounds") or [], key=lambda r: r.get("number", 0)):
        rn = rnd.get("number")
        if not isinstance(rn, int) or rn < 1:
            report.skip(src, f"rounds[id={rnd.get('id')}]", f"round without a valid number: {rn!r}")
            continue
        t0 = (rn - 1) * ROUND_SLOT_S
        revs = by_round.get(rn, [])
        atk = next(
            (
                e.get("attackingTeamNumber")
                for _, e in revs
                if e.get("attackingTeamNumber") in (1, 2)
            ),
            None,
        )
        if atk is None:
            atk = (
                1
                if stats_side.get((rn, 1)) == "atk"
                else 2
                if stats_side.get((rn, 2)) == "atk"
                else None
            )
        if atk is None or rnd.get("winningTeamNumber") not in (1, 2):
            report.skip(src, f"rounds[number={rn}]", "round without attacking side or winner")
            continue
        teams = []
        for n in (1, 2):
            rows = [econ_by.get((rn, p)) for p, t in team_of.items() if t == n]
            full = bool(rows) and all(r is not None for r in rows)
            tier = rnd.get(f"team{n}LoadoutTier")
            teams.append(
                {
                    "team_id": names[n],
                    "side": "attack" if n == atk else "defense",
                    "bank": float(
                        sum(
                            (r.get("remainingCreds") or 0) + (r.get("spentCreds") or 0)
                            for r in rows
                            if r
                        )
                    )
                    if full
                    else None,
                    "loadout_value": float(sum(r.get("loadoutValue") or 0 for r in rows if r))
                    if full
                    else None,
                    "buy_tier": tier - 1 if isinstance(tier, int) and 1 <= tier <= 4 else None,
                }
            )
        if not b.event(
            "ROUND_START", rn, t0, {"round_no": rn, "teams": teams}, row=f"rounds[number={rn}]"
        ):
            continue
        report.rounds += 1
        last = 0.0
        deaths: list[tuple[float, int, int]] = []  # (time, victim, killer) of this round so far
        plant_xy: tuple[float, float] | None = None
        plant_t: float | None = None
        loc_at = {
            (loc["playerId"], loc["roundTimeMillis"]): (loc["locationX"], loc["locationY"])
            for _, loc in locs_by.get(rn, [])
        }
        for i, e in sorted(revs, key=lambda ie: (ie[1].get("roundTimeMillis") or 0, ie[0])):
            row = f"events[{i}]"
            ms = e.get("roundTimeMillis")
            kind = e.get("eventType")
            actor = e.get("playerId")
            if not isinstance(ms, (int, float)) or actor not in team_of:
                report.skip(src, row, f"{kind} event without a time or a known player")
                continue
            t = ms / 1000.0
            ts = t0 + t
            last = max(last, t)
            art = f"{src}#{row}"
            team = names[team_of[actor]]
            if kind == "kill":
                victim = e.get("referencePlayerId")
                if victim not in team_of:
                    report.skip(src, row, f"kill of an unknown player {victim!r}")
                    continue
                own = victim == actor
                weapon = (
                    _name(weapons, e.get("weaponId"))
                    if e.get("weaponId") is not None
                    else e.get("ability")
                )
                payload = {
                    "round_no": rn,
                    "killer": None if own else pid[actor],
                    "victim": pid[victim],
                    "killer_team": None if own else team,
                    "victim_team": names[team_of[victim]],
                    "weapon": (weapon or e.get("damageType") or None),
                }
                if not b.event(
                    "KILL",
                    i,
                    ts,
                    payload,
                    row=row,
                    team=None if own else team,
                    actor=None if own else pid[actor],
                ):
                    continue
                if own:
                    deaths.append((t, victim, -1))
                    continue
                b.signal(
                    "engage",
                    f"{i}:killer",
                    ts,
                    player=pid[actor],
                    round_no=rn,
                    team=team,
                    confidence=1.0,
                    artifact=art,
                    features={"source": "kill", "damage_type": str(e.get("damageType"))},
                )
                for j, a in enumerate(e.get("assists") or []):
                    who = a.get("assistantId")
                    if who in team_of and team_of[who] == team_of[actor]:
                        b.signal(
                            "engage",
                            f"{i}:assist{j}",
                            ts,
                            player=pid[who],
                            round_no=rn,
                            team=team,
                            confidence=0.8,
                            artifact=art,
                            features={
                                "source": "kill assist",
                                "damage": float(a.get("damage") or 0),
                            },
                        )
                # trade: the victim had killed a team-mate of this killer within the window
                traded = [
                    d
                    for d in deaths
                    if d[2] == victim
                    and team_of.get(d[1]) == team_of[actor]
                    and t - d[0] <= TRADE_WINDOW_S
                ]
                if traded:
                    b.signal(
                        "trade",
                        i,
                        ts,
                        player=pid[actor],
                        round_no=rn,
                        team=team,
                        confidence=0.8,
                        artifact=art,
                        features={
                            "source": "kill",
                            "seconds_after_teammate_death": round(t - traded[-1][0], 3),
                        },
                    )
                deaths.append((t, victim, actor))
            elif kind in ("plant", "defuse"):
                etype = "BOMB_PLANT" if kind == "plant" else "BOMB_DEFUSE"
                if b.event(
                    etype,
                    i,
                    ts,
                    {"round_no": rn, "team": team, "site": None},
                    row=row,
                    team=team,
                    actor=pid[actor],
                ):
                    b.signal(
                        kind,
                        i,
                        ts,
                        player=pid[actor],
                        round_no=rn,
                        team=team,
                        confidence=1.0,
                        artifact=art,
                        features={"source": kind},
                    )
                if kind == "plant":
                    plant_t = t
                    xy = loc_at.get((actor, ms))
                    plant_xy = (float(xy[0]), float(xy[1])) if xy is not None else None
            elif kind == "revival":
                ref = e.get("referencePlayerId")
                b.event(
                    "REVIVAL",
                    i,
                    ts,
                    {
                        "round_no": rn,
                        "player": pid[actor],
                        "revived": pid.get(ref) if ref is not None else None,
                    },
                    row=row,
                    team=team,
                )
            else:
                report.skip(src, row, f"unknown event type {kind!r}")
        # movement between consecutive position samples of each player
        samples: dict[int, list[tuple[float, int, float, float]]] = defaultdict(list)
        for i, loc in locs_by.get(rn, []):
            p, ms = loc.get("playerId"), loc.get("roundTimeMillis")
            x, y = loc.get("locationX"), loc.get("locationY")
            if (
                p not in team_of
                or not isinstance(ms, (int, float))
                or not isinstance(x, (int, float))
                or not isinstance(y, (int, float))
            ):
                report.skip(
                    src, f"locations[{i}]", "position sample without player, time or coordinates"
                )
                continue
            samples[p].append((ms / 1000.0, i, float(x), float(y)))
            last = max(last, ms / 1000.0)
        for p, seq in samples.items():
            seq.sort()
            for (ta, ia, xa, ya), (tb, ib, xb, yb) in zip(seq, seq[1:]):
                bomb = plant_xy if plant_t is not None and tb > plant_t else None
                mv = position_move(tb - ta, (xa, ya), (xb, yb), map_sites, bomb)
                if mv is None:
                    continue
                b.signal(
                    mv.intent,
                    f"{rn}:{ib}",
                    t0 + tb,
                    player=pid[p],
                    round_no=rn,
                    team=names[team_of[p]],
                    confidence=mv.confidence,
                    artifact=f"{src}#locations[{ia}],locations[{ib}]",
                    features={"source": "positions", **mv.features},
                )
        winner = names[rnd["winningTeamNumber"]]
        reason = _REASONS.get(str(rnd.get("winCondition")))
        b.event(
            "ROUND_END",
            rn,
            t0 + last,
            {"round_no": rn, "winner": winner, "win_reason": reason},
            row=f"rounds[number={rn}]",
        )
    score = {names[n]: int(m.match.get(f"team{n}Score") or 0) for n in (1, 2)}
    win = m.match.get("winningTeamNumber")
    end_ts = (max((r.get("number") or 0) for r in m.match.get("rounds") or [{}])) * ROUND_SLOT_S
    b.event(
        "MATCH_END",
        "0",
        end_ts,
        {"winner": names.get(win) if win in (1, 2) else None, "score": score},
    )
    report.maps += 1
    return b
