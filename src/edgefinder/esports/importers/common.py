"""What every importer shares: the event builder, the import report and the errors.

An importer reads one source format and calls :class:`MatchBuilder` for each map it finds. The
builder assigns deterministic event ids, validates every event with the contract's own parser
(:func:`edgefinder.esports.events.parse_obj`), so an importer can never emit what ingest would
reject, and counts what it made. A source row that cannot become a valid event is recorded in
:attr:`ImportReport.skipped` (file, row, reason) and left out; a file that cannot be read at all
raises :class:`MalformedSource`, whose message is one line naming the file.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgefinder import files
from edgefinder.errors import EdgefinderError
from edgefinder.esports.events import CanonicalEvent, InvalidEvent, MotionSignal, parse_obj
from edgefinder.jsonsafe import finite_or_none

#: Version of the rule set that derives motion signals from recorded behaviour (docs/esports.md,
#: "Importers"). Stored in every derived signal's ``model_version``; bump it when a rule changes.
RULES_VERSION = "import-rules/1"

#: Wall clock of sources that do not record when a match was played: the epoch plus game time.
UNKNOWN_WALL_CLOCK = datetime(1970, 1, 1, tzinfo=UTC)

#: Round-end reasons, shared by all importers (the source's own label is mapped to one of these).
WIN_REASONS = ("elimination", "bomb", "defuse", "time")


class MalformedSource(EdgefinderError):
    """A source file cannot be imported; the message is one line that names the file."""


@dataclass(frozen=True)
class SkippedRow:
    """A source row that was reported and left out: ``source`` file, ``row`` locator, ``reason``."""

    source: str
    row: str
    reason: str


@dataclass
class ImportReport:
    """Counts of one import run: maps, rounds, events by type, signals by intent, skipped rows."""

    format: str
    files: list[str] = field(default_factory=list)
    maps: int = 0
    rounds: int = 0
    events: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    skipped: list[SkippedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, source: str | Path, row: object, reason: str) -> None:
        """Record a bad source row (it is not imported)."""
        self.skipped.append(SkippedRow(Path(source).name, str(row), reason))

    @property
    def n_events(self) -> int:
        return sum(self.events.values())

    @property
    def n_signals(self) -> int:
        return sum(self.signals.values())

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.format}: {self.maps} maps, {self.rounds} rounds, {self.n_events:,} canonical events, "
            f"{self.n_signals:,} derived motion signals, {len(self.skipped)} source rows skipped"
        )


class MatchBuilder:
    """Builds the validated events of one map (match id ``match_id``) in game-time order.

    ``wall_start`` is the wall clock of game time 0 (:data:`UNKNOWN_WALL_CLOCK` when the source does
    not say). Event ids are ``{match_id}:{kind}:{key}`` with a key the importer derives from the
    source row, so importing the same file twice gives the same ids (ingest upserts are idempotent).
    """

    def __init__(
        self,
        match_id: str,
        report: ImportReport,
        source: str | Path,
        wall_start: datetime = UNKNOWN_WALL_CLOCK,
    ) -> None:
        self.match_id = match_id
        self.report = report
        self.source = str(source)
        self.wall_start = wall_start
        self.items: list[CanonicalEvent | MotionSignal] = []

    def match_start(self, map_name: str | None, rosters: Mapping[str, Sequence[str]]) -> bool:
        """The MATCH_START event at second 0: the map and each team's player ids (team id -> ids)."""
        teams = [{"team_id": t, "players": list(ps)} for t, ps in rosters.items()]
        return self.event("MATCH_START", "0", 0.0, {"map": map_name, "teams": teams})

    def event(
        self,
        event_type: str,
        key: object,
        ts: float,
        payload: dict[str, Any],
        *,
        row: object | None = None,
        team: str | None = None,
        actor: str | None = None,
    ) -> bool:
        """Validate and keep one canonical event; an invalid one is a skipped row (returns False)."""
        obj = {
            "event_id": f"{self.match_id}:{event_type.lower()}:{key}",
            "match_id": self.match_id,
            "event_type": event_type,
            "ts": ts,
            "timestamp": (self.wall_start + timedelta(seconds=max(ts, 0.0))).isoformat(),
            "team": team,
            "actor": actor,
            "payload": payload,
        }
        return self._keep(obj, row if row is not None else key, event_type)

    def signal(
        self,
        intent: str,
        key: object,
        ts: float,
        *,
        player: str,
        round_no: int,
        team: str | None,
        confidence: float,
        artifact: str,
        features: dict[str, Any] | None = None,
    ) -> bool:
        """Validate and keep one derived motion signal (``artifact`` locates its source row)."""
        obj = {
            "signal_id": f"{self.match_id}:{intent}:{key}",
            "match_id": self.match_id,
            "round_no": round_no,
            "team": team,
            "player_id": player,
            "ts": ts,
            "intent": intent,
            "confidence": confidence,
            "features": {"rule": intent, **(features or {})},
            "artifact_url": artifact,
            "model_version": RULES_VERSION,
        }
        return self._keep(obj, key, f"{intent} signal")

    def _keep(self, obj: dict[str, Any], row: object, what: str) -> bool:
        try:
            ev = parse_obj(obj)
        except InvalidEvent as exc:
            self.report.skip(self.source, row, f"{what}: {exc.reason}")
            return False
        self.items.append(ev)
        if isinstance(ev, MotionSignal):
            self.report.signals[ev.intent] += 1
        else:
            self.report.events[ev.event_type] += 1
        return True

    def sorted_items(self) -> list[CanonicalEvent | MotionSignal]:
        """Events in game-time order (stable: same-time events keep the order they were made in)."""
        return sorted(self.items, key=lambda e: e.ts)


#: A table cell as a finite float, else None (empty, NaN, text that is not a number).
cell_number = finite_or_none


def cell_text(v: Any) -> str | None:
    """A table cell as stripped text, None for empty or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v).strip() or None


def match_winner(score: dict[str, int]) -> str | None:
    """The team with the most rounds won, None on a tie or without rounds."""
    ranked = sorted(score.items(), key=lambda kv: -kv[1])
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def to_json_line(ev: CanonicalEvent | MotionSignal) -> str:
    """One event as a JSONL line of the contract (no nulls the contract does not need)."""
    return json.dumps(
        ev.model_dump(mode="json", exclude_none=True), separators=(",", ":"), ensure_ascii=False
    )


def expand_paths(paths: Sequence[str | Path], suffixes: Iterable[str]) -> list[Path]:
    """:func:`edgefinder.files.expand_paths` raising :class:`MalformedSource`."""
    return files.expand_paths(paths, suffixes, MalformedSource)
