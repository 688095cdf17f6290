"""JSON-ready copies of result structures, shared by both pipelines' stored and written outputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def jsonable(v: Any) -> Any:
    """JSON-ready copy: dict keys to str, tuples/arrays to lists, numpy scalars to Python, NaN/inf to
    None, a DataFrame to ``{index: {column: value}}``; anything else is returned as it is."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, pd.DataFrame):
        return {str(i): jsonable(r) for i, r in v.to_dict(orient="index").items()}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v
