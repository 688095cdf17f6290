"""awpy round/kill/bomb/damage/flash/grenade tables (CSV or Parquet) -> canonical events + signals.

The tables are recognized by file name: ``game_round`` or ``rounds``, ``kills``, ``bomb_events``
or ``bomb``, ``damage`` or ``damages``, ``flash`` or ``flashes``, ``nades`` or ``grenades``
(``.csv``, ``.csv.gz``, ``.parquet``); pass the files or their directory. ``game_round`` (or
``rounds``) and ``kills`` are required. awpy 1.x column names are the reference; awpy 2.x names
are renamed to them (:data:`ALIASES`, e.g. ``attacker_steamid`` -> ``attacker_steam_id``,
``attacker_place`` -> ``attacker_area_name``, ``winner`` -> ``winning_side``); tables without
``match_id``/``series`` are one map named after their directory.

What becomes what (one map = ``(match_id, series)``, match id ``awpy-{match_id}-{series}``):

* game time from **ticks** (``--tick-rate``, default 128): ``ts = (tick - first round's
  start_tick) / tick_rate``. awpy 1.x's ``seconds`` restarts at 0 at the plant, so it is never
  used. Warm-up rounds are left out.
* ROUND_START at ``start_tick`` with both teams' sides (``t_team``/``ct_team``); no money (the
  tables have none): ``bank`` and ``loadout_value`` stay null; ``ct_buy_type``/``t_buy_type`` ->
  ``buy_tier`` (:data:`BUY_TYPES`). ROUND_END at ``end_tick`` with ``winning_team`` and the
  reason (CTWin / TerroristsWin -> elimination, TargetBombed -> bomb, BombDefused -> defuse,
  TargetSaved -> time).
* KILL for every kill row (post-round kills after ``end_tick`` included: they carry their
  round); the victim's team is the attacker's own on a team kill, the other team otherwise.
* ``bomb_events``: ``plant`` -> BOMB_PLANT and ``defuse`` -> BOMB_DEFUSE with ``bomb_site``.
* Roster: every (steam id, team) seen in the tables.
* Motion signals: see :mod:`edgefinder.esports.importers.motion` (engage from kills and damage,
  trade from ``is_trade``, plant/defuse from ``plant_begin``/``defuse_start``, movement from the
  area names of successive sightings of a player in kills, damage, flash and grenade rows).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pandas as pd

from edgefinder.esports.importers.common import (
    ImportReport,
    MalformedSource,
    MatchBuilder,
    expand_paths,
    match_winner,
)
from edgefinder.esports.importers.common import cell_number as _num
from edgefinder.esports.importers.common import cell_text as _s
from edgefinder.esports.importers.motion import area_move

DEFAULT_TICK_RATE = 128.0
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
TABLES = {
    "game_round": "rounds",
    "rounds": "rounds",
    "kills": "kills",
    "bomb_events": "bomb",
    "bomb": "bomb",
    "damage": "damage",
    "damages": "damage",
    "flash": "flash",
    "flashes": "flash",
    "nades": "nades",
    "grenades": "nades",
}
#: awpy 2.x column names -> the awpy 1.x names this importer reads.
ALIASES: dict[str, str] = {
    "attacker_steamid": "attacker_steam_id",
    "victim_steamid": "victim_steam_id",
    "attacker_team_name": "attacker_team",
    "victim_team_name": "victim_team",
    "attacker_X": "attacker_x",
    "attacker_Y": "attacker_y",
    "attacker_Z": "attacker_z",
    "victim_X": "victim_x",
    "victim_Y": "victim_y",
    "victim_Z": "victim_z",
    "attacker_place": "attacker_area_name",
    "victim_place": "victim_area_name",
    "winner": "winning_side",
    "reason": "round_end_reason",
    "start": "start_tick",
    "end": "end_tick",
    "event": "bomb_action",
    "bombsite": "bomb_site",
    "steamid": "player_steam_id",
    "name": "player_name",
    "team_name": "player_team",
    "dmg_health": "hp_damage_taken",
    "thrower_steamid": "thrower_steam_id",
    "thrower_X": "thrower_x",
    "thrower_Y": "thrower_y",
    "thrower_place": "thrower_area_name",
    "thrower_team_name": "thrower_team",
}
#: awpy buy classes -> ``buy_tier`` (0 full_eco, 1 eco, 2 half_buy, 3 full_buy; see events.BUY_TIERS).
BUY_TYPES: dict[str, int] = {
    "full eco": 0,
    "eco": 1,
    "semi eco": 1,
    "half buy": 2,
    "semi buy": 2,
    "force buy": 2,
    "full buy": 3,
}
REASONS: dict[str, str] = {
    "ctwin": "elimination",
    "terroristswin": "elimination",
    "t_killed": "elimination",
    "ct_killed": "elimination",
    "targetbombed": "bomb",
    "bomb_exploded": "bomb",
    "bombdefused": "defuse",
    "bomb_defused": "defuse",
    "targetsaved": "time",
    "target_saved": "time",
    "time_ran_out": "time",
}
_SIDES = {"t": "T", "terrorist": "T", "ct": "CT", "counterterrorist": "CT"}
_REQUIRED = {
    "rounds": ("round_num", "t_team", "ct_team", "winning_team", "start_tick", "end_tick"),
    "kills": ("round_num", "tick", "attacker_steam_id", "attacker_team", "victim_steam_id"),
    "bomb": ("round_num", "tick", "player_steam_id", "player_team", "bomb_action"),
}


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        else:
            # 17-digit steam ids do not survive float64 (a column with a missing id would be read as
            # float): id columns are read as text
            header = pd.read_csv(path, nrows=0).columns
            ids: dict[Hashable, type[str]] = {c: str for c in header if "steam" in c.lower()}
            df = pd.read_csv(
                path, keep_default_na=True, na_values=["NULL"], low_memory=False, dtype=ids
            )
    except Exception as exc:
        raise MalformedSource(
            f"{path}: malformed table ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None
    return df.rename(
        columns={k: v for k, v in ALIASES.items() if k in df.columns and v not in df.columns}
    )


def _table_name(path: Path) -> str | None:
    stem = path.name.lower()
    for suffix in (".gz", ".csv", ".parquet", ".pq"):
        stem = stem.removesuffix(suffix)
    return TABLES.get(stem)


def _steam(v: Any) -> str | None:
    text = _s(v)
    if text is None:
        return None
    if text.endswith(".0"):
        text = text[:-2]
    return f"steam-{text}"


def _bool(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "t", "yes")


def import_awpy(
    paths: list[str | Path],
    report: ImportReport | None = None,
    *,
    tick_rate: float = DEFAULT_TICK_RATE,
) -> tuple[list[MatchBuilder], ImportReport]:
    """Read awpy tables (files or directories) into one builder per map."""
    report = report or ImportReport("awpy")
    files = expand_paths(paths, SUFFIXES)
    tables: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for p in files:
        name = _table_name(p)
        if name is None:
            report.notes.append(f"{p.name}: not an awpy table this importer reads (ignored)")
            continue
        df = _read(p)
        if "match_id" not in df.columns:
            df["match_id"] = p.parent.name
        if "series" not in df.columns:
            df["series"] = 1
        df["_src"] = p.name
        df["_row"] = range(len(df))
        tables[name].append(df)
        report.files.append(str(p))
    for need in ("rounds", "kills"):
        if need not in tables:
            raise MalformedSource(
                f"{', '.join(str(p) for p in paths)}: no awpy '{need}' table "
                "(game_round/rounds and kills are required)"
            )
    frames = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    for name, cols in _REQUIRED.items():
        if name in frames:
            missing = [c for c in cols if c not in frames[name].columns]
            if missing:
                srcs = ", ".join(sorted(set(frames[name]["_src"])))
                raise MalformedSource(
                    f"{srcs}: missing column(s) {', '.join(missing)} (awpy {name} table)"
                )
    rounds = frames["rounds"]
    if "is_warmup" in rounds.columns:
        rounds = rounds[~rounds["is_warmup"].map(_bool)]
    builders = []
    for (match, series), rgrp in rounds.groupby(["match_id", "series"], sort=True):
        sub = {
            k: v[(v["match_id"] == match) & (v["series"] == series)]
            for k, v in frames.items()
            if k != "rounds"
        }
        builders.append(_build(str(match), series, rgrp, sub, report, tick_rate))
    return builders, report


def _roster(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """steam id -> team name, by the most frequent pairing over every table."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    pairs = (
        ("kills", "attacker"),
        ("bomb", "player"),
        ("damage", "attacker"),
        ("flash", "attacker"),
        ("flash", "player"),
        ("nades", "thrower"),
    )
    for name, who in pairs:
        df = tables.get(name)
        pid_col, team_col = f"{who}_steam_id", f"{who}_team"
        if df is None or pid_col not in df.columns or team_col not in df.columns:
            continue
        for pid, team in zip(df[pid_col], df[team_col], strict=True):
            p, t = _steam(pid), _s(team)
            if p and t:
                counts[p][t] += 1
    return {p: max(c.items(), key=lambda kv: (kv[1], kv[0]))[0] for p, c in counts.items()}


