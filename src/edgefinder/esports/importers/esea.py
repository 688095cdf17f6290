"""ESEA / Kaggle "CS:GO Competitive Matchmaking Data" CSVs -> canonical events.

Files are recognized by name: ``*meta*`` (one row per round: ``file, map, round, start_seconds,
end_seconds, winner_team, winner_side, round_type, ct_eq_val, t_eq_val``), ``*kills*``,
``*dmg*`` and ``*grenades*`` (``.csv`` or ``.csv.gz``); pass the files or their directory. The
meta table is required; every other table is optional.

What becomes what (one map = one ``file`` value, match id ``esea-{file without .dem}``):

* game time = the demo clock (``meta.start_seconds``/``end_seconds``, ``dmg.seconds``,
  ``grenades.seconds``); ``kills.seconds`` counts from the round's ``start_seconds``, so a kill is
  at ``start_seconds + seconds``.
* ROUND_START: the winner's ``winner_side`` and the other side for the opponent;
  ``loadout_value`` = ``ct_eq_val`` / ``t_eq_val`` (dollars); ``bank`` is not recorded (null).
  ``round_type`` describes the round, not a team, so it is not a ``buy_tier``.
* KILL: teams and weapon only: the published CSVs' player ids are mangled (``7.65612E+16``), so
  ``killer``/``victim`` are null and rosters are empty; no motion signals are derived.
* BOMB_PLANT is not a row here: it is inferred per round at the first kill or damage row with
  ``is_bomb_planted`` true (an upper bound of the plant time), site from ``bomb_site`` on the
  damage/grenade rows after it, team = the terrorists.
* ROUND_END at ``end_seconds``; the reason is inferred (there is no column): a CT win after a
  plant is ``defuse``; a side whose opponents were all dead after the last kill won by
  ``elimination``; a T win after a plant otherwise ``bomb``; a CT win otherwise ``time``.
* Rows of a round missing from the meta table are reported and skipped.
"""

from __future__ import annotations

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

SUFFIXES = (".csv", ".csv.gz")
_KINDS = ("meta", "kills", "dmg", "grenades")
_REQUIRED = {
    "meta": ("file", "map", "round", "start_seconds", "end_seconds", "winner_team", "winner_side"),
    "kills": ("file", "round", "seconds", "att_team", "vic_team", "att_side"),
    "dmg": ("file", "round", "seconds", "is_bomb_planted"),
    "grenades": ("file", "round", "seconds", "is_bomb_planted"),
}
_SIDE = {"terrorist": "attack", "counterterrorist": "defense"}


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((k for k in _KINDS if k in name), None)


