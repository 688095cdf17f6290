"""Errors the CLI reports as one clear line (no traceback unless --verbose)."""


class EdgefinderError(Exception):
    """An expected failure with a message meant for the user."""


class ConfigError(EdgefinderError):
    """A setting is malformed (bad URL, bad path, bad value)."""


class ConnectionFailed(EdgefinderError):
    """A server named in the settings could not be reached."""
