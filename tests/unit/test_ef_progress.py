"""``./ef``'s install step: a spinner with pip's current step on a terminal, nothing but pip's own quiet
output in a pipe. The ``with_progress`` function of the script runs a stand-in for pip that prints
a step and then waits until the test has seen that step on the terminal (a file it creates), so the
spinner is observed, not raced."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.esports_ops import REPO

FAKE_PIP = """
import pathlib, sys, time
print("Collecting numpy>=1.26", flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print("Installing collected packages: numpy", flush=True)
"""


def _script(tmp: Path) -> str:
    text = (REPO / "ef").read_text()
    start = text.index("with_progress() {")
    end = text.index("\n}\n", start) + 3
    (tmp / "fake_pip.py").write_text(FAKE_PIP)
    return f'set -euo pipefail\n{text[start:end]}\nwith_progress "{sys.executable}" {tmp / "fake_pip.py"} {tmp / "go"}\n'


def test_a_terminal_sees_a_spinner_with_pips_current_step(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        ["bash", "-c", _script(tmp_path)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    seen = b""
    try:
        while b"Collecting numpy" not in seen:
            seen += os.read(controller, 4096)
        (tmp_path / "go").touch()
        assert proc.wait(timeout=60) == 0
        try:
            while chunk := os.read(controller, 4096):
                seen += chunk
        except OSError:  # the terminal closes with the process
            pass
    finally:
        os.close(controller)
    assert b"\r\x1b[K" in seen  # redrawn in place
    assert b"\n" not in seen  # one line redrawn: pip's log goes to a file, not the terminal
    assert seen.endswith(b"\r\x1b[K")  # the spinner line is wiped at the end


def test_a_pipe_gets_no_spinner(tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    proc = subprocess.run(
        ["bash", "-c", _script(tmp_path)], capture_output=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0
    assert b"\r" not in proc.stderr and b"\x1b" not in proc.stderr
    # the stand-in ignores --quiet, so its lines are what pip -q would let through
    assert proc.stderr.decode().splitlines() == [
        "Collecting numpy>=1.26",
        "Installing collected packages: numpy",
    ]
