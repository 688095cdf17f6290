"""The whole service stack on this machine with one command: migrations, then honcho.

``edgefinder stack`` applies the migrations and hands over to honcho (an existing Procfile process
manager), which starts the processes of the packaged :data:`PROCFILE` (stream consumers, Celery
worker and beat, the API), prefixes their output with their names and, when one stops or on
Ctrl-C/SIGTERM, stops them all. ``deploy/compose.yaml`` starts the same processes in containers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from edgefinder.errors import EdgefinderError
from edgefinder.settings import Settings

__all__ = ["PROCFILE", "process_names", "stack_argv", "stack_env"]

#: The packaged Procfile (ships in the wheel).
PROCFILE = Path(__file__).with_name("Procfile")


def process_names(procfile: Path = PROCFILE) -> list[str]:
    """The process names of a Procfile, in file order."""
    from honcho.environ import parse_procfile

    return list(parse_procfile(procfile.read_text()).processes)


def stack_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """``base`` with this interpreter's scripts first on PATH and the settings given as flags
    written back as ``EDGEFINDER_*`` variables, so every process of the stack sees them."""
    env = dict(base)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    given = {
        "EDGEFINDER_DATABASE_URL": settings.effective_database_url,
        "EDGEFINDER_REDIS_URL": settings.redis_url,
        "EDGEFINDER_REDIS_PREFIX": settings.redis_prefix,
        "EDGEFINDER_DATA_DIR": str(settings.data_dir),
        "EDGEFINDER_LOG_LEVEL": settings.log_level,
        "EDGEFINDER_API_TOKEN": (
            settings.api_token.get_secret_value() if settings.api_token else None
        ),
    }
    env.update({k: v for k, v in given.items() if v is not None})
    return env


def stack_argv(procfile: Path, processes: list[str]) -> list[str]:
    """The honcho command line that runs ``processes`` (all when empty) of ``procfile``."""
    if importlib.util.find_spec("honcho") is None:
        raise EdgefinderError(
            "the stack needs honcho: pip install 'edgefinder[stack]' (./ef stack installs it)"
        )
    if not procfile.is_file():
        raise EdgefinderError(f"no Procfile at {procfile}")
    unknown = sorted(set(processes) - set(process_names(procfile)))
    if unknown:
        raise EdgefinderError(
            f"unknown process {', '.join(unknown)}: the Procfile has "
            f"{', '.join(process_names(procfile))}"
        )
    return [
        sys.executable,
        "-m",
        "honcho",
        "start",
        "--procfile",
        str(procfile.resolve()),
        "--app-root",
        os.getcwd(),
        *processes,
    ]
