"""Hypothesis strategies for hostile ingest input: valid events with one part replaced by anything.

``entries()`` draws what a producer could put in a stream entry: a valid event (from a small
simulation), the same event with a field deleted, replaced or added (any JSON value: huge or
non-finite numbers, NUL, unpaired surrogates, deep nesting), raw junk bytes, or deep brackets.
"""

from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import strategies as st

from edgefinder.esports.simulate import simulate


@lru_cache(maxsize=1)
def valid_events() -> tuple[dict, ...]:
    """One event of every type (and one signal) from a small simulation, and one of an unknown type."""
    sim = simulate(1, seed=999)
    seen: dict[str, dict] = {}
    for line in sim.lines:
        obj = json.loads(line)
        seen.setdefault(obj.get("event_type", "SIGNAL"), obj)
    seen["ECONOMY_UPDATE"] = {
        **seen["KILL"],
        "event_type": "ECONOMY_UPDATE",
        "payload": {"round_no": 3, "banks": {"a": 1200, "b": [1.5, {"c": None}]}},
    }
    return tuple(seen.values())


_plain_text = st.text(st.characters(codec="utf-8"), max_size=8)
_text = st.one_of(
    _plain_text, _plain_text, _plain_text, st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff x"])
)
_numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 1e15, 1e16, -0.0])
)
_scalars = st.none() | st.booleans() | _numbers | _text
#: the values that used to crash a consumer
_hostile = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        10**400,
        -(10**400),
        2**64,
        float("nan"),
        float("inf"),
        float("-inf"),
        1e308,
        -1e308,
        1e16,
        {"k\x00": 1},
        {"x": [float("nan")]},
        json.loads("[" * 34 + "0" + "]" * 34),
    ]
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)


def _deep(depth: int, inner: object) -> object:
    for _ in range(depth):
        inner = [inner]
    return inner


def _paths(obj: dict) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in obj.items():
        out.append((k,))
        if isinstance(v, dict):
            out += [(k, *p) for p in _paths(v)]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out += [(k, "0", *p) for p in _paths(v[0])]
    return out


def _set(obj: object, path: tuple[str, ...], value: object, delete: bool) -> None:
    for key in path[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]  # type: ignore[index]
    last = path[-1]
    if isinstance(obj, list):
        obj[int(last)] = value
    elif delete:
        obj.pop(last, None)  # type: ignore[union-attr]
    else:
        obj[last] = value  # type: ignore[index]


@st.composite
def mutated(draw: st.DrawFn, tag: str = "hyp") -> bytes:
    """A valid event, possibly with one part deleted, replaced or added, as JSON bytes."""
    events = valid_events()
    base = json.loads(
        json.dumps(draw(st.sampled_from([*events, events[-1]])))
    )  # unknown type twice
    key = "signal_id" if "signal_id" in base else "event_id"
    base[key] = f"{tag}-{draw(st.integers(0, 40))}"  # a few ids repeat: duplicates and conflicts
    how = draw(st.sampled_from(["none", "replace", "replace", "delete", "add", "add", "deep"]))
    paths = _paths(base)
    value = draw(st.one_of(_hostile, json_values))
    if how in ("replace", "delete"):
        _set(base, draw(st.sampled_from(paths)), value, how == "delete")
    elif how == "add":
        target = draw(st.sampled_from([(), *[p for p in paths if isinstance(_get(base, p), dict)]]))
        _set(base, (*target, draw(_text)), value, False)
    elif how == "deep":
        _set(
            base,
            draw(st.sampled_from(paths)),
            _deep(draw(st.integers(20, 260)), draw(_scalars)),
            False,
        )
    text = json.dumps(base, allow_nan=True, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


def _get(obj: object, path: tuple[str, ...]) -> object:
    for key in path:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]  # type: ignore[index]
    return obj


def entries(tag: str = "hyp") -> st.SearchStrategy[bytes]:
    """Anything a stream entry may hold, valid events most of the time."""
    return st.one_of(
        mutated(tag),
        mutated(tag),
        mutated(tag),
        mutated(tag),
        st.binary(max_size=40),
        st.integers(1, 400).map(lambda d: b"[" * d + b"]" * d),
        json_values.map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8", "surrogatepass")),
    )
