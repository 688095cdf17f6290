"""What a person sees of a command's output in a pipe: Rich tables whose cells were wrapped or cut."""

from __future__ import annotations


def broken_table_lines(text: str) -> list[str]:
    """Lines of the Rich tables in ``text`` (default ``HEAVY_HEAD`` box) that show a cell wrapped or cut.

    A wrapped header takes a second ``┃`` line; a wrapped body cell continues on a ``│`` line whose first
    cell is blank (every table here has a non-empty first column); a cut cell ends in ``…``.
    """
    bad: list[str] = []
    in_table, header_lines = False, 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("┏"):
            in_table, header_lines = True, 0
        elif not in_table:
            continue
        elif s.startswith("└"):
            in_table = False
        elif s.startswith("┃"):
            header_lines += 1
            if header_lines > 1 or "…" in s:
                bad.append(line)
        elif s.startswith("│") and (not s.split("│")[1].strip() or "…" in s):
            bad.append(line)
    return bad


def table_count(text: str) -> int:
    """Rich tables (``┏`` top borders) in ``text``."""
    return sum(1 for line in text.splitlines() if line.strip().startswith("┏"))
