"""The Console every command prints through: Rich's, with tables that stay whole in a pipe.

Rich sizes its output to the terminal; when stdout is a pipe, a file or a CI log it falls back to 80
columns, and a wide table then wraps every cell over several lines. :class:`Console` keeps Rich's
behaviour on a terminal and when ``COLUMNS`` is set (the user chose a width), and otherwise prints
each table at the width its content needs and text without any line break of its own (soft wrap:
a log line stays one line, whatever its length).

On a terminal (or with ``COLUMNS``) a table wider than the screen is **split**: the first column
(the row's name) is repeated and the other columns are dealt, in order, into as many tables as it
takes for each to fit, so no cell is wrapped mid-word. ``edgefinder --wide`` (:data:`WIDE`) prints
every table whole at the width its content needs instead, as in a pipe.

For a program reading the output, the commands with long tables take ``--format json|csv``:
:func:`write_records` writes their rows to stdout in that format (and :data:`FORMATS` names them).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from rich.console import Console as RichConsole
from rich.measure import Measurement
from rich.table import Table

__all__ = [
    "FORMATS",
    "Console",
    "check_format",
    "set_wide",
    "split_table",
    "table_width",
    "write_records",
]

#: ``--format`` values of the commands that print long tables: the table, or its rows as JSON / CSV.
FORMATS: tuple[str, ...] = ("table", "json", "csv")

#: Widest table :class:`Console` prints unwrapped (columns): beyond it a table wraps as Rich would.
MAX_TABLE_WIDTH = 1000

#: ``edgefinder --wide``: every table whole at its content's width, on a terminal too.
WIDE = False


def set_wide(wide: bool) -> None:
    """Turn ``--wide`` on or off for every console (read at each print)."""
    global WIDE
    WIDE = bool(wide)


def table_width(console: RichConsole, table: Table) -> int:
    """Columns ``table`` needs to print without wrapping any cell (at most :data:`MAX_TABLE_WIDTH`)."""
    return Measurement.get(console, console.options.update(width=MAX_TABLE_WIDTH), table).maximum


class Console(RichConsole):
    """``rich.console.Console`` whose top-level tables fit their content when the output is not a
    terminal and neither ``width`` nor ``COLUMNS`` was given (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        env = os.environ if kwargs.get("_environ") is None else kwargs["_environ"]
        self.piped = kwargs.get("width") is None and not self.is_terminal and not env.get("COLUMNS")
        if self.piped and "soft_wrap" not in kwargs:
            self.soft_wrap = True

    @property
    def fit_tables(self) -> bool:
        """Tables print whole at their content's width: in a pipe, or with ``--wide``."""
        return self.piped or WIDE

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Rich's ``print``; a table wider than the console widens it for this call only (in a pipe
        or with ``--wide``) or is split into tables that fit (on a terminal)."""
        if not self.fit_tables and any(isinstance(o, Table) for o in objects):
            objects = tuple(
                part
                for o in objects
                for part in (split_table(self, o) if isinstance(o, Table) else [o])
            )
        need = (
            max((table_width(self, o) for o in objects if isinstance(o, Table)), default=0)
            if self.fit_tables
            else 0
        )
        if need <= self.width:
            super().print(*objects, **kwargs)
            return
        with self._lock:
            saved = self._width
            self._width = need
            try:
                super().print(*objects, **kwargs)
            finally:
                self._width = saved


def split_table(console: RichConsole, table: Table, width: int | None = None) -> list[Table]:
    """``table`` as tables no wider than ``width`` (default the console's): the first column in each,
    the others dealt out in order. One table when it fits, or when even the first column and one
    other do not (then Rich folds it, the only way left)."""
    import copy
    import dataclasses

    limit = console.width if width is None else width
    if table_width(console, table) <= limit or len(table.columns) < 3:
        return [table]
    key, rest = table.columns[0], table.columns[1:]

    def part(cols: list[Any], first: bool) -> Table:
        t = copy.copy(table)
        t.columns = [dataclasses.replace(c, _index=i) for i, c in enumerate([key, *cols])]
        if not first:
            t.title = "(continued)" if table.title else None
        return t

    groups: list[list[Any]] = [[]]
    for col in rest:
        trial = groups[-1] + [col]
        if groups[-1] and table_width(console, part(trial, False)) > limit:
            groups.append([col])
        else:
            groups[-1] = trial
    if len(groups) == 1:
        return [table]
    return [part(g, i == 0) for i, g in enumerate(groups)]


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS`, else a one-line :class:`~edgefinder.errors.EdgefinderError`."""
    from edgefinder.errors import EdgefinderError

    if fmt not in FORMATS:
        raise EdgefinderError(f"unknown --format {fmt!r}: use {', '.join(FORMATS)}")
    return fmt


def write_records(
    fmt: str,
    rows: Sequence[Mapping[Any, Any]],  # keyed by column label (to_dict types them Hashable)
    meta: Mapping[str, Any] | None = None,
    *,
    key: str = "rows",
    out: IO[str] | None = None,
) -> None:
    """Write ``rows`` to ``out`` (default stdout) as ``json`` — one document, ``meta`` plus the rows
    under ``key`` — or ``csv`` — a header and one line per row (nested values as JSON text; ``meta``
    is left out). NaN and infinities become null / empty."""
    import pandas as pd

    from edgefinder.jsonsafe import jsonable

    stream = out if out is not None else sys.stdout
    if fmt == "json":
        json.dump(jsonable({**(meta or {}), key: list(rows)}), stream, indent=2, default=str)
        stream.write("\n")
    elif fmt == "csv":
        flat = [
            {
                k: json.dumps(jsonable(v)) if isinstance(v, (dict, list, tuple)) else v
                for k, v in r.items()
            }
            for r in rows
        ]
        pd.DataFrame(flat).to_csv(stream, index=False)
    else:
        raise ValueError(f"write_records writes json or csv, not {fmt!r}")
