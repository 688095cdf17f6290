"""The ``edgefinder`` command line: ``demo | report | serve | db | esports … | markets …``.

Expected failures (:class:`~edgefinder.errors.EdgefinderError`, a bad setting, an unreachable
server) print one line and exit 1; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated

import click
import typer
from pydantic import ValidationError

from edgefinder import settings as settings_mod
from edgefinder.console import Console, set_wide
from edgefinder.errors import EdgefinderError, first_line
from edgefinder.esports.cli import esports_app
from edgefinder.markets.cli import markets_app

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="edgefinder",
    help="Find statistically robust edges: esports macro-strategy analytics and futures research.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="Database schema: apply migrations or print them as SQL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(esports_app, name="esports")
app.add_typer(markets_app, name="markets")

_verbose = False


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"edgefinder {version('edgefinder')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _global(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL, sqlite:///… or postgresql://… [env EDGEFINDER_DATABASE_URL]"
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="redis://host:port/db; unset = embedded files [env EDGEFINDER_REDIS_URL]"
        ),
    ] = None,
    redis_prefix: Annotated[
        str | None, typer.Option(help="Prefix for every Redis key [env EDGEFINDER_REDIS_PREFIX]")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory for embedded data [env EDGEFINDER_DATA_DIR]")
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option(help="Bearer token for POST /run-analysis [env EDGEFINDER_API_TOKEN]"),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR [env EDGEFINDER_LOG_LEVEL]")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.")
    ] = False,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="Print every table whole at the width its content needs (on a terminal, a "
            "table wider than the screen is otherwise split into tables that fit).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Settings come from flags, then EDGEFINDER_* variables, then defaults (see README)."""
    global _verbose
    _verbose = verbose
    set_wide(wide)
    s = settings_mod.configure(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        data_dir=data_dir,
        api_token=api_token,
        log_level=log_level,
    )
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if s.log_level != "DEBUG":
        # Alembic announces every plugin and step at INFO; that is noise for a CLI user.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


@app.command()
def demo(
    report: Annotated[
        bool,
        typer.Option(
            "--report", help="Also write the HTML report of the demo run and print its path."
        ),
    ] = False,
) -> None:
    """Run every pipeline on generated data with the embedded default (SQLite, files) and summarize."""
    from edgefinder.demo import run_demo

    run_demo(settings_mod.get_settings(), console, report=report)


@app.command("report")
def report_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", dir_okay=False, help="HTML file to write.")
    ] = Path("report.html"),
    esports_run: Annotated[
        str | None,
        typer.Option(
            "--esports-run",
            help="Run id of the esports section (default: the latest succeeded run).",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            file_okay=False,
            help="Futures checkpoints "
            f"[env EDGEFINDER_CHECKPOINT_DIR, default {settings_mod.setting_default('checkpoint_dir')}].",
        ),
    ] = None,
) -> None:
    """Write the HTML report of both pipelines: one self-contained file (opens offline) from the
    database and the futures checkpoints; `edgefinder serve` shows the same page at /report."""
    from edgefinder.report import build_report, write_report
    from edgefinder.store.engine import check_connection, make_engine

    s = settings_mod.get_settings()
    url = s.effective_database_url
    engine = make_engine(url)
    try:
        check_connection(engine)
        built = build_report(
            engine,
            url,
            checkpoint_dir or s.checkpoint_dir,
            run_id=esports_run,
            stale_after_s=s.results_stale_after_s,
        )
    finally:
        engine.dispose()
    path = write_report(built, out)
    es, fu = built.esports, built.futures
    console.print(f"esports: {es['run']['run_id'] if es['run'] else es['message']}", soft_wrap=True)
    console.print(
        f"futures: {fu['checkpoint_dir'] if fu['available'] else fu['message']}", soft_wrap=True
    )
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)", soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the analytics API (FastAPI; docs at /docs, prefix /api/v1/analytics)."""
    import uvicorn

    from edgefinder.app import create_app
    from edgefinder.store.migrate import upgrade

    s = settings_mod.get_settings()
    upgrade(s.effective_database_url)  # checks the connection first; a no-op when up to date
    uvicorn.run(create_app(s), host=host, port=port, log_level=s.log_level.lower())


@app.command()
def stack(
    processes: Annotated[
        list[str] | None,
        typer.Argument(help="Processes to start (default: all of the Procfile)."),
    ] = None,
    procfile: Annotated[
        Path | None,
        typer.Option(
            "--procfile", dir_okay=False, help="Another Procfile (default: the packaged one)."
        ),
    ] = None,
) -> None:
    """Start the service stack with one command: apply the migrations, then honcho runs the stream
    consumers, the Celery worker and beat and the API (needs EDGEFINDER_REDIS_URL; Ctrl-C stops all)."""
    import os

    from edgefinder.stack import PROCFILE, stack_argv, stack_env
    from edgefinder.store.migrate import upgrade

    s = settings_mod.get_settings()
    if not s.redis_url:
        raise EdgefinderError(
            "the stack needs Redis (streams and Celery's broker): set EDGEFINDER_REDIS_URL or pass --redis-url"
        )
    argv = stack_argv(procfile or PROCFILE, processes or [])
    upgrade(s.effective_database_url)  # before any process starts; checks the connection first
    sys.stdout.flush()
    sys.stderr.flush()
    # honcho takes this process's place, so a signal sent to it reaches the process manager itself.
    os.execve(argv[0], argv, stack_env(s, dict(os.environ)))


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the migrations to the configured database (safe to run again)."""
    from edgefinder.store.migrate import upgrade

    s = settings_mod.get_settings()
    rev = upgrade(s.effective_database_url, revision)
    console.print(f"database at revision [bold]{rev}[/bold]")


@db_app.command("sql")
def db_sql(
    dialect: Annotated[str, typer.Option(help="postgresql or sqlite.")] = "postgresql",
) -> None:
    """Print the migrations as plain SQL (what migrations/create_analytics_tables.sql holds)."""
    from edgefinder.store.migrate import render_sql

    urls = {
        "postgresql": "postgresql://edgefinder@localhost/edgefinder",
        "sqlite": "sqlite:///edgefinder.sqlite3",
    }
    if dialect not in urls:
        raise EdgefinderError(f"unknown dialect {dialect!r}: use postgresql or sqlite")
    sys.stdout.write(render_sql(urls[dialect]))


@db_app.command("current")
def db_current() -> None:
    """Print the revision the configured database is at."""
    from edgefinder.store.engine import check_connection, make_engine
    from edgefinder.store.migrate import current_revision

    s = settings_mod.get_settings()
    engine = make_engine(s.effective_database_url)
    check_connection(engine)
    engine.dispose()
    console.print(
        current_revision(s.effective_database_url) or "empty (run `edgefinder db upgrade`)"
    )


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        return f"invalid setting {where}: {first.get('msg')}"
    msg = first_line(exc)
    return msg if isinstance(exc, EdgefinderError) else f"{type(exc).__name__}: {msg}"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="edgefinder", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _verbose or "--verbose" in args or "-v" in args:
            traceback.print_exc()
        err_console.print(
            f"[bold red]error:[/bold red] {_one_line(exc)}", highlight=False, soft_wrap=True
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
