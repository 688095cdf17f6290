"""Property: nothing a line holds makes parse_line raise anything but InvalidEvent (a dead letter).

And what it accepts is storable: every string is free of NUL, every number finite, the stored
form serializes as strict JSON.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefinder.esports.events import (
    MAX_MAGNITUDE,
    CanonicalEvent,
    InvalidEvent,
    MotionSignal,
    parse_line,
)
from tests.esports_strategies import entries


def _walk(value: object) -> None:
    if isinstance(value, str):
        assert "\x00" not in value
        value.encode("utf-8")  # no unpaired surrogate
    elif isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(k)
            _walk(v)
    elif isinstance(value, list):
        for v in value:
            _walk(v)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=entries(), as_text=st.booleans())
def test_parse_line_accepts_storable_events_or_raises_invalid_event(
    raw: bytes, as_text: bool
) -> None:
    line: str | bytes = raw.decode("utf-8", "surrogatepass") if as_text and _decodable(raw) else raw
    try:
        ev = parse_line(line)
    except InvalidEvent as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    assert isinstance(ev, (CanonicalEvent, MotionSignal))
    dumped = ev.model_dump()  # Python mode: mode="json" would turn NaN into null
    _walk(dumped)
    json.dumps(dumped, allow_nan=False, default=str)
    if isinstance(ev, MotionSignal):
        for name in ("speed", "approach_velocity", "dist_to_objective"):
            v = ev.features.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert abs(v) <= MAX_MAGNITUDE


def _decodable(raw: bytes) -> bool:
    try:
        raw.decode("utf-8", "surrogatepass")
        return True
    except UnicodeDecodeError:
        return False
