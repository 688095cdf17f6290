"""jsonable and finite_or_none: the one JSON cleaner of stored and written outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgefinder.jsonsafe import finite_or_none, jsonable


def test_other_turns_what_json_cannot_hold_into_text() -> None:
    errors = [{"loc": ("body", 0), "input": b"\xff{", "ctx": {"error": ValueError("bad")}}]
    assert jsonable(errors) == [{"loc": ["body", 0], "input": b"\xff{", "ctx": errors[0]["ctx"]}]
    clean = jsonable(errors + [{"input": None, "x": float("nan"), "s": "ok"}], other=str)
    assert clean == [
        {"loc": ["body", 0], "input": "b'\\xff{'", "ctx": {"error": "bad"}},
        {"input": None, "x": None, "s": "ok"},
    ]
    json.dumps(clean, allow_nan=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1, 1.0),
        (np.float32(0.5), 0.5),
        ("3.5", 3.5),
        ("", None),
        ("n/a", None),
        (float("nan"), None),
        (-math.inf, None),
        (np.float64("inf"), None),
        ([1.0], None),
    ],
)
def test_finite_or_none(value: object, expected: float | None) -> None:
    got = finite_or_none(value)
    assert got == expected and (got is None or type(got) is float)
