"""The package as a user installs it: ``pip wheel . --no-deps`` installed in a fresh venv.

Every file under ``src/edgefinder`` ships in the wheel; the installed ``edgefinder`` imports from the
venv (not from the checkout), prints its version, completes commands in bash, and writes the report
three ways: ``demo --report`` (the session's ``demo_run``, which runs the wheel's ``edgefinder``),
``edgefinder report`` on the demo's database and checkpoints, and GET /report of ``edgefinder serve``. The report's browser test opens the page
the wheel's demo wrote.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest
import requests

from tests.cli_runs import clean_env
from tests.e2e.conftest import DemoRun
from tests.esports_ops import wait_until
from tests.wheel import REPO, WheelInstall

pytestmark = pytest.mark.slow


def _run(exe: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_wheel_holds_every_file_of_the_package(wheel_install: WheelInstall) -> None:
    package = REPO / "src" / "edgefinder"
    files = {
        p.relative_to(REPO / "src").as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "edgefinder/report/templates/report.html.j2" in files  # the walk sees data files
    missing = sorted(files - wheel_install.names())
    assert not missing, f"not in the wheel (add them to package-data in pyproject.toml): {missing}"


def test_the_installed_package_is_the_wheel_not_the_checkout(
    wheel_install: WheelInstall, tmp_path: Path
) -> None:
    proc = _run(
        wheel_install.python,
        ["-c", "import edgefinder, sys; print(edgefinder.__file__); print(sys.path)"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    where = Path(proc.stdout.splitlines()[0]).resolve()
    assert where.is_relative_to(wheel_install.venv.resolve()), where
    assert str(REPO / "src") not in proc.stdout


def test_version_matches_the_project(wheel_install: WheelInstall, tmp_path: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    proc = _run(wheel_install.edgefinder, ["--version"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"edgefinder {version}"


def test_bash_completion_completes_commands_and_options(
    wheel_install: WheelInstall, tmp_path: Path
) -> None:
    def complete(words: str) -> list[str]:
        proc = _run(
            wheel_install.edgefinder,
            [],
            tmp_path,
            _EDGEFINDER_COMPLETE="complete_bash",
            COMP_WORDS=words,
            COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("edgefinder esp") == ["esports"]
    assert {"simulate", "publish", "ingest", "analyze", "worker"} <= set(
        complete("edgefinder esports ")
    )
    assert "--report" in complete("edgefinder demo --")
    # what `--install-completion` would add to ~/.bashrc (the shell is detected from the parent)
    script = subprocess.run(
        # "; exit": bash stays the parent instead of exec'ing the command
        ["bash", "-c", f"{wheel_install.edgefinder} --show-completion; exit $?"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0, script.stderr
    assert "complete_bash" in script.stdout and "_EDGEFINDER_COMPLETE" in script.stdout


def test_demo_report_from_the_wheel(demo_run: DemoRun, wheel_install: WheelInstall) -> None:
    assert demo_run.report.is_file()
    html = demo_run.report.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and 'id="esports"' in html and 'id="futures"' in html
    assert f"report: {demo_run.report}" in demo_run.stdout


def test_report_command_from_the_wheel(
    demo_run: DemoRun, wheel_install: WheelInstall, tmp_path: Path
) -> None:
    out = tmp_path / "page.html"
    proc = _run(
        wheel_install.edgefinder,
        [
            "--database-url",
            f"sqlite:///{demo_run.database}",
            "report",
            "--checkpoint-dir",
            str(demo_run.checkpoints),
            "--out",
            str(out),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {out}" in proc.stdout
    assert f"futures: {demo_run.checkpoints}" in proc.stdout
    html = out.read_text(encoding="utf-8")
    run_id = next(
        line.removeprefix("esports: ").strip()
        for line in proc.stdout.splitlines()
        if line.startswith("esports: ")
    )
    assert len(run_id) == 36 and run_id in html  # a run id, shown on the page
    assert os.path.getsize(out) > 3_000_000  # plotly.js embedded


def test_the_wheels_api_serves_the_report(
    demo_run: DemoRun, wheel_install: WheelInstall, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = clean_env(
        EDGEFINDER_DATABASE_URL=f"sqlite:///{demo_run.database}",
        EDGEFINDER_CHECKPOINT_DIR=str(demo_run.checkpoints),
    )
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [str(wheel_install.edgefinder), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def page() -> requests.Response | None:
            try:
                return requests.get(f"http://127.0.0.1:{port}/report", timeout=60)
            except requests.ConnectionError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                return None

        answer = wait_until(page, 120, "the wheel's API to answer")
        assert answer.status_code == 200, answer.text[-2000:]
        assert 'id="esports"' in answer.text and 'id="futures"' in answer.text
    finally:
        server.terminate()
        server.wait(timeout=60)
