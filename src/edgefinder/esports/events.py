"""The event contract: canonical game events and AI motion signals (pydantic v2 models).

One JSON object per event. A line (or Redis entry field ``data``) holding ``signal_id`` is a
motion signal; any other line is a canonical event. ``ts`` is game time in seconds since the
match start; ``timestamp`` is wall-clock time (ISO 8601, UTC). Unknown ``event_type`` values are
accepted with their payload kept raw (stored in ``raw_events``, otherwise ignored).

:func:`parse_line` turns raw text into a model or raises :class:`InvalidEvent`, whose ``reason``
is the one-line explanation stored in ``dead_letters``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from edgefinder.errors import EdgefinderError

#: The nine intents a motion model may infer, in the order every table and report uses.
INTENTS: tuple[str, ...] = (
    "advance",
    "retreat",
    "hold",
    "peek",
    "plant",
    "defuse",
    "rotate",
    "trade",
    "engage",
)
Intent = Literal["advance", "retreat", "hold", "peek", "plant", "defuse", "rotate", "trade", "engage"]

#: Event types that are materialized; any other type is stored raw and ignored.
KNOWN_TYPES: tuple[str, ...] = (
    "MATCH_START",
    "ROUND_START",
    "KILL",
    "BOMB_PLANT",
    "SITE_EXECUTE",
    "BOMB_DEFUSE",
    "ROUND_END",
    "MATCH_END",
)
SITE_TYPES: frozenset[str] = frozenset({"BOMB_PLANT", "SITE_EXECUTE", "BOMB_DEFUSE"})

#: Default size limit of one event's JSON text, in bytes (64 KiB).
DEFAULT_MAX_EVENT_BYTES = 64 * 1024

# Lengths match the columns in edgefinder.store.tables, so a valid event always fits the schema.
Id = Annotated[str, Field(min_length=1, max_length=128)]
Short = Annotated[str, Field(min_length=1, max_length=64)]
Side = Literal["attack", "defense"]
RoundNo = Annotated[int, Field(ge=0, le=10_000)]
GameTime = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Money = Annotated[float, Field(allow_inf_nan=False)]


class InvalidEvent(EdgefinderError):
    """An event that breaks the contract; ``reason`` is a one-line explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Model(BaseModel):
    # populate_by_name lets code build models with the field names; the aliases serve producers.
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


# --- payloads ------------------------------------------------------------------------------


class TeamRoster(_Model):
    team_id: Id
    # Empty when the source identifies no players (ESEA's published CSVs carry mangled ids).
    players: list[Id] = Field(default_factory=list, max_length=64)


class MatchStartPayload(_Model):
    map: Short | None = None
    teams: list[TeamRoster] = Field(min_length=2, max_length=2)


#: Ordinal of a coarse buy class (``RoundStartTeam.buy_tier``): what importers map a source's
#: class labels to when it has no money values (see docs/esports.md, "Importers").
BUY_TIERS: tuple[str, ...] = ("full_eco", "eco", "half_buy", "full_buy")


class RoundStartTeam(_Model):
    team_id: Id
    side: Side
    # None = the source does not record it (never a guessed number)
    bank: Money | None = Field(default=None, description="dollars (game currency) at round start")
    loadout_value: Money | None = Field(
        default=None, description="dollars (game currency) of equipment bought/held"
    )
    buy_tier: int | None = Field(
        default=None, ge=0, le=len(BUY_TIERS) - 1, description="coarse buy class, index into BUY_TIERS"
    )


class RoundStartPayload(_Model):
    round_no: RoundNo = Field(validation_alias=AliasChoices("round_no", "round"))
    teams: list[RoundStartTeam] = Field(min_length=2, max_length=2)


class KillPayload(_Model):
    round_no: RoundNo = Field(validation_alias=AliasChoices("round_no", "round"))
    killer: Id | None = None
    victim: Id | None = None  # None only when the source identifies no players
    killer_team: Id | None = None
    victim_team: Id | None = None
    weapon: Short | None = None
    headshot: bool = False


class SitePayload(_Model):
    """BOMB_PLANT, SITE_EXECUTE and BOMB_DEFUSE."""

    round_no: RoundNo = Field(validation_alias=AliasChoices("round_no", "round"))
    team: Id
    site: Annotated[str, Field(max_length=16)] | None = None


class RoundEndTeam(_Model):
    team_id: Id
    bank: Money | None = Field(default=None, description="dollars (game currency) at round end")


class RoundEndPayload(_Model):
    round_no: RoundNo = Field(validation_alias=AliasChoices("round_no", "round"))
    winner: Id = Field(validation_alias=AliasChoices("winner", "winner_team"))
    win_reason: Short | None = None
    teams: list[RoundEndTeam] = Field(default_factory=list, max_length=2)


class MatchEndPayload(_Model):
    winner: Id | None = Field(default=None, validation_alias=AliasChoices("winner", "winner_team"))
    score: dict[str, int] = Field(default_factory=dict)


