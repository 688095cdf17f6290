"""Each timeframe's bars and physics states over a whole ATLAS, computed once per process.

A walk-forward study replays one instrument many times, each fold up to a later end: reading the
ATLAS and computing the physics of every timeframe again per fold cost more than the replay
itself. The physics is causal, and its kernel re-seeds its window sums at absolute bar positions
(:func:`edgefinder.markets.kernels.state_kernel`), so the states of the bars opening before
``end`` are, bit for bit, the first rows of the states of the whole series: no look-ahead (a bar's
state uses only bars up to its own) and no change to any figure.

The cache is off unless a caller opens :func:`shared_states` (the study's tasks do; a single
``markets run`` reads each timeframe once anyway and would only hold the memory). Inside it,
:func:`states` serves a prefix of the whole-series states (read-only views). Entries are keyed
by the ATLAS files' fingerprint (name, size, mtime), the timeframe and the physics thresholds, and
the least recently used are dropped beyond ``max_entries``. Memory: about 160 bytes per bar held
(6 bar and 13 state columns of 8 bytes, 5 of 1 byte; a year of 15 s bars of one instrument, ~1.4 M
bars, is ~220 MB).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgefinder.markets import atlas
from edgefinder.markets.physics import PhysicsConfig, StateArrays, state_arrays

__all__ = ["enabled", "shared_states", "states"]

_CACHE: OrderedDict[tuple[Any, ...], StateArrays] = OrderedDict()
_DEPTH = 0
_MAX = 16
_LOCK = threading.RLock()  # a worker may run tasks in several threads


@contextmanager
def shared_states(max_entries: int = 16) -> Iterator[None]:
    """Serve :func:`states` and :func:`bars` from whole-series states inside this block (nestable;
    the entries stay for the next block in this process, e.g. a Dask worker's next task)."""
    global _DEPTH, _MAX
    with _LOCK:
        _DEPTH += 1
        _MAX = max(1, int(max_entries))
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1


def enabled() -> bool:
    """Whether a :func:`shared_states` block is open."""
    return _DEPTH > 0


def _whole(data_dir: str | Path, tf: str, physics: PhysicsConfig) -> StateArrays:
    from edgefinder.markets.checkpoints import files_fingerprint

    root = str(Path(data_dir).resolve())
    key = (root, tf, str(files_fingerprint(root, [tf])), dataclasses.astuple(physics))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    st = state_arrays(atlas.read_bars(root, tf), physics)
    for v in st.values():
        v.flags.writeable = False  # shared by every later fold: a write would leak between them
    with _LOCK:
        _CACHE[key] = st
        while len(_CACHE) > _MAX:
            _CACHE.popitem(last=False)
    return st


def _end_row(st: StateArrays, end: Any) -> int:
    ts = st["timestamp"]
    if end is None:
        return int(ts.size)
    return int(np.searchsorted(ts, atlas.to_epoch_seconds(end), "left"))


def states(data_dir: str | Path, tf: str, physics: PhysicsConfig, end: Any = None) -> StateArrays:
    """Bars of ``tf`` opening before ``end`` (epoch s or any datetime; None = all) with their
    physics states: :func:`physics.state_arrays` of ``atlas.read_bars(data_dir, tf, None, end)``,
    from the cache when :func:`enabled`."""
    if not enabled():
        return state_arrays(atlas.read_bars(data_dir, tf, None, end), physics)
    st = _whole(data_dir, tf, physics)
    n = _end_row(st, end)
    return {k: v[:n] for k, v in st.items()}
