"""playbooks/maintenance.yml's check of a request, by lpse_status.maintenance (the same rules as
`fab maintenance-on` and the status board): `maintenance | lpse_maintenance_check(end, blackouts,
force, closings, ...)` gives {error, on, end_epoch, until, overlaps, forced}; `error`, when not empty, says what to
change."""

from __future__ import annotations

import time
from typing import Any

from lpse_status.maintenance import (
    MaintenanceError,
    check,
    closing_blackouts,
    parse_blackouts,
    parse_switch,
    site_zone,
)


def lpse_maintenance_check(switch: Any, end: str | None = None, blackouts: Any = None, force: bool = False,
                           closings: Any = None, before_minutes: float = 120, after_minutes: float = 30,
                           offset_hours: float = 7) -> dict:  # fmt: skip
    """`closings`: SPSE's own schedule (`lpse-exporter --spse-schedule`), a blackout around each."""
    try:
        on = parse_switch(switch)
        spse = closing_blackouts(closings or [], before_minutes * 60, after_minutes * 60, site_zone(offset_hours))
        plan = check(on, end, parse_blackouts(blackouts or []) + spse if on else [], bool(force), time.time())
    except MaintenanceError as e:
        return {"error": str(e)}
    return plan.as_dict() | {"error": ""}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"lpse_maintenance_check": lpse_maintenance_check}
