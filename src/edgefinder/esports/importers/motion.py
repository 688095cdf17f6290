"""The rule set that turns recorded behaviour into motion signals (version :data:`RULES_VERSION`).

Real match data has no AI intent model behind it, but it records what players did. These rules
map those records onto the nine intents; ``confidence`` says how directly the source shows the
intent (1.0: the source records exactly this act; lower: inferred from positions sampled
seconds apart). Each signal's ``artifact_url`` points at the source row(s) it came from
(``file#table[row]``) and its ``features`` keep the rule's inputs, so a reader can audit it.

=========  ==============================================================  ==========
intent     rule                                                            confidence
=========  ==============================================================  ==========
engage     the killer of a kill                                            1.0
engage     a damage dealer (awpy damage row) or kill assister (rib.gg)     0.9 / 0.8
trade      a kill the source flags as a trade (awpy ``is_trade``)          1.0
trade      rib.gg: killing, within :data:`TRADE_WINDOW_S`, the player who  0.8
           killed a team-mate
plant      plant start (awpy ``plant_begin``) or plant (rib.gg)            1.0
defuse     defuse start (awpy ``defuse_start``) or defuse (rib.gg)         1.0
advance    awpy: next sighting in a bombsite area, previous one outside    0.7
           rib.gg: distance to the objective shrank by more than           0.6
           :data:`MOVE_UNITS` between two position samples
rotate     awpy: from one bombsite area to another                         0.7
           rib.gg: nearest site changed and moved more than                0.6
           :data:`ROTATE_UNITS`
retreat    awpy: from a bombsite area to outside it                        0.6
           rib.gg: distance to the objective grew by more than             0.6
           :data:`MOVE_UNITS`
hold       between two samples at least :data:`HOLD_MIN_S` apart the       0.5
           player moved less than :data:`HOLD_UNITS_PER_S` per second
=========  ==============================================================  ==========

The objective is the nearest bombsite before the plant and the planted bomb after it. Two
samples of one player count only when at most :data:`MAX_GAP_S` apart (longer gaps say nothing
about what happened in between). ``peek`` has no rule: none of the sources records line of sight.
Sources without player identities (the ESEA CSVs) get no signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefinder.esports.importers.common import RULES_VERSION

__all__ = [
    "HOLD_MIN_S",
    "HOLD_UNITS_PER_S",
    "MAX_GAP_S",
    "MOVE_UNITS",
    "ROTATE_UNITS",
    "RULES_VERSION",
    "TRADE_WINDOW_S",
    "Move",
    "area_move",
    "position_move",
]

#: A trade: the killer's team-mate died to the traded player at most this many seconds before.
TRADE_WINDOW_S = 5.0
#: Samples further apart than this (seconds) are not compared.
MAX_GAP_S = 20.0
#: hold: at least this many seconds between the two samples ...
HOLD_MIN_S = 2.0
#: ... and slower than this on average (map units per second; rib.gg minimap units, ~8 per metre)
HOLD_UNITS_PER_S = 2.0
#: advance / retreat: change of the distance to the objective larger than this (map units)
MOVE_UNITS = 20.0
#: rotate: displacement larger than this (map units) while the nearest site changed
ROTATE_UNITS = 100.0
#: awpy positions are in game units (~52 per metre): hold below this many units per second
HOLD_GAME_UNITS_PER_S = 16.0


@dataclass(frozen=True)
class Move:
    """A classified movement between two samples of one player."""

    intent: str
    confidence: float
    features: dict[str, float | str]


def _is_site(area: str | None) -> bool:
    return bool(area) and str(area).lower().startswith("bombsite")


def area_move(dt: float, dist: float, area_from: str | None, area_to: str | None) -> Move | None:
    """Classify two awpy sightings ``dt`` seconds apart, ``dist`` game units apart, by area name."""
    if not 0 < dt <= MAX_GAP_S:
        return None
    feats: dict[str, float | str] = {
        "dt_s": round(dt, 3),
        "speed": round(dist / dt, 3),
        "area_from": str(area_from or ""),
        "area_to": str(area_to or ""),
    }
    a, b = _is_site(area_from), _is_site(area_to)
    if a and b and area_from != area_to:
        return Move("rotate", 0.7, feats)
    if b and not a:
        return Move("advance", 0.7, feats)
    if a and not b:
        return Move("retreat", 0.6, feats)
    if dt >= HOLD_MIN_S and dist / dt < HOLD_GAME_UNITS_PER_S:
        return Move("hold", 0.5, feats)
    return None


def position_move(
    dt: float,
    xy0: tuple[float, float],
    xy1: tuple[float, float],
    sites: list[tuple[float, float]],
    bomb: tuple[float, float] | None,
) -> Move | None:
    """Classify two rib.gg position samples ``dt`` seconds apart against the map's site centres.

    ``bomb`` is the planted bomb's position when the second sample is after the plant, else None.
    """
    if not 0 < dt <= MAX_GAP_S or not sites:
        return None
    moved = math.dist(xy0, xy1)
    speed = moved / dt

    def nearest(p: tuple[float, float]) -> tuple[int, float]:
        d = [math.dist(p, s) for s in sites]
        i = min(range(len(d)), key=d.__getitem__)
        return i, d[i]

    (s0, d0), (s1, d1) = nearest(xy0), nearest(xy1)
    if bomb is not None:
        d0, d1 = math.dist(xy0, bomb), math.dist(xy1, bomb)
    feats: dict[str, float | str] = {
        "dt_s": round(dt, 3),
        "speed": round(speed, 3),
        "dist_to_objective": round(d1, 2),
        "approach_velocity": round((d0 - d1) / dt, 3),
        "objective": "bomb" if bomb is not None else f"site{s1}",
    }
    if dt >= HOLD_MIN_S and speed < HOLD_UNITS_PER_S:
        return Move("hold", 0.5, feats)
    if bomb is None and s0 != s1 and moved > ROTATE_UNITS:
        return Move("rotate", 0.6, feats)
    if d0 - d1 > MOVE_UNITS:
        return Move("advance", 0.6, feats)
    if d1 - d0 > MOVE_UNITS:
        return Move("retreat", 0.6, feats)
    return None
