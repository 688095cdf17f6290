"""The README's configuration table says what ``Settings`` says: same variables, defaults, meanings.

Each row is ``| `EDGEFINDER_X` | flag | default | meaning |``. The default cell starts with the
value in backticks (compared as the setting's type), or ``unset`` (None), ``empty`` ("") or ``a
fixed development key`` (a secret); a note in parentheses may follow. The meaning is the field's
``description`` (``\\|`` in the table is ``|``). The flag cell is ``—`` or options of the command it
names (``--x`` alone is a global option), and each must exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from pydantic import SecretStr

from edgefinder.cli import app
from edgefinder.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(EDGEFINDER_[A-Z0-9_]+)` \|")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
WORDS = {"unset": None, "empty": "", "a fixed development key": SecretStr}


def table_rows(text: str) -> dict[str, list[str]]:
    """Variable -> [flag, default, meaning] of the table under '## Configuration'."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip().strip("|"))]
        assert len(cells) == 4, line
        assert m.group(1) not in rows, f"{m.group(1)} appears twice"
        rows[m.group(1)] = [c.replace("\\|", "|") for c in cells[1:]]
    return rows


def parse_default(cell: str, like: Any) -> Any:
    """The value a default cell states, of the type of ``like`` (the setting's default)."""
    for word, value in WORDS.items():
        if cell == word or cell.startswith(word + " ("):
            return value
    m = re.fullmatch(r"`([^`]*)`(?: \(.*\))?", cell)
    assert m, f"default cell {cell!r}: expected `value`, unset, empty or a fixed development key"
    text = m.group(1)
    if isinstance(like, bool):
        return text.lower() == "true"
    if isinstance(like, (int, float, Path)):
        return type(like)(text)
    return text


def expected_default(default: Any) -> Any:
    return SecretStr if isinstance(default, SecretStr) else default


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", [])}


def flag_exists(root: click.Group, cell: str) -> bool:
    words = cell.strip("`").split()
    *path, flag = words
    command: click.Command = root
    for name in path:
        assert isinstance(command, click.Group), cell
        sub = command.commands.get(name)
        if sub is None:
            return False
        command = sub
    return flag in _options(command)


@pytest.fixture(scope="module")
def rows() -> dict[str, list[str]]:
    return table_rows(README.read_text(encoding="utf-8"))


def test_the_table_lists_every_setting_and_nothing_else(rows: dict[str, list[str]]) -> None:
    names = {f"EDGEFINDER_{n.upper()}" for n in Settings.model_fields}
    assert set(rows) == names, (
        f"missing from the README: {sorted(names - set(rows))}; "
        f"not settings: {sorted(set(rows) - names)}"
    )


def test_defaults_and_meanings_are_the_settings(rows: dict[str, list[str]]) -> None:
    wrong = []
    for name, field in Settings.model_fields.items():
        row = rows.get(f"EDGEFINDER_{name.upper()}")
        if row is None:
            wrong.append(f"{name}: no row")
            continue
        _, default, meaning = row
        if parse_default(default, field.default) != expected_default(field.default):
            wrong.append(f"{name}: README default {default!r}, Settings {field.default!r}")
        if meaning != field.description:
            wrong.append(f"{name}: README {meaning!r}, Settings description {field.description!r}")
    assert not wrong, "\n".join(wrong)


def test_every_flag_named_exists(rows: dict[str, list[str]]) -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    missing = []
    for name, (flags, _, _) in rows.items():
        if flags == "—":
            continue
        for cell in (c.strip() for c in flags.split(",")):
            if not flag_exists(root, cell):
                missing.append(f"{name}: {cell}")
    assert not missing, missing


def test_the_check_sees_a_drifted_default_and_a_missing_row() -> None:
    text = README.read_text(encoding="utf-8")
    drifted = text.replace(
        "| `EDGEFINDER_MATCH_DISTANCE` | `markets run --match-distance` | `3.0` |",
        "| `EDGEFINDER_MATCH_DISTANCE` | `markets run --match-distance` | `2.5` |",
    )
    assert drifted != text
    d = table_rows(drifted)["EDGEFINDER_MATCH_DISTANCE"][1]
    assert parse_default(d, 3.0) == 2.5 != Settings.model_fields["match_distance"].default
    trimmed = "\n".join(ln for ln in text.splitlines() if "`EDGEFINDER_SAMPLER`" not in ln)
    assert "EDGEFINDER_SAMPLER" not in table_rows(trimmed)
    assert parse_default("unset (`sqlite:///x`)", None) is None
    assert parse_default("`93600` (26 h)", 1.0) == 93600.0
    with pytest.raises(AssertionError):
        parse_default("3.0", 3.0)  # a value without backticks is not read
