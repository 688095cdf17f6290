"""What a person sees in a terminal 80 and 120 columns wide, and in a pipe.

tmux runs the command in a pane of a fixed width (a real terminal: Rich sizes its output from the
pane, nothing sets ``COLUMNS``); the pane's whole history is read back with ``capture-pane``. The
test waits on a tmux channel the command signals when it exits (``wait-for``), not on a timer.

In the terminal every table fits the pane and no cell is wrapped or cut (a table wider than the
pane is split into tables that repeat its first column); in a pipe nothing is wrapped at 80 columns,
tables and prose alike.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runs import clean_env, run_edgefinder
from tests.e2e.conftest import DemoRun
from tests.terminal import broken_table_lines, table_count

pytestmark = pytest.mark.slow

WIDTHS = (80, 120)


def in_tmux(args: list[str], columns: int, cwd: Path, env: dict[str, str]) -> str:
    """``edgefinder ARGS`` in a tmux pane ``columns`` wide; the pane's history once it exited."""
    tmux = shutil.which("tmux")
    assert tmux, "tmux is needed (Debian package tmux; .ci/run installs it)"
    sock = cwd / "tmux.sock"
    conf = cwd / "tmux.conf"
    conf.write_text("set -g history-limit 100000\nset -g remain-on-exit on\n")
    cmd = shlex.join([sys.executable, "-m", "edgefinder", *args])
    done = f"{shlex.quote(tmux)} -S {shlex.quote(str(sock))} wait-for -S edgefinder-done"
    base = [tmux, "-S", str(sock), "-f", str(conf)]
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "TMUX")}
    subprocess.run(
        [*base, "new-session", "-d", "-x", str(columns), "-y", "40", "-s", "ef", f"{cmd}; {done}"],
        cwd=cwd,
        env=env,
        check=True,
    )
    try:
        subprocess.run([*base, "wait-for", "edgefinder-done"], check=True, timeout=1200)
        return subprocess.run(
            [*base, "capture-pane", "-p", "-S", "-", "-t", "ef"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], check=False)


def _fits(screen: str, columns: int) -> None:
    assert table_count(screen) >= 1, screen
    assert broken_table_lines(screen) == [], screen
    assert max(len(line.rstrip()) for line in screen.splitlines()) <= columns


@pytest.mark.parametrize("columns", WIDTHS)
def test_analyze_fits_the_terminal(demo_run: DemoRun, tmp_path: Path, columns: int) -> None:
    db = shutil.copy(demo_run.database, tmp_path / "demo.sqlite3")
    env = clean_env(EDGEFINDER_DATA_DIR=str(tmp_path / "data"))
    screen = in_tmux(
        ["--database-url", f"sqlite:///{Path(db).as_posix()}", "esports", "analyze"],
        columns,
        tmp_path,
        env,
    )
    _fits(screen, columns)
    assert "Causal effect of each intent on round win" in screen
    if columns == 80:  # the causal table needs more than 80 columns: split, first column repeated
        assert "(continued)" in screen
        assert screen.count("┃ feature") > table_count(screen) // 2


@pytest.mark.parametrize("columns", WIDTHS)
def test_demo_fits_the_terminal(tmp_path: Path, columns: int) -> None:
    env = clean_env(EDGEFINDER_DATA_DIR=str(tmp_path / "data"))
    screen = in_tmux(["demo"], columns, tmp_path, env)
    _fits(screen, columns)
    assert "Futures research pipeline" in screen and "done in" in screen


def test_piped_output_is_never_wrapped_at_80_columns(demo_run: DemoRun, tmp_path: Path) -> None:
    db = shutil.copy(demo_run.database, tmp_path / "demo.sqlite3")
    proc = run_edgefinder(
        ["--database-url", f"sqlite:///{Path(db).as_posix()}", "esports", "analyze"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for out in (proc.stdout, demo_run.stdout):
        assert broken_table_lines(out) == []
        assert max(len(line) for line in out.splitlines()) > 80
    # prose is one line whatever its length: the sentences below are longer than 80 columns
    hidden = [ln for ln in proc.stdout.splitlines() if "significant in-round associations" in ln]
    assert len(hidden) == 1 and hidden[0].rstrip().endswith("not edges.") and len(hidden[0]) > 80
    sim = [ln for ln in demo_run.stdout.splitlines() if ln.startswith("1. simulated")]
    assert len(sim) == 1 and "(truth:" in sim[0] and len(sim[0]) > 80
