"""The clock the backup job takes its decisions from: when a full backup is due, which dumps
and snapshots retention keeps, when a drive is due to be swapped, what time a result is
recorded at.

It is the real time, unless `LPSE_BACKUP_NOW` holds an ISO 8601 time with a zone: the time-lapse
tests (tests/backup/test_timelapse.py) run weeks of nights in minutes that way, with the real
tools doing the real work between "days". Never set it on a server.
"""

from __future__ import annotations

import datetime as dt
import os

ENV = "LPSE_BACKUP_NOW"


def now() -> dt.datetime:
    value = os.environ.get(ENV, "")
    if not value:
        return dt.datetime.now(dt.UTC)
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"{ENV}={value!r} has no time zone")
    return when


def stamp(when: dt.datetime) -> str:
    """A sortable file-name stamp in UTC: 20261202T013000Z."""
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
