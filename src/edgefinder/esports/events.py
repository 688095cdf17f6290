"""The event contract: canonical game events and AI motion signals (pydantic v2 models).

One JSON object per event. A line (or Redis entry field ``data``) holding ``signal_id`` is a
motion signal; any other line is a canonical event. ``ts`` is game time in seconds since the
match start; ``timestamp`` is wall-clock time (ISO 8601, UTC). Unknown ``event_type`` values are
accepted with their payload kept raw (stored in ``raw_events``, otherwise ignored).

:func:`parse_line` turns raw text into a model or raises :class:`InvalidEvent`, whose ``reason``
is the one-line explanation stored in ``dead_letters``. Besides the schema it enforces the bounds
that make every accepted event storable and analysable, so that nothing an entry contains can
make the database or the analysis fail later:

* size: at most ``max_bytes`` of JSON text (checked before parsing);
* nesting: free-form JSON (``features``, payloads of unknown event types) at most
  :data:`MAX_DEPTH` levels deep (the JSON parser itself stops at 200 levels);
* numbers: finite everywhere; integers in free-form JSON within 64 bits; measured quantities
  (money, game time, the standard motion features) within ±:data:`MAX_MAGNITUDE`;
* text: no NUL character anywhere (Postgres text cannot hold it) and valid UTF-8 without
  unpaired surrogates (the parser rejects those).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from edgefinder.errors import EdgefinderError
from edgefinder.settings import setting_default

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
Intent = Literal[
    "advance", "retreat", "hold", "peek", "plant", "defuse", "rotate", "trade", "engage"
]

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

#: Default size limit of one event's JSON text, in bytes (``EDGEFINDER_MAX_EVENT_BYTES``).
DEFAULT_MAX_EVENT_BYTES: int = setting_default("max_event_bytes")
#: Deepest nesting of free-form JSON (``features``, payloads of unknown event types), in levels.
MAX_DEPTH = 32
#: Largest magnitude of a measured quantity: money (dollars), game time (seconds) and the standard
#: motion features. Sums and differences of millions of them stay finite, and dollar amounts up
#: to this size are exact to the cent in a double.
MAX_MAGNITUDE = 1e15
#: Integers in free-form JSON must fit 64 bits (SQLite's JSON integers, Postgres bigint).
MAX_INT = 2**63 - 1
#: Motion features with their own micro_actions columns (the analysis aggregates them).
STANDARD_FEATURES: tuple[str, ...] = ("speed", "approach_velocity", "dist_to_objective")

# Lengths match the columns in edgefinder.store.tables, so a valid event always fits the schema.
Id = Annotated[str, Field(min_length=1, max_length=128)]
Short = Annotated[str, Field(min_length=1, max_length=64)]
Side = Literal["attack", "defense"]
RoundNo = Annotated[int, Field(ge=0, le=10_000)]
GameTime = Annotated[float, Field(ge=0.0, le=MAX_MAGNITUDE, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, allow_inf_nan=False)]
Score = Annotated[int, Field(ge=0, le=1_000_000)]


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
        default=None,
        ge=0,
        le=len(BUY_TIERS) - 1,
        description="coarse buy class, index into BUY_TIERS",
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
    score: dict[Id, Score] = Field(default_factory=dict, max_length=16)


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
    if v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    if v.utcoffset():
        try:
            return v.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past year 9999 in UTC
            raise ValueError("timestamp is out of range once converted to UTC") from None
    return v


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
    round_no: RoundNo | None = Field(
        default=None, validation_alias=AliasChoices("round_no", "round")
    )
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
        loc = ".".join(_show_key(str(p)) for p in err["loc"]) or "<root>"
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
    costs nothing but its length check. Every bound of the module docstring is enforced here.
    """
    raw = text if text.__class__ is bytes else text.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
    if len(raw) > max_bytes:
        raise InvalidEvent(f"oversize payload: {len(raw)} bytes > limit {max_bytes}")
    # A NUL can only enter a parsed string through the escape \u0000 (a raw control byte is
    # invalid JSON), so its absence in the bytes proves every string clean; if present, the
    # slow path checks each string.
    if _NUL_ESCAPE not in raw:
        # Fast paths (all valid traffic): pydantic-core parses and validates in one pass. A
        # model requires its top-level keys, so success means the routing rule holds; on
        # failure the slow path below produces the precise reason.
        if _SIGNAL_KEY in raw:
            try:
                sig: MotionSignal = _SIGNAL_VALIDATOR.validate_json(raw)
            except ValidationError:
                pass
            else:
                for (
                    v
                ) in sig.features.values():  # inline: flat and bounded floats need no more checks
                    if v.__class__ is not float or not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:
                        _check_features(sig.features)
                        break
                return sig
        else:
            hint = _TYPE_HINT.search(raw)
            validator = (
                _TYPED_VALIDATORS.get(hint.group(1).decode(), _ANY_VALIDATOR)
                if hint
                else _ANY_VALIDATOR
            )
            try:
                ev: CanonicalEvent = validator.validate_json(raw)
            except ValidationError:
                pass
            else:
                if validator is not _ANY_VALIDATOR:
                    return ev
                if not ev.known:  # the plain envelope is only right for a type without a model
                    _check_free(ev.payload, "canonical event", "payload")
                    return ev
    try:
        # pydantic-core's parser: bounded recursion, strict UTF-8, no unpaired surrogates
        obj = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise InvalidEvent(f"bad JSON: {_json_problem(str(exc))}") from None
    return parse_obj(obj)


