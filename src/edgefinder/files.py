"""Input file lists shared by the importers and the ATLAS builder."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from edgefinder.errors import EdgefinderError


def expand_paths(
    paths: Sequence[str | Path],
    suffixes: Iterable[str],
    error: Callable[[str], EdgefinderError] = EdgefinderError,
) -> list[Path]:
    """Files of ``paths``: a file as given, a directory's files ending in one of ``suffixes``
    (case-insensitive; sorted, not recursive).

    Raises ``error(message)`` for a path that does not exist or a directory without such files, so
    each caller reports its own kind of bad input in one line that names the path.
    """
    wanted = tuple(s.lower() for s in suffixes)
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(wanted)
            )
            if not found:
                raise error(f"{p}: no {' / '.join(wanted)} files in this directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise error(f"{p}: no such file or directory")
    return out
