"""The CLI's contract: command groups, --help everywhere, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
import typer.main
from typer.testing import CliRunner

from edgefinder.cli import app

runner = CliRunner()


def _walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, path + (name,))


def test_top_level_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("demo", "serve", "db", "esports", "markets"):
        assert group in result.output


def test_every_command_has_a_help_text() -> None:
    root = typer.main.get_command(app)
    paths = list(_walk(root))
    assert ("db", "upgrade") in paths and ("db", "sql") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgefinder", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--database-url", "postgresql://nobody@127.0.0.1:1/none", "db", "upgrade"],
            "cannot connect to database",
        ),
        (["--database-url", "mysql://x@y/z", "db", "upgrade"], "only sqlite:/// and postgresql://"),
        (["markets", "walk-forward", "--data", "DATA/ATLAS", "--out", "x"], "SYMBOL=PATH"),
        (["markets", "walk-forward", "--data", "XYZ=.", "--out", "x"], "unknown instrument 'XYZ'"),
        (["markets", "walk-forward", "--data", "MNQ=/nonexistent", "--out", "x"], "not found"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], expected: str) -> None:
    proc = _run_cli(*args)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "INFO" not in ln]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "args", [["esports", "analyze"], ["db", "upgrade"], ["report", "--out", "{tmp}/r.html"]]
)
def test_a_sqlite_url_whose_directory_does_not_exist_is_an_error(tmp_path, args) -> None:
    missing = tmp_path / "nonexistent_dir"
    url = f"sqlite:///{(missing / 'x.db').as_posix()}"
    proc = _run_cli("--database-url", url, *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 1, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"error: database URL {url!r}: directory {missing} does not exist (create it first)"
    ]
    assert list(tmp_path.iterdir()) == []  # no directory, no database, no report


def test_verbose_shows_the_traceback() -> None:
    proc = _run_cli(
        "--verbose", "--database-url", "postgresql://nobody@127.0.0.1:1/none", "db", "upgrade"
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_environment_variable_is_used_and_flag_overrides_it(tmp_path) -> None:
    bad = {"EDGEFINDER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    assert _run_cli("db", "upgrade", env=bad).returncode != 0
    good = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    proc = _run_cli("--database-url", good, "db", "upgrade", env=bad)
    assert proc.returncode == 0, proc.stderr
    assert "0001" in proc.stdout or "revision" in proc.stdout
