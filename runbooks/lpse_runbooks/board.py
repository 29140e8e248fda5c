"""The records kept on the monitoring server by `lpse-status`: the server room's visits (R4), the
incidents and their public updates, the helpdesk's reports from bidders (R14). These runbooks run
that command there over SSH, so on-call records them from the checkout like any other task.
Records, not changes to any server: nothing to confirm."""

from __future__ import annotations

import getpass
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

from lpse_runbooks.readonly import connect, diagnose
from lpse_runbooks.site import RunbookError, Site

LPSE_STATUS = "/opt/lpse-status/venv/bin/lpse-status"
Say = Callable[[str], None]


def lpse_status(site: Site, command: str, *args: str, say: Say = print) -> str:
    """`lpse-status COMMAND ARGS` on the monitoring server; its answer, said and returned."""
    mon = site.monitor()
    if mon is None:
        raise RunbookError(f"no monitoring server in the inventory: the {command} records are kept there")
    with connect(mon) as c:
        # As the board's own user: the records it writes stay the board's to change (its forms, its webhook).
        res = c.sudo(shlex.join([LPSE_STATUS, command, *args]), user="lpse-status", hide=True, warn=True, timeout=60)
    if res.exited != 0:
        raise RunbookError(
            res.stderr.strip().removeprefix(f"lpse-status {command}: ").removeprefix("lpse-status: ")
            or f"exit {res.exited} on {mon.name}"
        )
    say(res.stdout.rstrip())
    return str(res.stdout)


def optional(**given: str | list[str]) -> list[str]:
    """--name value for each option given (repeated for a list), none for an empty one."""
    out: list[str] = []
    for name, value in given.items():
        for v in [value] if isinstance(value, str) else value:
            out += [f"--{name.replace('_', '-')}", v] if v else []
    return out


def visit_in(
    site: Site, visitor: str, purpose: str, allowed_by: str, organisation: str = "", escort: str = "", at: str = "",
    say: Say = print,
) -> str:  # fmt: skip
    args = ["in", "--visitor", visitor, "--purpose", purpose, "--allowed-by", allowed_by]
    args += ["--organisation", organisation, "--escort", escort, "--recorded-by", getpass.getuser()]
    return lpse_status(site, "visits", *args, *optional(at=at), say=say)


def incident_open(site: Site, summary_id: str, message_id: str, summary_en: str = "", message_en: str = "",
                  severity: str = "major", affects: list[str] | None = None, say: Say = print) -> str:  # fmt: skip
    args = optional(summary_id=summary_id, summary_en=summary_en, severity=severity, affects=affects or [],
                    message_id=message_id, message_en=message_en, by=getpass.getuser())  # fmt: skip
    return lpse_status(site, "incidents", "open", *args, say=say)


def incident_update(site: Site, incident: str, state: str, message_id: str, message_en: str = "", severity: str = "",
                    affects: list[str] | None = None, say: Say = print) -> str:  # fmt: skip
    args = optional(state=state, message_id=message_id, message_en=message_en, severity=severity,
                    affects=affects or [], by=getpass.getuser())  # fmt: skip
    return lpse_status(site, "incidents", "update", incident, *args, say=say)


def helpdesk_add(site: Site, reporter: str, summary: str, urgency: str, impact: str, contact: str = "",
                 channel: str = "", incident: str = "", say: Say = print) -> str:  # fmt: skip
    args = optional(reporter=reporter, summary=summary, urgency=urgency, impact=impact, contact=contact,
                    channel=channel, incident=incident, by=getpass.getuser())  # fmt: skip
    return lpse_status(site, "helpdesk", "add", *args, say=say)


def escalate(site: Site, incident: str, host: str, say: Say = print) -> str:
    """R15: the host's diagnose bundle, made here, taken to the monitoring server, where
    `lpse-status escalate` packs it with the incident's timeline and Berita Acara and mails LKPP."""
    mon = site.monitor()
    if mon is None:
        raise RunbookError("no monitoring server in the inventory: the incident records are kept there")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = diagnose(site, host, Path(tmp))
        say(f"diagnose bundle of {host}: {bundle.name} ({bundle.stat().st_size / 1024:.0f} KiB)")
        remote = f"/var/tmp/{bundle.name}"
        with connect(mon) as c:
            c.put(str(bundle), remote)
            try:
                cmd = [LPSE_STATUS, "escalate", incident, "--attach", remote, "--out", "/var/lib/lpse-ops/escalations"]
                res = c.sudo(shlex.join(cmd), hide=True, warn=True, timeout=600)
            finally:
                c.sudo(f"rm -f {shlex.quote(remote)}", hide=True, warn=True)
    if res.exited != 0:
        raise RunbookError(res.stderr.strip().removeprefix("lpse-status escalate: ") or f"exit {res.exited}")
    say(res.stdout.rstrip())
    return str(res.stdout)
