"""The whole service stack as `edgefinder stack` starts it, with Prometheus watching it.

``edgefinder stack`` (honcho running the packaged Procfile: stream consumers, Celery worker and beat,
the API) runs against the local Postgres (a database of its own) and Redis (a key prefix of its own)
on free ports, beside Debian's ``prometheus`` scraping the API, the consumers and the worker with the
shipped configuration and alert rules. A simulated season is published to the Redis streams with
``esports publish``; the test then reads, as an operator would:

* the consumers' counter from Prometheus's query API: every published entry ingested, at a rate;
* the results of a run beat scheduled after the season landed, from the API: the whole season;
* each process's ``/metrics``: every metric of the dashboard and the alert rules is exported by one of
  them, rates only over counters.

At the end SIGTERM goes to the stack (honcho stops its processes) and to Prometheus; no process
either of them started may remain.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.cli_runs import clean_env, run_edgefinder
from tests.conftest import PG_ADMIN_URL, SESSION_TAG
from tests.esports_ops import REPO, wait_until
from tests.promql import (
    METRIC,
    RULES,
    dashboard_exprs,
    misused,
    prometheus_tool,
    rule_exprs,
    sample_types,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

MATCHES, SEED = 40, 3
TOKEN = "stack-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _processes() -> dict[int, tuple[int, str]]:
    """Live processes: pid -> (parent pid, start time in clock ticks) (from /proc; zombies left out)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # state, ppid, …, starttime is the 20th after the name
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def _tree(root: int) -> set[tuple[int, str]]:
    """``root`` and its descendants as (pid, start time), so a reused pid is not mistaken for them.
    (honcho starts every process in a session of its own: the process tree, not the session, finds
    them.)"""
    table = _processes()
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.add((pid, table[pid][1]))
            todo += [child for child, (parent, _) in table.items() if parent == pid]
    return found


def _alive(procs: set[tuple[int, str]]) -> list[int]:
    table = _processes()
    return sorted(pid for pid, start in procs if pid in table and table[pid][1] == start)


@dataclass
class Started:
    """A process started in a session of its own, logging to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> list[int]:
        """SIGTERM, wait for it and every process it started to end; returns the pids that had to
        be killed."""
        procs = _tree(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        try:
            wait_until(lambda: not _alive(procs), 30, f"the {self.name} processes to end")
            return []
        except AssertionError:
            left = _alive(procs)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            return left


def _start(name: str, args: list[str], env: dict[str, str], cwd: Path) -> Started:
    log = cwd / f"{name}.log"
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Started(name, proc, log)


def _prometheus_config(tmp: Path, ports: dict[str, int]) -> Path:
    """The shipped configuration with the targets on this machine's ports and a 1 s scrape."""
    cfg = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    cfg["rule_files"] = [str(RULES)]
    for job in cfg["scrape_configs"]:
        process = job["job_name"].removeprefix("edgefinder-")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[process]}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass(frozen=True)
