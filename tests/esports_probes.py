"""Poison entries: one of each kind that used to crash a consumer, built from valid events.

Each probe is an entry the database or the analysis cannot hold (too deep, a number out of range,
a NUL, an unpaired surrogate, …) together with the fragment its dead-letter reason must contain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str
    line: bytes
    reason: str  # a fragment of the dead-letter reason
    stream: str  # the stream publish would route it to: motion or canonical


def _first(lines: list[str], needle: str) -> dict:
    return json.loads(next(ln for ln in lines if needle in ln))


def probes(lines: list[str], tag: str) -> list[Probe]:
    """One probe of each kind, with ids ``{tag}-…`` (unique per test), from a simulation's lines."""
    sig = _first(lines, '"signal_id"')
    kill = _first(lines, '"KILL"')
    start = _first(lines, '"ROUND_START"')
    end = _first(lines, '"ROUND_END"')
    match_end = _first(lines, '"MATCH_END"')
    out: list[Probe] = []

    def signal(name: str, reason: str, *, text: str | None = None, **fields: object) -> None:
        obj = {**sig, "signal_id": f"{tag}-{name}", **fields}
        line = json.dumps(obj) if text is None else text.replace("@ID@", f"{tag}-{name}")
        out.append(Probe(name, line.encode() if isinstance(line, str) else line, reason, "motion"))

    def canonical(
        name: str, base: dict, reason: str, *, text: str | None = None, **fields: object
    ) -> None:
        obj = {**base, "event_id": f"{tag}-{name}", **fields}
        line = json.dumps(obj) if text is None else text.replace("@ID@", f"{tag}-{name}")
        out.append(Probe(name, line.encode(), reason, "canonical"))

    template = json.dumps({**sig, "signal_id": "@ID@", "features": "@F@"})
    deep = "[" * 10_000 + "]" * 10_000
    signal(
        "deep-10000",
        "bad JSON: nested deeper than 200 levels",
        text=template.replace('"@F@"', deep),
    )
    unknown = {
        "event_id": "x",
        "match_id": sig["match_id"],
        "event_type": "ECONOMY_UPDATE",
        "ts": 1.0,
        "timestamp": "2025-01-01T00:00:01Z",
        "payload": "@P@",
    }
    canonical(
        "deep-10000-payload",
        unknown,
        "bad JSON: nested deeper than 200 levels",
        text=json.dumps({**unknown, "event_id": "@ID@"}).replace('"@P@"', '{"x": ' + deep + "}"),
    )
    signal(
        "deep-40-features",
        "nested deeper than 32 levels",
        features={"a": json.loads("[" * 40 + "]" * 40)},
    )
    for feature in ("speed", "approach_velocity", "dist_to_objective"):
        signal(
            f"{feature}-400-digits",
            f"features.{feature}: must be a finite number within",
            text=template.replace('"@F@"', f'{{"{feature}": 1{"0" * 400}}}'),
        )
    signal(
        "speed-1e400",
        "features.speed: must be a finite number within",
        text=template.replace('"@F@"', '{"speed": 1e400}'),
    )
    signal(
        "speed-1e300", "features.speed: must be a finite number within", features={"speed": 1e300}
    )
    signal(
        "nul-model-version",
        "model_version: text contains a NUL character",
        model_version="a\u0000b",
    )
    signal("nul-player-id", "player_id: text contains a NUL character", player_id="p\u00001")
    signal("nul-feature-key", "key contains a NUL character", features={"sp\u0000eed": 1.0})
    signal(
        "nan-feature",
        "features.x: nan is not a finite number",
        text=template.replace('"@F@"', '{"x": NaN}'),
    )
    signal(
        "big-int-feature", "features.x: integer outside the 64-bit range", features={"x": 10**30}
    )
    surrogate = template.replace('"@F@"', "{}").replace(
        '"model_version": "sim-1"', '"model_version": "a\\ud800b"'
    )
    signal(
        "surrogate-model-version", "bad JSON: a \\u escape that is not a character", text=surrogate
    )
    out.append(
        Probe(
            "invalid-utf8",
            json.dumps({**sig, "signal_id": f"{tag}-invalid-utf8", "model_version": "@"})
            .encode()
            .replace(b'"@"', b'"\xff\xfe"'),
            "bad JSON",
            "motion",
        )
    )
    canonical(
        "nul-kill-weapon",
        kill,
        "weapon: text contains a NUL character",
        payload={**kill["payload"], "weapon": "ak\u000047"},
    )
    canonical(
        "infinity-unknown-payload",
        unknown,
        "payload.x: inf is not a finite number",
        text=json.dumps({**unknown, "event_id": "@ID@"}).replace('"@P@"', '{"x": Infinity}'),
    )
    teams = start["payload"]["teams"]
    canonical(
        "bank-minus-1e308",
        start,
        "teams.0.bank: Input should be greater than or equal to",
        payload={**start["payload"], "teams": [{**teams[0], "bank": -1e308}, teams[1]]},
    )
    teams_end = end["payload"]["teams"]
    canonical(
        "bank-1e308",
        end,
        "teams.1.bank: Input should be less than or equal to",
        payload={**end["payload"], "teams": [teams_end[0], {**teams_end[1], "bank": 1e308}]},
    )
    canonical(
        "score-10e30", match_end, "score.", payload={**match_end["payload"], "score": {"a": 10**30}}
    )
    canonical(
        "timestamp-past-9999",
        kill,
        "timestamp is out of range",
        timestamp="9999-12-31T23:00:00-05:00",
    )
    return out
