"""The server room's visit log (R4), kept on the monitoring server by `lpse-status visits`: these
runbooks run that command there over SSH, so on-call records a visit from the checkout like any
other task. A record, not a change to any server: nothing to confirm."""

from __future__ import annotations

import getpass
import shlex
from collections.abc import Callable

from lpse_runbooks.readonly import connect
from lpse_runbooks.site import RunbookError, Site

LPSE_STATUS = "/opt/lpse-status/venv/bin/lpse-status"


def visits(site: Site, *args: str, say: Callable[[str], None] = print) -> str:
    """`lpse-status visits ARGS` on the monitoring server; its answer, said and returned."""
    mon = site.monitor()
    if mon is None:
        raise RunbookError("no monitoring server in the inventory: the server room's visit log is kept there")
    with connect(mon) as c:
        res = c.sudo(shlex.join([LPSE_STATUS, "visits", *args]), hide=True, warn=True, timeout=60)
    if res.exited != 0:
        raise RunbookError(
            res.stderr.strip().removeprefix("lpse-status visits: ") or f"exit {res.exited} on {mon.name}"
        )
    say(res.stdout.rstrip())
    return str(res.stdout)


def visit_in(
    site: Site, visitor: str, purpose: str, allowed_by: str, organisation: str = "", escort: str = "", at: str = "",
    say: Callable[[str], None] = print,
) -> str:  # fmt: skip
    args = ["in", "--visitor", visitor, "--purpose", purpose, "--allowed-by", allowed_by]
    args += ["--organisation", organisation, "--escort", escort, "--recorded-by", getpass.getuser()]
    return visits(site, *args, *(["--at", at] if at else []), say=say)
