"""JSON-ready copies of result structures, shared by both pipelines' stored and written outputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def jsonable(v: Any, *, other: Callable[[Any], Any] | None = None) -> Any:
    """JSON-ready copy: dict keys to str, tuples/arrays to lists, numpy scalars to Python, NaN/inf to
    None, a DataFrame to ``{index: {column: value}}``.

    Anything else (None, str, or an object JSON cannot hold) is returned as it is, or, when ``other``
    is given, None and str as they are and any other object as ``other(object)`` (e.g. ``str``).
    """
    if isinstance(v, dict):
        return {str(k): jsonable(x, other=other) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x, other=other) for x in v]
    if isinstance(v, np.ndarray):
        return [jsonable(x, other=other) for x in v.tolist()]
    if isinstance(v, pd.DataFrame):
        return {str(i): jsonable(r, other=other) for i, r in v.to_dict(orient="index").items()}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if other is None or v is None or isinstance(v, str):
        return v
    return other(v)


def finite_or_none(v: Any) -> float | None:
    """``v`` as a finite float, else None: None, NaN, infinities and values ``float()`` refuses.

    For numbers bound for JSON or a database column (Postgres JSONB rejects NaN) and for cells of
    read tables, where a number can also arrive as text ("3.5").
    """
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