class Stack:
    api: str
    prometheus: str
    metrics: dict[str, str]  # process -> its /metrics URL
    env: dict[str, str]
    tmp: Path
    published: int
    team_rounds: int


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, redis_session_prefix: str
) -> Iterator[Stack]:
    from edgefinder.store.engine import temporary_database

    prometheus = prometheus_tool("prometheus")
    promtool = prometheus_tool("promtool")
    tmp = tmp_path_factory.mktemp("stack")
    ports = {name: _free_port() for name in ("api", "ingest", "worker", "prometheus")}
    stopped: list[tuple[str, list[int]]] = []
    with ExitStack() as cleanup:
        try:
            db = cleanup.enter_context(temporary_database(PG_ADMIN_URL, f"{SESSION_TAG}_stack"))
        except Exception as exc:
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432: {exc}")
        env = clean_env(
            EDGEFINDER_DATABASE_URL=db,
            EDGEFINDER_REDIS_URL=redis_url,
            EDGEFINDER_REDIS_PREFIX=f"{redis_session_prefix}stack:",
            EDGEFINDER_DATA_DIR=str(tmp / "data"),
            EDGEFINDER_API_TOKEN=TOKEN,
            EDGEFINDER_API_PORT=str(ports["api"]),
            EDGEFINDER_INGEST_METRICS_PORT=str(ports["ingest"]),
            EDGEFINDER_WORKER_METRICS_PORT=str(ports["worker"]),
            EDGEFINDER_ANALYSIS_SCHEDULE="@every 5s",
        )
        config = _prometheus_config(tmp, ports)
        check = subprocess.run(
            [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
        honcho = _start("stack", [sys.executable, "-m", "edgefinder", "stack"], env, tmp)
        cleanup.callback(lambda: stopped.append(("stack", honcho.stop())))
        prom = _start(
            "prometheus",
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            clean_env(),
            tmp,
        )
        cleanup.callback(lambda: stopped.append(("prometheus", prom.stop())))
        metrics = {
            name: f"http://127.0.0.1:{ports[name]}/metrics" for name in ("api", "ingest", "worker")
        }

        def up(url: str) -> bool:
            try:
                return requests.get(url, timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        for name, url in metrics.items():
            wait_until(lambda u=url: up(u), 120, f"{name}'s /metrics ({honcho.text()[-3000:]})")
        commands = [
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            for pid, _ in _tree(honcho.proc.pid)
        ]
        for part in ("esports ingest", "esports worker", "esports beat", "edgefinder serve"):
            assert sum(part in c for c in commands) == 1, (part, commands)
        prom_url = f"http://127.0.0.1:{ports['prometheus']}"
        # the consumers' counter is in Prometheus at 0 before anything is published
        wait_until(
            lambda: _query(prom_url, "sum(edgefinder_events_ingested_total)") == 0.0,
            60,
            "Prometheus to scrape the consumers",
        )
        events = tmp / "season.jsonl"
        sim = run_edgefinder(
            ["esports", "simulate", "-n", str(MATCHES), "--seed", str(SEED), "--out", str(events)],
            tmp,
            env,
        )
        assert sim.returncode == 0, sim.stderr
        pub = run_edgefinder(["esports", "publish", str(events)], tmp, env)
        assert pub.returncode == 0, pub.stderr
        truth = json.loads(events.with_name("season.truth.json").read_text())
        published = sum(1 for line in events.open() if line.strip())
        yield Stack(
            api=f"http://127.0.0.1:{ports['api']}/api/v1/analytics",
            prometheus=prom_url,
            metrics=metrics,
            env=env,
            tmp=tmp,
            published=published,
            team_rounds=int(truth["team_rounds"]),
        )
    leaked = [f"{name}: {pids}" for name, pids in stopped if pids]
    assert not leaked, f"processes left after SIGTERM (killed): {leaked}"


def _query(prometheus: str, expr: str, at: float | None = None) -> float | None:
    """One scalar from Prometheus's instant-query API (None: no series)."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = requests.get(f"{prometheus}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_every_published_entry_is_ingested_and_prometheus_sees_the_rate(stack: Stack) -> None:
    wait_until(
        lambda: (
            _query(stack.prometheus, "sum(edgefinder_events_ingested_total)") == stack.published
        ),
        300,
        f"{stack.published} ingested entries in Prometheus",
    )
    done = time.time()
    rate = _query(stack.prometheus, "sum(rate(edgefinder_events_ingested_total[2m]))", at=done)
    increase = _query(
        stack.prometheus, "sum(increase(edgefinder_events_ingested_total[2m]))", at=done
    )
    assert rate is not None and rate > 0
    # increase() extrapolates to the window's edges: about, not exactly, what was published
    assert increase == pytest.approx(stack.published, rel=0.25)


def test_a_scheduled_run_after_the_season_landed_reports_the_whole_season(stack: Stack) -> None:
    def summary() -> dict[str, Any]:
        return requests.get(f"{stack.api}/stats/summary", timeout=30).json()

    wait_until(lambda: summary()["team_rounds"] == stack.team_rounds, 300, "the season's rounds")
    landed = summary()
    assert landed["matches"] == MATCHES

    def later_run() -> dict[str, Any] | None:
        last = summary()["last_run"]
        if last and last["status"] == "succeeded" and last["n_rows"] == stack.team_rounds:
            return last
        return None

    run = wait_until(later_run, 300, "a scheduled run over the whole season")
    assert run["trigger"] == "schedule" and run["n_tests"] > 0
    top = requests.get(f"{stack.api}/top-correlations", params={"limit": 50}, timeout=30).json()
    assert top["count"] == len(top["results"]) > 0
    assert all(r["purpose"] == "research/ops" for r in top["results"])
    health = requests.get(f"{stack.api}/health", timeout=30).json()
    assert health["database"] == "ok" and health["redis"] == "ok"
    assert health["queued_not_picked_up"] == []


def test_each_process_exports_what_the_dashboard_and_rules_query(stack: Stack) -> None:
    types: dict[str, str] = {}
    with_samples: dict[str, set[str]] = {}
    for name, url in stack.metrics.items():
        text = requests.get(url, timeout=30).text
        types.update(sample_types(text))
        with_samples[name] = {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
    assert "edgefinder_events_ingested_total" in with_samples["ingest"]
    assert "process_cpu_seconds_total" in with_samples["worker"]
    exprs = [*dashboard_exprs(), *rule_exprs()]
    # every metric queried is declared (# TYPE) by one of the processes, with the type its function needs
    assert misused(exprs, types) == []
    assert len({m for e in exprs for m in METRIC.findall(e)}) >= 15


def test_prometheus_loaded_the_alert_rules(stack: Stack) -> None:
    body = requests.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()
    names = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
    shipped = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert names == shipped and len(shipped) >= 5
