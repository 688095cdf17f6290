"""The deployment files: deploy/compose.yaml against the Compose specification's JSON schema (the copy
check-jsonschema ships, so no network), every command of the compose services and of the stack's
Procfile against the CLI (and Celery's own options where the command hands them over), and the
Prometheus configuration against the ports the services use."""

from __future__ import annotations

import importlib.resources
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import typer
import yaml
from celery.bin.beat import beat as celery_beat
from celery.bin.worker import worker as celery_worker

from edgefinder.cli import app
from edgefinder.errors import EdgefinderError
from edgefinder.esports.metrics_endpoint import serve_metrics
from edgefinder.settings import Settings
from edgefinder.stack import PROCFILE, process_names, stack_argv, stack_env
from tests.cli_runs import clean_env, run_edgefinder
from tests.esports_ops import REPO

COMPOSE = REPO / "deploy" / "compose.yaml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
#: Commands that hand unknown options to Celery's own command.
CELERY = {("esports", "worker"): celery_worker, ("esports", "beat"): celery_beat}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    text = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return [e.message for e in cls(schema).iter_errors(doc)]


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def cli_problems(argv: list[str]) -> list[str]:
    """Why ``edgefinder ARGV`` would not parse: an unknown command or option (empty: it parses)."""
    command: click.Command = typer.main.get_command(app)
    path: list[str] = []
    args = list(argv)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = command.get_command(click.Context(command), name)
        if sub is None:
            return [f"no command {' '.join([*path, name])}"]
        command, path = sub, [*path, name]
    if isinstance(command, click.Group):
        return [f"{' '.join(path) or 'edgefinder'} needs a subcommand"]
    known = _options(command) | {"--help"}
    celery = CELERY.get(tuple(path))  # type: ignore[arg-type]
    if celery is not None:
        known |= _options(celery)
    return [
        f"{' '.join(path)}: no option {a.split('=')[0]}"
        for a in args
        if a.startswith("-") and a.split("=")[0] not in known
    ]


def test_compose_file_follows_the_compose_specification() -> None:
    doc = _compose()
    assert _schema_errors(doc) == []
    # the check can fail: a command that is a number, an unknown service key
    broken = json.loads(json.dumps(doc))
    broken["services"]["api"]["command"] = 8000
    broken["services"]["worker"]["restart_policy"] = "always"
    assert len(_schema_errors(broken)) >= 2


def test_compose_starts_every_part_of_the_stack() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "ingest",
        "worker",
        "beat",
        "api",
        "prometheus",
        "grafana",
    }
    redis = services["redis"]["command"]
    # at-least-once ingest across a Redis crash: every accepted entry is in the append-only file
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert redis[redis.index("--appendfsync") + 1] == "everysec"
    for name in ("ingest", "worker", "beat", "api"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    mounts = [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])]
    for m in (m for m in mounts if m.startswith(".")):
        assert (COMPOSE.parent / m).exists(), f"compose mounts {m}, which is not in deploy/"
    assert (REPO / services["api"]["build"]["dockerfile"]).is_file()


def test_every_compose_command_exists_in_the_cli() -> None:
    ours = {
        name: s
        for name, s in _compose()["services"].items()
        if s.get("image") == "edgefinder:local"
    }
    assert set(ours) == {"migrate", "ingest", "worker", "beat", "api"}
    for name, service in ours.items():
        assert cli_problems(service["command"]) == [], name


def test_every_procfile_command_exists_in_the_cli() -> None:
    lines = [line.split(":", 1) for line in PROCFILE.read_text().splitlines() if line[:1].isalpha()]
    assert [n for n, _ in lines] == process_names() == ["ingest", "worker", "beat", "api"]
    for name, command in lines:
        words = shlex.split(command)
        assert words[:2] == ["exec", "edgefinder"], name
        assert cli_problems(words[2:]) == [], name


@pytest.mark.parametrize(
    "argv",
    [
        ["esports", "ingst"],
        ["serve", "--bind", "x"],
        ["esports", "worker", "--pol", "solo"],
        ["db"],
    ],
)
def test_the_command_check_sees_what_would_not_parse(argv: list[str]) -> None:
    assert cli_problems(argv)


