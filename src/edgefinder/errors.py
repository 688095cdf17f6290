"""Errors the CLI reports as one clear line (no traceback unless --verbose)."""

#: Longest line :func:`first_line` returns, in characters. A driver's first line can carry a whole
#: SQL statement or payload, and these lines end up in API bodies, log lines and database columns.
FIRST_LINE_LIMIT = 300


class EdgefinderError(Exception):
    """An expected failure with a message meant for the user."""


class ConfigError(EdgefinderError):
    """A setting is malformed (bad URL, bad path, bad value)."""


class ConnectionFailed(EdgefinderError):
    """A server named in the settings could not be reached."""


def first_line(exc: BaseException, limit: int | None = FIRST_LINE_LIMIT) -> str:
    """The first line of an exception's message (of the driver's error for a SQLAlchemy wrapper).

    For one-line reports: CLI errors, API error bodies, dead-letter reasons, run errors, log lines.
    An exception without a message gives its class name. The line is cut (without a marker) to
    ``limit`` characters, :data:`FIRST_LINE_LIMIT` unless given; ``None`` keeps it whole.
    """
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    line = lines[0] if lines else type(orig).__name__
    return line if limit is None else line[:limit]