def parse_lines(
    raws: Sequence[bytes], *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> list[Event | Exception]:
    """:func:`parse_line` of every raw event of a batch: its model, or the exception it raised
    (:class:`InvalidEvent`, or whatever else an entry made the parser raise).

    The same results as calling :func:`parse_line` on each; the fast path of a valid motion
    signal (most of the traffic) runs inline, because the call and its checks cost about a
    third as much as the validation itself. Anything off that path goes through
    :func:`parse_line`.
    """
    out: list[Event | Exception] = []
    append = out.append
    validate = _SIGNAL_VALIDATOR.validate_json
    for raw in raws:
        if (
            raw.__class__ is bytes
            and len(raw) <= max_bytes
            and _SIGNAL_KEY in raw
            and _NUL_ESCAPE not in raw
        ):
            try:
                sig: MotionSignal = validate(raw)
            except ValidationError:
                pass  # parse_line below finds the reason
            else:
                for v in sig.features.values():
                    if v.__class__ is not float or not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:
                        break  # parse_line below checks the features one by one
                else:
                    append(sig)
                    continue
        try:
            append(parse_line(raw, max_bytes=max_bytes))
        except Exception as exc:
            append(exc)
    return out


def _json_problem(msg: str) -> str:
    """pydantic-core's parser message, with what it means where that is not obvious."""
    if msg.startswith("recursion limit exceeded"):
        return f"nested deeper than {_PARSER_DEPTH} levels ({msg})"
    if "surrogate" in msg or "hex escape" in msg:
        return f"a \\u escape that is not a character, e.g. an unpaired surrogate ({msg})"
    return msg


_SIGNAL_KEY = b'"signal_id"'
_NUL_ESCAPE = b"\\u0000"


def parse_obj(obj: Any) -> Event:
    """Validate a decoded JSON value (see :func:`parse_line`; the same bounds apply)."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"bad JSON: expected an object, got {type(obj).__name__}")
    _check_free(
        obj, "motion signal" if "signal_id" in obj else "canonical event", "", text_only=True
    )
    if "signal_id" in obj:
        try:
            sig = MotionSignal.model_validate(obj)
        except ValidationError as exc:
            raise InvalidEvent(_reason("motion signal", exc)) from None
        _check_features(sig.features)
        return sig
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
        ev = CanonicalEvent.model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(_reason("canonical event", exc)) from None
    if not ev.known:
        _check_free(ev.payload, "canonical event", "payload")
    return ev


# --- bounds of free-form JSON ---------------------------------------------------------------


def _check_features(features: dict[str, Any]) -> None:
    """Free-form bounds for ``features``; the standard features are measured quantities."""
    for v in features.values():
        if v.__class__ is not float or not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:
            break
    else:
        return  # the usual case, flat and bounded floats: every bound holds
    for k in STANDARD_FEATURES:
        v = features.get(k)
        if v.__class__ is float or v.__class__ is int:
            if not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:  # also False for NaN
                raise InvalidEvent(
                    f"invalid motion signal: features.{k}: must be a finite number within "
                    f"±{MAX_MAGNITUDE:.0e}, got {_show(v)}"
                )
    _check_free(features, "motion signal", "features")


def _check_free(value: Any, kind: str, where: str, *, text_only: bool = False) -> None:
    """Raise :class:`InvalidEvent` if a decoded JSON value breaks a bound (depth, number, text).

    ``text_only`` checks strings (keys included) but not numbers or depth: the models bound
    those where the schema is fixed, and :func:`_check_free` runs again on the free-form parts.
    """
    problem = _free_problem(value, 0, text_only)
    if problem is not None:
        rpath, what = problem
        path = (
            [where, *map(_show_key, reversed(rpath))]
            if where
            else [_show_key(k) for k in reversed(rpath)]
        )
        if len(path) > 8:
            path = [*path[:6], f"…({len(path)} levels)"]
        raise InvalidEvent(f"invalid {kind}: {'.'.join(path) or '<root>'}: {what}")


def _free_problem(value: Any, depth: int, text_only: bool) -> tuple[list[str], str] | None:
    """``(reversed path, what is wrong)`` for the first value that breaks a bound, else None."""
    cls = value.__class__
    if cls is float:
        return (
            None
            if text_only or math.isfinite(value)
            else ([], f"{_show(value)} is not a finite number")
        )
    if cls is str:
        if "\x00" in value:
            return [], "text contains a NUL character (\\u0000)"
        return None
    if cls is int:
        return (
            None
            if text_only or -MAX_INT - 1 <= value <= MAX_INT
            else ([], "integer outside the 64-bit range")
        )
    if cls is dict or cls is list:
        limit = _TEXT_WALK_DEPTH if text_only else MAX_DEPTH
        if depth >= limit:
            return [], f"nested deeper than {limit} levels"
        items = value.items() if cls is dict else enumerate(value)
        for k, v in items:
            if k.__class__ is str and "\x00" in k:
                return [k], "key contains a NUL character (\\u0000)"
            got = _free_problem(v, depth + 1, text_only)
            if got is not None:
                got[0].append(str(k))
                return got
        return None
    if value is None or cls is bool:
        return None
    return [], f"unsupported value of type {cls.__name__}"


# pydantic-core's JSON parser stops past 200 levels; a decoded value built otherwise is cut off here
_PARSER_DEPTH = 200
_TEXT_WALK_DEPTH = 256


def _show_key(key: str) -> str:
    """A JSON key in a reason's path: control characters escaped, so the reason stays one line."""
    return key if key.isprintable() else json.dumps(key)[1:-1]


def _show(v: float | int) -> str:
    """A number for a reason line: a 400-digit integer is shown by its size, not its digits."""
    if isinstance(v, int) and abs(v) > MAX_INT:
        return f"an integer of {len(str(abs(v)))} digits"
    return repr(v)


def _typed_envelope(etype: str, model: type[_Model]) -> type[CanonicalEvent]:
    name = "".join(w.title() for w in etype.split("_")) + "Event"
    return type(
        name,
        (CanonicalEvent,),
        {
            "__annotations__": {"event_type": Literal[etype], "payload": model},
            "__module__": __name__,
            "__doc__": f"A {etype} event: the envelope with its typed payload.",
        },
    )


#: The fast path of canonical events: the envelope with the typed payload of each known type
#: (its event_type a Literal, so a wrong guess fails validation instead of passing).
TYPED_EVENTS: dict[str, type[CanonicalEvent]] = {
    t: _typed_envelope(t, m) for t, m in PAYLOAD_MODELS.items()
}
_TYPED_VALIDATORS = {t: cls.__pydantic_validator__ for t, cls in TYPED_EVENTS.items()}
_ANY_VALIDATOR = CanonicalEvent.__pydantic_validator__
_SIGNAL_VALIDATOR = MotionSignal.__pydantic_validator__
# the first "event_type" value in the text: a guess (it might be a nested key), checked by validation
_TYPE_HINT = re.compile(rb'"event_type"\s*:\s*"([A-Z_]{1,32})"')


def is_signal_line(text: str | bytes) -> bool:
    """The routing rule of ``publish``: does this JSON line hold a ``signal_id`` key?

    Unparseable lines count as canonical (they are dead-lettered by the canonical consumer).
    """
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _SIGNAL_KEY not in raw:
        return False
    try:
        obj = pydantic_core.from_json(raw)
    except ValueError:
        return False
    return isinstance(obj, dict) and "signal_id" in obj
