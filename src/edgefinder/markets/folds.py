"""Walk-forward folds over CME sessions: learn, purge, test, embargo, paper.

Units: every length here is a number of **CME sessions** (trading days: 17:00 America/Chicago to
16:00 the next day, labelled by the date they end). ``--purge`` and ``--embargo`` take a DURATION
``N``, ``Nd`` or ``N sessions`` (all mean N sessions; 0 switches it off).

The ATLAS's sessions are cut into ``K + 1 + learn_blocks`` equal blocks of ``b`` sessions (after
the purge; a remainder at the end is left unused). Fold ``k`` (0-based):

* **learn**: ``learn_blocks`` blocks ending ``purge`` sessions before the test block (``rolling``),
  or every session from the first up to there (``anchored``: the window grows fold by fold);
* **purge**: the ``purge`` sessions between learn and test feed nothing: Phases 2–3 stop before
  them and Phase 5 does not judge them (the forward pass replays them as in-sample). Positions are
  flat at every session close, so no trade entered in a learning session holds into the test
  block; one session more keeps the last learning session's exits (a max hold of up to an hour
  after an entry near the close) and any slow feature warm-up away from the first test session;
* **test**: block ``k + 1``: the forward pass's out-of-sample sessions, on which Phase 5 selects;
* **embargo**: the first ``embargo`` sessions after the test block are skipped;
* **paper**: the rest of the next test block (block ``k + 2``): the frozen production playbook's
  unseen sessions. The paper blocks of consecutive folds follow each other, so their trades join
  into one paper-trade equity curve.

The index arithmetic is skfolio's :class:`~skfolio.model_selection.WalkForward` (``purged_size``,
``expand_train`` for anchored); this module adds the paper block and the embargo, which it has not.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas

__all__ = ["SCHEMES", "Fold", "FoldError", "atlas_sessions", "make_folds", "parse_sessions"]

SCHEMES = ("anchored", "rolling")
_DURATION = re.compile(r"^\s*(\d+)\s*(d|days?|sessions?)?\s*$", re.IGNORECASE)


class FoldError(EdgefinderError):
    """The folds cannot be laid out (bad duration, too few sessions, unknown scheme)."""


def parse_sessions(text: str | int, flag: str) -> int:
    """A DURATION (``N``, ``Nd``, ``N sessions``) as a number of CME sessions (>= 0)."""
    if isinstance(text, int):
        if text < 0:
            raise FoldError(f"{flag} must be 0 or more sessions, got {text}")
        return text
    m = _DURATION.match(str(text))
    if m is None:
        raise FoldError(
            f"{flag} must be a number of CME sessions like 1, 2d or '3 sessions', got {text!r}"
        )
    return int(m.group(1))


@dataclass(frozen=True)
class Fold:
    """One fold's session dates (inclusive ranges, ISO ``YYYY-MM-DD``; a date is the day a CME
    session ends). ``purged`` and ``embargoed``: the sessions left out between the blocks."""

    index: int
    learn: tuple[str, str]
    test: tuple[str, str]
    paper: tuple[str, str]
    purged: int
    embargoed: int

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "learn": list(self.learn),
            "test": list(self.test),
            "paper": list(self.paper),
            "purged_sessions": self.purged,
            "embargoed_sessions": self.embargoed,
        }


def atlas_sessions(data_dir: str | Path, timeframe: str | None = None) -> list[_dt.date]:
    """The CME session dates present in an ATLAS (from ``timeframe``, default its finest)."""
    tfs = atlas.available_timeframes(data_dir)
    if not tfs:
        raise FoldError(f"no ATLAS timeframes in {data_dir} (expected {{tf}}/YYYY_MM.parquet)")
    tf = timeframe or min(tfs, key=atlas.tf_seconds)
    ts = atlas.read_bars(data_dir, tf)["timestamp"].to_numpy(np.int64)
    return [d.astype(object) for d in np.unique(atlas.session_ids(ts))]


def make_folds(
    sessions: list[_dt.date],
    folds: int,
    scheme: str = "anchored",
    purge: int = 1,
    embargo: int = 1,
    learn_blocks: int = 2,
) -> list[Fold]:
    """Lay ``folds`` walk-forward folds over ``sessions`` (sorted dates); see the module doc."""
    from skfolio.model_selection import WalkForward

    if scheme not in SCHEMES:
        raise FoldError(f"--scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if folds < 1 or learn_blocks < 1:
        raise FoldError(
            f"--folds and the learning blocks must be at least 1 (got {folds}, {learn_blocks})"
        )
    n = len(sessions)
    block = (n - purge) // (folds + 1 + learn_blocks)
    if block < embargo + 1 or block < 2:
        need = (folds + 1 + learn_blocks) * (embargo + 2) + purge
        raise FoldError(
            f"{n} sessions are too few for {folds} folds with purge {purge} and embargo {embargo}: "
            f"each block needs at least {embargo + 2} sessions (about {need} sessions in all)"
        )
    cv = WalkForward(
        test_size=block,
        train_size=learn_blocks * block,
        purged_size=purge,
        expand_train=scheme == "anchored",
    )
    splits = list(cv.split(np.zeros((n, 1))))[: folds + 1]

    def span(idx: np.ndarray) -> tuple[str, str]:
        return sessions[int(idx.min())].isoformat(), sessions[int(idx.max())].isoformat()

    out = []
    for k in range(folds):
        learn, test = splits[k]
        paper = splits[k + 1][1][embargo:]
        out.append(Fold(k, span(learn), span(test), span(paper), purge, embargo))
    return out
