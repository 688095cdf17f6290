"""One date type for every command's date flags, parsed by pydantic, with one message for all of them.

A date flag takes ``YYYY-MM-DD``; the flags that mark a moment (``markets run --train-until`` and
``--forward-until``) also take an ISO-8601 date-time (``YYYY-MM-DDTHH:MM[:SS][+HH:MM]``, naive =
UTC). Text that does not start with a four-digit year (``20240101``, epoch seconds) is refused:
pydantic would read digits as epoch seconds, which no one typing a date means.

:data:`DATE` and :data:`MOMENT` are the click types the commands declare (``click_type=DATE``); a
bad value is a one-line :class:`DateFlagError` naming the flag, before the command runs anything.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import click
from pydantic import TypeAdapter, ValidationError

from edgefinder.errors import EdgefinderError

__all__ = ["DATE", "MOMENT", "DateFlagError", "DateParam", "parse_date"]

_LEADING_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DAY: TypeAdapter[_dt.date] = TypeAdapter(_dt.date)
# date first: a plain date (or one at midnight) stays a date, so it can mean a whole session
_DAY_OR_TIME: TypeAdapter[_dt.date | _dt.datetime] = TypeAdapter(_dt.date | _dt.datetime)


class DateFlagError(EdgefinderError):
    """A date flag's value is not a date (or, where allowed, an ISO date-time)."""


def _expected(with_time: bool) -> str:
    return "a date YYYY-MM-DD" + (" or a date-time YYYY-MM-DDTHH:MM (UTC)" if with_time else "")


def parse_date(value: Any, flag: str, *, with_time: bool = False) -> _dt.date:
    """``value`` (text, ``date`` or, with ``with_time``, ``datetime``) as a date or datetime.

    ``flag`` names the option in the error; ``with_time`` also accepts an ISO date-time (a
    ``datetime`` is returned then, naive = UTC). Raises :class:`DateFlagError` with the one message
    every date flag shares.
    """
    if isinstance(value, _dt.datetime):
        if with_time:
            return value
    elif isinstance(value, _dt.date):
        return value
    text = str(value).strip()
    try:
        if not _LEADING_DATE.match(text):
            raise ValueError(text)
        return (_DAY_OR_TIME if with_time else _DAY).validate_python(text)
    except (ValueError, ValidationError):
        raise DateFlagError(f"{flag} must be {_expected(with_time)}, got {value!r}") from None


class DateParam(click.ParamType):
    """The click type of a date flag (see the module doc)."""

    def __init__(self, with_time: bool = False) -> None:
        self.with_time = with_time
        self.name = "YYYY-MM-DD" + ("[THH:MM]" if with_time else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        flag = (param.opts[0] if param is not None and param.opts else None) or "date"
        return parse_date(value, flag, with_time=self.with_time)


#: ``YYYY-MM-DD``
DATE = DateParam()
#: ``YYYY-MM-DD`` or an ISO date-time (naive = UTC)
MOMENT = DateParam(with_time=True)
