"""Errors the CLI reports as one clear line (no traceback unless --verbose)."""


class EdgefinderError(Exception):
    """An expected failure with a message meant for the user."""


class ConfigError(EdgefinderError):
    """A setting is malformed (bad URL, bad path, bad value)."""


class ConnectionFailed(EdgefinderError):
    """A server named in the settings could not be reached."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (of the driver's error for a SQLAlchemy wrapper).

    For one-line reports: CLI errors, dead-letter reasons, log lines. An exception without a
    message gives its class name.
    """
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
