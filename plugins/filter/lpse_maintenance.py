"""playbooks/maintenance.yml's check of a request, by lpse_status.maintenance (the same rules as
`fab maintenance-on` and the status board): `maintenance | lpse_maintenance_check(end, blackouts,
force)` gives {error, on, end_epoch, until, overlaps, forced}; `error`, when not empty, says what to
change."""

from __future__ import annotations

import time
from typing import Any

from lpse_status.maintenance import MaintenanceError, check, parse_blackouts, parse_switch


def lpse_maintenance_check(switch: Any, end: str | None = None, blackouts: Any = None, force: bool = False) -> dict:
    try:
        on = parse_switch(switch)
        plan = check(on, end, parse_blackouts(blackouts or []) if on else [], bool(force), time.time())
    except MaintenanceError as e:
        return {"error": str(e)}
    return plan.as_dict() | {"error": ""}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"lpse_maintenance_check": lpse_maintenance_check}