def _read(path: Path, kind: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, low_memory=False)
    except Exception as exc:
        raise MalformedSource(
            f"{path}: malformed CSV ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None
    missing = [c for c in _REQUIRED[kind] if c not in df.columns]
    if missing:
        raise MalformedSource(f"{path}: missing column(s) {', '.join(missing)} (ESEA {kind} table)")
    df["_src"] = path.name
    df["_row"] = range(len(df))
    return df


def _true(v: Any) -> bool:
    return str(v).strip().upper() == "TRUE"


def import_esea(
    paths: list[str | Path], report: ImportReport | None = None
) -> tuple[list[MatchBuilder], ImportReport]:
    """Read ESEA CSVs (files or directories) into one builder per demo file."""
    report = report or ImportReport("esea")
    frames: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for p in expand_paths(paths, SUFFIXES):
        kind = _kind(p)
        if kind is None:
            report.notes.append(f"{p.name}: not an ESEA table this importer reads (ignored)")
            continue
        frames[kind].append(_read(p, kind))
        report.files.append(str(p))
    if "meta" not in frames:
        raise MalformedSource(
            f"{', '.join(str(p) for p in paths)}: no ESEA meta table (*meta*.csv) among the files"
        )
    tables = {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}
    builders = []
    for demo, meta in tables["meta"].groupby("file", sort=True):
        sub = {k: v[v["file"] == demo] for k, v in tables.items() if k != "meta"}
        builders.append(_build(str(demo), meta, sub, report))
    known = set(tables["meta"]["file"])
    for kind, df in tables.items():
        for r in df[~df["file"].isin(known)].itertuples():
            report.skip(
                str(r._src), r._row, f"{kind} row of demo {r.file!r}, which has no meta rows"
            )
    return builders, report


def _build(
    demo: str, meta: pd.DataFrame, tables: dict[str, pd.DataFrame], report: ImportReport
) -> MatchBuilder:
    src = str(meta["_src"].iloc[0])
    mid = f"esea-{demo.removesuffix('.dem')}"
    b = MatchBuilder(mid, report, src)
    kills = tables.get("kills", pd.DataFrame(columns=list(_REQUIRED["kills"]) + ["_src", "_row"]))
    teams = sorted(
        {t for t in meta["winner_team"].map(_s) if t}
        | {t for col in ("att_team", "vic_team") for t in kills[col].map(_s) if t and t != "World"}
    )
    if len(teams) != 2:
        raise MalformedSource(
            f"{src}: demo {demo!r} has {len(teams)} teams ({', '.join(teams)}), expected 2"
        )
    b.match_start(_s(meta["map"].iloc[0]), {t: [] for t in teams})
    rounds: dict[int, dict[str, Any]] = {}
    score: dict[str, int] = defaultdict(int)
    for r in meta.sort_values("round", kind="stable").to_dict(orient="records"):
        n, t0, t1 = _num(r["round"]), _num(r["start_seconds"]), _num(r["end_seconds"])
        winner, wside = _s(r["winner_team"]), _SIDE.get(str(_s(r["winner_side"]) or "").lower())
        if n is None or t0 is None or t1 is None or t1 < t0 or winner not in teams or wside is None:
            report.skip(
                r["_src"],
                r["_row"],
                "round without number, start/end seconds, a known winner or side",
            )
            continue
        n = int(n)
        loser = teams[1] if winner == teams[0] else teams[0]
        side = {winner: wside, loser: "defense" if wside == "attack" else "attack"}
        eq = {"attack": _num(r.get("t_eq_val")), "defense": _num(r.get("ct_eq_val"))}
        payload: dict[str, Any] = {
            "round_no": n,
            "teams": [
                {"team_id": t, "side": side[t], "bank": None, "loadout_value": eq[side[t]]}
                for t in teams
            ],
        }
        if b.event("ROUND_START", n, t0, payload, row=f"{r['_src']}[{r['_row']}]"):
            rounds[n] = {
                "t0": t0,
                "t1": t1,
                "winner": winner,
                "side": side,
                "last": None,
                "plant": None,
                "site": None,
            }
            report.rounds += 1

    def in_rounds(r: dict[Hashable, Any], what: str) -> dict[str, Any] | None:
        n = _num(r.get("round"))
        if n is None or int(n) not in rounds or _num(r.get("seconds")) is None:
            report.skip(
                r["_src"],
                r["_row"],
                f"{what} row of round {r.get('round')!r}, which is not in the meta table",
            )
            return None
        return rounds[int(n)]

    for r in kills.sort_values(["round", "seconds"], kind="stable").to_dict(orient="records"):
        rd = in_rounds(r, "kill")
        if rd is None:
            continue
        n = int(r["round"])
        t = rd["t0"] + float(r["seconds"])
        kteam, vteam = _s(r["att_team"]), _s(r["vic_team"])
        payload = {
            "round_no": n,
            "killer": None,
            "victim": None,
            "killer_team": kteam if kteam in teams else None,
            "victim_team": vteam if vteam in teams else None,
            "weapon": _s(r.get("wp")),
        }
        if b.event(
            "KILL",
            f"{r['_src']}:{r['_row']}",
            t,
            payload,
            row=r["_row"],
            team=payload["killer_team"],
        ):
            rd["last"] = (t, _num(r.get("ct_alive")), _num(r.get("t_alive")))
            if _true(r.get("is_bomb_planted")) and (rd["plant"] is None or t < rd["plant"]):
                rd["plant"] = t
    for kind in ("dmg", "grenades"):
        df = tables.get(kind)
        if df is None:
            continue
        for r in df.to_dict(orient="records"):
            rd = in_rounds(r, "damage" if kind == "dmg" else "grenade")
            if rd is None or not _true(r.get("is_bomb_planted")):
                continue
            t = float(r["seconds"])
            if kind == "dmg" and (rd["plant"] is None or t < rd["plant"]):
                rd["plant"] = t
            if rd["site"] is None and _s(r.get("bomb_site")):
                rd["site"] = _s(r.get("bomb_site"))
    for n, rd in sorted(rounds.items()):
        attackers = next(t for t, s in rd["side"].items() if s == "attack")
        if rd["plant"] is not None:
            b.event(
                "BOMB_PLANT",
                f"r{n}",
                rd["plant"],
                {"round_no": n, "team": attackers, "site": rd["site"]},
                team=attackers,
            )
        wside = rd["side"][rd["winner"]]
        ct_alive, t_alive = (rd["last"][1], rd["last"][2]) if rd["last"] else (None, None)
        reason: str | None
        if wside == "defense":
            reason = (
                "defuse" if rd["plant"] is not None else "elimination" if t_alive == 0 else "time"
            )
        else:
            reason = "elimination" if ct_alive == 0 else "bomb" if rd["plant"] is not None else None
        b.event(
            "ROUND_END", n, rd["t1"], {"round_no": n, "winner": rd["winner"], "win_reason": reason}
        )
        score[rd["winner"]] += 1
    last = max((e.ts for e in b.items), default=0.0)
    b.event("MATCH_END", "0", last, {"winner": match_winner(score), "score": dict(score)})
    report.maps += 1
    return b
