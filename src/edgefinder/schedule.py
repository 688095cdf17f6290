"""The beat schedule of the correlation job: crontab syntax, or ``@every <n>[s|m|h]`` for short intervals.

``EDGEFINDER_ANALYSIS_SCHEDULE`` holds it. Crontab fields are minute, hour, day of month, month,
day of week (Celery's crontab parser, so ``*/15``, ``1-5``, ``mon-fri`` and lists work); times are
UTC. ``@every 30s`` runs at a fixed interval (seconds, minutes or hours), which cron cannot express
below one minute: tests and demos use it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_EVERY = re.compile(r"^@every\s+(\d+(?:\.\d+)?)\s*([smh]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_schedule(text: str) -> Any:
    """A Celery schedule (``crontab`` or ``timedelta``) for ``text``; ValueError with the reason if invalid."""
    from celery.schedules import crontab

    value = text.strip()
    m = _EVERY.match(value)
    if m:
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
        if seconds < 1:
            raise ValueError(f"schedule {text!r}: the interval must be at least 1 second")
        return timedelta(seconds=seconds)
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"schedule {text!r}: expected 5 crontab fields (minute hour day month weekday, e.g. '0 2 * * *') "
            "or '@every 30s'"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        sched = crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
        # the crontab parses its fields lazily; touching them surfaces a bad field now
        _ = (sched.minute, sched.hour, sched.day_of_month, sched.month_of_year, sched.day_of_week)
    except Exception as exc:
        raise ValueError(f"schedule {text!r}: {exc}") from exc
    return sched
