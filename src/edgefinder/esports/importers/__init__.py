"""Importers of real match data into the event contract: awpy (CS), ESEA CSVs (CS), rib.gg (Valorant).

:func:`import_files` runs one format's importer over files or directories and returns the
validated events of every map plus an :class:`~edgefinder.esports.importers.common.ImportReport`.
:func:`write_jsonl` writes them as the JSONL that ``esports ingest --from-file`` reads;
:func:`ingest_events` sends them through the ingest pipeline directly (``esports import --ingest``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from edgefinder.esports.importers.common import (
    RULES_VERSION,
    ImportReport,
    MalformedSource,
    MatchBuilder,
    to_json_line,
)
from edgefinder.esports.sources import Entry, StatelessSource

__all__ = [
    "FORMATS",
    "RULES_VERSION",
    "ImportReport",
    "MalformedSource",
    "import_files",
    "ingest_events",
    "iter_lines",
    "write_jsonl",
]

FORMATS: tuple[str, ...] = ("awpy", "esea", "ribgg")


def import_files(
    fmt: str, paths: Sequence[str | Path], **options: Any
) -> tuple[list[MatchBuilder], ImportReport]:
    """Run the importer of ``fmt`` (awpy, esea or ribgg) over ``paths`` (files or directories).

    ``options``: ``tick_rate`` (awpy, ticks per second, default 128).
    """
    from edgefinder.esports.importers.awpy import import_awpy
    from edgefinder.esports.importers.esea import import_esea
    from edgefinder.esports.importers.ribgg import import_ribgg

    runners: dict[str, Callable[..., tuple[list[MatchBuilder], ImportReport]]] = {
        "awpy": import_awpy,
        "esea": import_esea,
        "ribgg": import_ribgg,
    }
    if fmt not in runners:
        raise MalformedSource(f"unknown import format {fmt!r}; known: {', '.join(FORMATS)}")
    if not paths:
        raise MalformedSource("no input files given")
    return runners[fmt](list(paths), **options)


def iter_lines(builders: Sequence[MatchBuilder]) -> Iterator[str]:
    """JSONL lines of every map, each map's events in game-time order."""
    for b in builders:
        for ev in b.sorted_items():
            yield to_json_line(ev)


def write_jsonl(builders: Sequence[MatchBuilder], out: IO[str]) -> int:
    """Write every event as one JSON line; returns the number of lines."""
    n = 0
    for line in iter_lines(builders):
        out.write(line + "\n")
        n += 1
    return n


class _LineSource(StatelessSource):
    """The imported events as an ingest batch source (entry id = line number, nothing to ack)."""

    def __init__(self, name: str, lines: Iterator[str]) -> None:
        self.name = name
        self._lines = lines
        self._n = 0
        self._done = False

    def read(self, count: int, block_ms: int = 0) -> list[Entry]:
        out: list[Entry] = []
        for line in self._lines:
            self._n += 1
            out.append(Entry(str(self._n), line.encode("utf-8")))
            if len(out) >= count:
                return out
        self._done = True
        return out

    def drained(self) -> bool:
        return self._done


def ingest_events(
    builders: Sequence[MatchBuilder],
    database_url: str,
    pseudonym_key: str | bytes,
    *,
    source_name: str = "import",
    batch_size: int = 2000,
) -> Any:
    """Send the imported events through the ingest pipeline into ``database_url``.

    Returns the pipeline's :class:`~edgefinder.esports.ingest.IngestCounters`.
    """
    from edgefinder.esports.ingest import IngestConfig, make_pipeline, run_consumer

    pipeline = make_pipeline(database_url, pseudonym_key)
    try:
        src = _LineSource(source_name, iter_lines(builders))
        return run_consumer(src, pipeline, config=IngestConfig(batch_size=batch_size), once=True)
    finally:
        pipeline.engine.dispose()