PAYLOAD_MODELS: dict[str, type[_Model]] = {
    "MATCH_START": MatchStartPayload,
    "ROUND_START": RoundStartPayload,
    "KILL": KillPayload,
    "BOMB_PLANT": SitePayload,
    "SITE_EXECUTE": SitePayload,
    "BOMB_DEFUSE": SitePayload,
    "ROUND_END": RoundEndPayload,
    "MATCH_END": MatchEndPayload,
}

#: What ``CanonicalEvent.payload`` holds: the typed model of a known event type, else the raw dict.
Payload = (
    MatchStartPayload
    | RoundStartPayload
    | KillPayload
    | SitePayload
    | RoundEndPayload
    | MatchEndPayload
    | dict[str, Any]
)


def _aware(v: datetime) -> datetime:
    # A naive timestamp is read as UTC: the contract says UTC, and producers often drop the 'Z'.
    return v if v.tzinfo is not None else v.replace(tzinfo=timezone.utc)


# --- envelopes -----------------------------------------------------------------------------


class CanonicalEvent(_Model):
    """A game event from ``events:canonical``; ``payload`` is the typed model for known types."""

    event_id: Id
    match_id: Id
    event_type: Short
    ts: GameTime = Field(description="game seconds since match start")
    timestamp: datetime = Field(description="wall clock, ISO 8601 UTC")
    actor: Id | None = None
    team: Id | None = None
    payload: Any = Field(description="typed model for known event types, else the raw dict")

    @field_validator("payload")
    @classmethod
    def _object(cls, v: Any) -> Any:
        if not isinstance(v, (dict, _Model)):
            raise ValueError(f"payload must be an object, got {type(v).__name__}")
        return v

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _aware(v)

    @property
    def known(self) -> bool:
        return self.event_type in PAYLOAD_MODELS


class MotionSignal(_Model):
    """An inferred player intent from ``events:agent:motion``."""

    signal_id: Id
    match_id: Id
    round_no: RoundNo | None = Field(default=None, validation_alias=AliasChoices("round_no", "round"))
    team: Id | None = None
    player_id: Id
    ts: GameTime = Field(description="game seconds since match start")
    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    features: dict[str, Any] = Field(default_factory=dict)
    artifact_url: Annotated[str, Field(max_length=2048)] | None = None
    model_version: Short | None = None

    def feature(self, name: str) -> float | None:
        """A numeric feature or None (missing, non-numeric or non-finite values are None)."""
        v = self.features.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        v = float(v)
        return v if math.isfinite(v) else None


Event = CanonicalEvent | MotionSignal


def _reason(kind: str, exc: ValidationError) -> str:
    """One line naming the first few failing fields (dead_letters.reason)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "missing":
            parts.append(f"missing field {loc}")
        elif err["type"] == "literal_error" and loc.endswith("intent"):
            parts.append(f"unknown intent {err.get('input')!r}")
        else:
            parts.append(f"{loc}: {err['msg']}")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return f"invalid {kind}: " + "; ".join(parts) + more


def parse_line(text: str | bytes, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Event:
    """Validate one JSON event; route by ``signal_id``. Raises :class:`InvalidEvent`.

    ``max_bytes`` bounds the encoded size (bytes) before any parsing, so an oversize entry
    costs nothing but its length check.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidEvent(f"oversize payload: {size} bytes > limit {max_bytes}")
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _SIGNAL_KEY in raw:
        # Fast path (the bulk of the traffic): pydantic-core parses and validates in one pass.
        # A model requires a top-level signal_id, so success means the routing rule holds; on
        # failure the slow path below produces the precise reason.
        try:
            return MotionSignal.model_validate_json(raw)
        except ValidationError:
            pass
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"bad JSON: {exc}") from None
    return parse_obj(obj)


_SIGNAL_KEY = b'"signal_id"'


def parse_obj(obj: Any) -> Event:
    """Validate a decoded JSON value (see :func:`parse_line`)."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"bad JSON: expected an object, got {type(obj).__name__}")
    if "signal_id" in obj:
        try:
            return MotionSignal.model_validate(obj)
        except ValidationError as exc:
            raise InvalidEvent(_reason("motion signal", exc)) from None
    try:
        etype = obj.get("event_type")
        model = PAYLOAD_MODELS.get(etype) if isinstance(etype, str) else None
        if model is not None:
            payload = obj.get("payload")
            if payload is None:
                raise InvalidEvent(f"invalid canonical event: missing field payload ({etype})")
            try:
                typed = model.model_validate(payload)
            except ValidationError as exc:
                raise InvalidEvent(_reason(f"{etype} payload", exc)) from None
            obj = {**obj, "payload": typed}
        return CanonicalEvent.model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(_reason("canonical event", exc)) from None


def is_signal_line(text: str | bytes) -> bool:
    """The routing rule of ``publish``: does this JSON line hold a ``signal_id`` key?

    Unparseable lines count as canonical (they are dead-lettered by the canonical consumer).
    """
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and "signal_id" in obj