def test_prometheus_scrapes_the_ports_the_services_use() -> None:
    services = _compose()["services"]
    env = services["ingest"]["environment"]
    targets = {
        c["job_name"]: c["static_configs"][0]["targets"]
        for c in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    }
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert targets == {
        "edgefinder-api": [f"api:{api_port}"],
        "edgefinder-ingest": [f"ingest:{env['EDGEFINDER_INGEST_METRICS_PORT']}"],
        "edgefinder-worker": [f"worker:{env['EDGEFINDER_WORKER_METRICS_PORT']}"],
    }
    assert yaml.safe_load(PROMETHEUS.read_text())["rule_files"] == ["alerts.yml"]


def test_stack_refuses_with_one_line_what_it_cannot_start(tmp_path: Path) -> None:
    no_redis = run_edgefinder(["stack"], tmp_path, clean_env(EDGEFINDER_DATA_DIR=str(tmp_path)))
    assert no_redis.returncode == 1
    assert no_redis.stderr.strip().splitlines() == [
        "error: the stack needs Redis (streams and Celery's broker): set EDGEFINDER_REDIS_URL or "
        "pass --redis-url"
    ]
    unknown = run_edgefinder(
        ["--redis-url", "redis://127.0.0.1:1/0", "stack", "web"],
        tmp_path,
        clean_env(EDGEFINDER_DATA_DIR=str(tmp_path)),
    )
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "error: unknown process web: the Procfile has ingest, worker, beat, api"
    )
    assert not (tmp_path / "edgefinder.sqlite3").exists()  # refused before the migrations


def test_a_taken_metrics_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EdgefinderError, match=f"port {port}.*EDGEFINDER_INGEST_METRICS_PORT"):
            serve_metrics(port, "EDGEFINDER_INGEST_METRICS_PORT")


def test_the_image_copies_what_exists_and_runs_a_cli_command() -> None:
    lines = [
        line.split(maxsplit=1)
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line[:1].isupper()
    ]
    copies = [args.split()[:-1] for op, args in lines if op == "COPY" and "--from" not in args]
    assert copies and all((REPO / src).exists() for srcs in copies for src in srcs)
    entry = json.loads(next(args for op, args in lines if op == "ENTRYPOINT"))
    cmd = json.loads(next(args for op, args in lines if op == "CMD"))
    assert entry == ["edgefinder"] and cli_problems(cmd) == []


def test_settings_given_as_flags_reach_every_process_of_the_stack(tmp_path: Path) -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/3", redis_prefix="dev:", data_dir=tmp_path
    )
    env = stack_env(settings, {"PATH": "/usr/bin", "EDGEFINDER_REDIS_PREFIX": "other:"})
    assert env["PATH"].split(os.pathsep)[:2] == [str(Path(sys.executable).parent), "/usr/bin"]
    assert env["EDGEFINDER_REDIS_URL"] == "redis://127.0.0.1:6379/3"
    assert env["EDGEFINDER_REDIS_PREFIX"] == "dev:"  # the flag wins over the environment
    assert env["EDGEFINDER_DATABASE_URL"] == settings.effective_database_url
    assert "EDGEFINDER_API_TOKEN" not in env
    argv = stack_argv(PROCFILE, ["api", "worker"])
    assert argv[:4] == [sys.executable, "-m", "honcho", "start"] and argv[-2:] == ["api", "worker"]


def test_prometheus_and_grafana_find_the_mounted_files() -> None:
    services = _compose()["services"]
    mounts = {
        name: dict(v.split(":")[:2] for v in services[name]["volumes"] if v.startswith("."))
        for name in ("prometheus", "grafana")
    }
    prom = mounts["prometheus"]
    config_dir = Path(prom["./prometheus/prometheus.yml"]).parent
    for rule_file in yaml.safe_load(PROMETHEUS.read_text())["rule_files"]:
        assert prom[f"./prometheus/{rule_file}"] == str(config_dir / rule_file)
    graf = mounts["grafana"]
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    assert graf["./grafana/provisioning"] == "/etc/grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["isDefault"] is True
    assert "9090:9090" in services["prometheus"]["ports"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "edgefinder.yml").read_text())[
        "providers"
    ]
    dashboard_dir = Path(graf["./grafana/edgefinder.json"]).parent
    assert provider["options"]["path"] == str(dashboard_dir)
    # the dashboard's data source is its DS_PROMETHEUS variable, which picks the default source
    dash = json.loads((REPO / "deploy" / "grafana" / "edgefinder.json").read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == source["type"]