def _build(
    match: str,
    series: Any,
    rounds: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    report: ImportReport,
    tick_rate: float,
) -> MatchBuilder:
    src = str(rounds["_src"].iloc[0])
    mid = f"awpy-{match}-{series}"
    b = MatchBuilder(mid, report, src)
    roster = _roster(tables)
    teams = sorted({t for col in ("t_team", "ct_team") for t in rounds[col].map(_s) if t})
    mapname = _s(rounds["map_name"].iloc[0]) if "map_name" in rounds.columns else None
    b.match_start(mapname, {t: sorted(p for p, pt in roster.items() if pt == t) for t in teams})
    rounds = rounds.sort_values("round_num", kind="stable")
    origin = float(pd.to_numeric(rounds["start_tick"], errors="coerce").min())

    def ts(tick: Any) -> float | None:
        t = _num(tick)
        return None if t is None or t < origin else (t - origin) / tick_rate

    info: dict[int, dict[str, Any]] = {}
    score: dict[str, int] = defaultdict(int)
    for r in rounds.to_dict(orient="records"):
        row = f"{r['_src']}[{r['_row']}]"
        rn, winner = _num(r.get("round_num")), _s(r.get("winning_team"))
        t_team, ct_team = _s(r.get("t_team")), _s(r.get("ct_team"))
        t0, t1 = ts(r.get("start_tick")), ts(r.get("end_tick"))
        if (
            rn is None
            or not t_team
            or not ct_team
            or winner not in (t_team, ct_team)
            or t0 is None
            or t1 is None
        ):
            report.skip(
                src,
                r["_row"],
                "round without number, both teams, a winner of them, or start/end ticks",
            )
            continue
        n = int(rn)
        tiers = {
            side: BUY_TYPES.get(str(_s(r.get(f"{side}_buy_type")) or "").lower())
            for side in ("t", "ct")
        }
        # the tables hold no money: bank and loadout_value stay null
        sides = [
            {"team_id": t_team, "side": "attack", "buy_tier": tiers["t"]},
            {"team_id": ct_team, "side": "defense", "buy_tier": tiers["ct"]},
        ]
        payload = {"round_no": n, "teams": sides}
        if not b.event("ROUND_START", n, t0, payload, row=row):
            continue
        reason = REASONS.get(str(_s(r.get("round_end_reason")) or "").lower().replace(" ", ""))
        b.event(
            "ROUND_END", n, t1, {"round_no": n, "winner": winner, "win_reason": reason}, row=row
        )
        score[winner] += 1
        info[n] = {"t": t_team, "ct": ct_team}
        report.rounds += 1
    Sighting = tuple[
        float, str, str | None, float | None, float | None
    ]  # time, artifact, area, x, y
    sightings: dict[tuple[int, str], list[Sighting]] = defaultdict(list)

    def seen(n: int, t: float, art: str, r: dict[Hashable, Any], who: str) -> None:
        pid = _steam(r.get(f"{who}_steam_id"))
        if pid:
            sightings[(n, pid)].append(
                (
                    t,
                    art,
                    _s(r.get(f"{who}_area_name")),
                    _num(r.get(f"{who}_x")),
                    _num(r.get(f"{who}_y")),
                )
            )

    def round_of(r: dict[Hashable, Any], what: str) -> tuple[int, float, str] | None:
        n = _num(r.get("round_num"))
        t = ts(r.get("tick") if "tick" in r else r.get("throw_tick"))
        if n is None or int(n) not in info or t is None:
            report.skip(
                r["_src"], r["_row"], f"{what} row outside the imported rounds or without a tick"
            )
            return None
        return int(n), t, f"{r['_src']}#{r['_row']}"

    for r in tables["kills"].to_dict(orient="records"):
        got = round_of(r, "kill")
        if got is None:
            continue
        n, t, art = got
        killer, victim = _steam(r.get("attacker_steam_id")), _steam(r.get("victim_steam_id"))
        kteam = _s(r.get("attacker_team"))
        if victim is None:
            report.skip(r["_src"], r["_row"], "kill without a victim")
            continue
        side = _SIDES.get(str(_s(r.get("attacker_side")) or "").lower())
        vside = _SIDES.get(str(_s(r.get("victim_side")) or "").lower())
        teamkill = _bool(r.get("is_teamkill")) or (side is not None and vside == side)
        if kteam is None or killer is None:
            vteam = roster.get(victim)
            killer = kteam = None
        else:
            other = info[n]["ct"] if kteam == info[n]["t"] else info[n]["t"]
            vteam = kteam if teamkill else other
        payload = {
            "round_no": n,
            "killer": killer,
            "victim": victim,
            "killer_team": kteam,
            "victim_team": vteam,
            "weapon": _s(r.get("weapon")),
            "headshot": _bool(r.get("headshot", False)),
        }
        if not b.event(
            "KILL", f"{r['_src']}:{r['_row']}", t, payload, row=r["_row"], team=kteam, actor=killer
        ):
            continue
        seen(n, t, art, r, "victim")
        if killer is None or teamkill:
            continue
        seen(n, t, art, r, "attacker")
        b.signal(
            "engage",
            f"kill{r['_row']}",
            t,
            player=killer,
            round_no=n,
            team=kteam,
            confidence=1.0,
            artifact=art,
            features={"source": "kill", "weapon": str(_s(r.get("weapon")))},
        )
        if _bool(r.get("is_trade")):
            b.signal(
                "trade",
                f"kill{r['_row']}",
                t,
                player=killer,
                round_no=n,
                team=kteam,
                confidence=1.0,
                artifact=art,
                features={"source": "kill is_trade"},
            )
    for r in tables.get("bomb", pd.DataFrame()).to_dict(orient="records"):
        got = round_of(r, "bomb")
        if got is None:
            continue
        n, t, art = got
        action = str(_s(r.get("bomb_action")) or "").lower()
        pid, team = _steam(r.get("player_steam_id")), _s(r.get("player_team"))
        site = _s(r.get("bomb_site"))
        site = site.upper().removeprefix("BOMBSITE_").removeprefix("BOMBSITE") if site else None
        if team is None:
            report.skip(r["_src"], r["_row"], f"bomb {action} without the player's team")
            continue
        if action in ("plant", "defuse"):
            etype = "BOMB_PLANT" if action == "plant" else "BOMB_DEFUSE"
            b.event(
                etype,
                f"{r['_src']}:{r['_row']}",
                t,
                {"round_no": n, "team": team, "site": site},
                row=r["_row"],
                team=team,
                actor=pid,
            )
        elif action in ("plant_begin", "defuse_start") and pid:
            intent = "plant" if action == "plant_begin" else "defuse"
            b.signal(
                intent,
                f"bomb{r['_row']}",
                t,
                player=pid,
                round_no=n,
                team=team,
                confidence=1.0,
                artifact=art,
                features={"source": action, "site": str(site)},
            )
    for r in tables.get("damage", pd.DataFrame()).to_dict(orient="records"):
        got = round_of(r, "damage")
        if got is None:
            continue
        n, t, art = got
        att, vic = _steam(r.get("attacker_steam_id")), _steam(r.get("victim_steam_id"))
        ateam = _s(r.get("attacker_team"))
        seen(n, t, art, r, "victim")
        if att is None or ateam is None:
            continue  # world damage (fall, bomb): nobody engaged
        seen(n, t, art, r, "attacker")
        if vic is not None and roster.get(vic) != ateam:
            b.signal(
                "engage",
                f"dmg{r['_row']}",
                t,
                player=att,
                round_no=n,
                team=ateam,
                confidence=0.9,
                artifact=art,
                features={"source": "damage", "hp_damage": _num(r.get("hp_damage_taken")) or 0.0},
            )
    for r in tables.get("flash", pd.DataFrame()).to_dict(orient="records"):
        got = round_of(r, "flash")
        if got is not None:
            n, t, art = got
            seen(n, t, art, r, "attacker")
            seen(n, t, art, r, "player")
    for r in tables.get("nades", pd.DataFrame()).to_dict(orient="records"):
        got = round_of(r, "grenade")
        if got is not None:
            n, t, art = got
            seen(n, t, art, r, "thrower")
    for (n, pid), seq in sightings.items():
        seq.sort(key=lambda s: (s[0], s[1]))
        for a, c in zip(seq, seq[1:]):
            if None in (a[3], a[4], c[3], c[4]):
                continue
            mv = area_move(c[0] - a[0], math.dist((a[3], a[4]), (c[3], c[4])), a[2], c[2])  # type: ignore[arg-type]
            if mv is not None:
                b.signal(
                    mv.intent,
                    f"{n}:{pid}:{c[1]}",
                    c[0],
                    player=pid,
                    round_no=n,
                    team=roster.get(pid),
                    confidence=mv.confidence,
                    artifact=f"{a[1]},{c[1]}",
                    features={"source": "sightings", **mv.features},
                )
    last = max((e.ts for e in b.items), default=0.0)
    b.event("MATCH_END", "0", last, {"winner": match_winner(score), "score": dict(score)})
    report.maps += 1
    return b
