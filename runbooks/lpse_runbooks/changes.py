"""Runbooks that change a server. Each one says what it is about to do, asks before doing it
(unless `yes`), and with `dry_run` only says it. What a playbook already does (maintenance,
restore) is done by that playbook, not written again here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lpse_status.maintenance import MaintenanceError, check

from lpse_runbooks.readonly import connect, gib, probe, wait_for_spse
from lpse_runbooks.site import REPO, RunbookError, Site

LPSE_BACKUP = "/opt/lpse-backup/venv/bin/lpse-backup"
Say = Callable[[str], None]


def confirm(question: str, yes: bool, ask: Callable[[str], str] = input) -> None:
    """Go on only with a yes: --yes, or "y" typed at a terminal. No terminal, no --yes: refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RunbookError(f"{question} — not confirmed: run it at a terminal to answer, or add --yes")
    if ask(f"{question} [y/N] ").strip().lower() not in ("y", "ya", "yes"):
        raise RunbookError("stopped: nothing was changed")


def restart_spse(site: Site, name: str, dry_run: bool, yes: bool, say: Say = print, wait_s: float = 180) -> float:
    """Restart SPSE and wait until its page answers again; returns the seconds it took."""
    h = site.host(name, "spse_servers")
    with connect(h) as c:
        before = probe(c, "host")
        page = before["spse"] or {}
        state = before["units"].get("spse", {}).get("active", "absent")
        say(f"{name}: SPSE is {page.get('state', '?')} ({page.get('detail', '')}); spse.service {state}")
        if dry_run:
            say(f"dry run: would run `systemctl restart spse` on {name} and wait up to {wait_s:.0f} s for the page")
            return 0.0
        confirm(f"restart SPSE on {name}? Bidders lose their session", yes)
        c.sudo("systemctl restart spse", hide=True)
        up, took, page = wait_for_spse(c, wait_s)
    if not up:
        raise RunbookError(
            f"SPSE on {name} did not come back within {wait_s:.0f} s ({page.get('detail', '')}): "
            f"run `fab diagnose {name}` and see SpseDown in docs/runbooks"
        )
    say(f"SPSE on {name} is up again after {took:.1f} s")
    return took


def playbook(site: Site, name: str, *extra: str, check: bool = False) -> list[str]:
    """The ansible-playbook command line for one of the project's playbooks on this site."""
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(site.inventory),
        str(REPO / "playbooks" / name),
    ]
    if check:
        cmd += ["--check", "--diff"]
    if not os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") and any(site.inventory.glob("group_vars/*/vault.yml")):
        cmd.append("--ask-vault-pass")
    return cmd + list(extra)


def run_playbook(cmd: list[str], say: Say) -> None:
    say("running: " + shlex.join(cmd[1:]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    res = subprocess.run(cmd, cwd=REPO, env=env)
    if res.returncode != 0:
        raise RunbookError(f"{Path(cmd[3]).name} failed (exit {res.returncode}): read its output above")


def maintenance(
    site: Site,
    on: bool,
    end: str,
    reason_id: str,
    reason_en: str,
    force: bool,
    dry_run: bool,
    yes: bool,
    say: Say = print,
) -> None:
    """Maintenance on (page up, alerts silenced until `end`, recorded) or off: playbooks/maintenance.yml."""
    extra: dict[str, object] = {"maintenance": "on" if on else "off"}
    if on:
        try:  # the end, before anything runs; the playbook checks the blackouts by the same rules
            check(True, end, [], force, time.time())
        except MaintenanceError as e:
            raise RunbookError(str(e).replace("-e maintenance_end=", "--end ")) from None
        extra |= {"maintenance_end": end, "maintenance_force": force}
        extra |= {"maintenance_reason_id": reason_id} if reason_id else {}
        extra |= {"maintenance_reason_en": reason_en} if reason_en else {}
    # One JSON -e: a reason with spaces or quotes reaches the page as typed.
    cmd = playbook(site, "maintenance.yml", "-e", json.dumps(extra), check=dry_run)
    if not dry_run:
        what = f"put the maintenance page up until {end}" if on else "end the maintenance"
        confirm(f"{what} on {', '.join(h.name for h in site.group('spse_servers'))}?", yes)
    run_playbook(cmd, say)


def restore(
    site: Site, name: str, source: str, when: str, dry_run: bool, yes: bool, force: bool = False, say: Say = print
) -> None:
    """Rebuild `name` as the SPSE server from the backups: playbooks/restore.yml (which refuses a
    server that still holds SPSE data unless `force`)."""
    site.host(name, "spse_servers")
    if source not in ("s3", "portable"):
        raise RunbookError("--source must be s3 (the off-room bucket) or portable (the drive in the server)")
    extra = ["--limit", name, "-e", f"restore_from={source}"] + (["-e", f"restore_time={when}"] if when else [])
    extra += ["-e", "restore_force=true"] if force else []
    cmd = playbook(site, "restore.yml", *extra)
    if dry_run:
        say("dry run: would run " + shlex.join(cmd[1:]))
        return
    confirm(
        f"replace the SPSE database and documents on {name} with the backup from {source}"
        + (f" at {when}" if when else " (latest)")
        + "? What is on the server now is lost",
        yes,
    )
    run_playbook(cmd, say)


def disk_cleanup(site: Site, name: str, dry_run: bool, yes: bool, say: Say = print) -> int:
    """Free space on the listed, safe targets only (probe.CLEANUP); returns the bytes freed (or
    that would be freed)."""
    h = site.host(name)
    with connect(h) as c:
        found = probe(c, "cleanup", "list")
        total = sum(t["bytes"] for t in found["targets"])
        for t in found["targets"]:
            say(f"  {t['target']:<18} {gib(t['bytes']):>9}  {len(t['paths'])} item(s): {t['what']}")
        say(f"{name}: {gib(total)} can be freed; {gib(found['root_avail'])} free on / now")
        if dry_run:
            say("dry run: nothing deleted (run with --no-dry-run to delete the items above)")
            return total
        if not total:
            say("nothing to delete")
            return 0
        confirm(f"delete the items above on {name}?", yes)
        done = probe(c, "cleanup", "apply")
    freed = sum(t["bytes"] for t in done["targets"])
    say(f"{name}: freed {gib(freed)}; {gib(done['root_avail'])} free on / now")
    return freed


def rotate_drive(site: Site, name: str, dry_run: bool, yes: bool, force: bool = False, say: Say = print) -> str:
    """Drive rotation at the server, one step per call. A drive that has just been plugged in (or
    none mounted yet): mount it, check it is of the rota and record its arrival. A drive that has
    been here: eject it for the safe, but only once every dataset was copied to it since it
    arrived. Returns what it did."""
    h = site.host(name, "spse_servers")
    with connect(h) as c:
        c.sudo(f"{LPSE_BACKUP} status", hide=True, warn=True)  # the drive as it is now, not 5 min ago
        data = probe(c, "host")
        ledger = json.loads(c.sudo(f"{LPSE_BACKUP} drive show", hide=True).stdout)["drives"]
        present = next((s for s in data["backup_status"] if s["name"] == "lpse_backup_portable_media_present"), None)
        label = present["labels"].get("label", "") if present and present["value"] else ""
        arrived = ledger.get(label, {}).get("arrived", "")
        if label and arrived:
            since = dt.datetime.fromisoformat(arrived).timestamp()
            last = {
                s["labels"]["dataset"]: s["value"]
                for s in data["backup"]
                if s["name"] == "lpse_backup_last_success_timestamp_seconds" and s["labels"]["target"] == "portable"
            }
            missing = sorted(d for d, when in last.items() if when < since) if last else ["every dataset"]
            copies = ", ".join(f"{d} {'ok' if d not in missing else 'MISSING'}" for d in sorted(last))
            say(f"{name}: drive {label} has been here since {arrived}; copies made to it since: {copies or 'none'}")
            if missing:
                say(
                    f"  {', '.join(missing)} not copied to it since it arrived: it would reach the safe without them. "
                    f"Run `sudo {LPSE_BACKUP} run` on {name} first (or eject anyway with --force)."
                )
                if not force:
                    raise RunbookError(f"drive {label} not ejected: it lacks copies of {', '.join(missing)}")
            if dry_run:
                say(f"dry run: would flush and unmount drive {label} on {name} so it can be pulled out")
                return "eject (dry run)"
            confirm(f"unmount drive {label} on {name} for the safe?", yes)
            res = c.sudo(f"{LPSE_BACKUP} drive eject", hide=True, warn=True)
            action = "eject"
        else:
            what = f"drive {label} was just plugged in" if label else "no drive is mounted"
            if dry_run:
                say(f"dry run: {what} on {name}: would mount (if needed), check and record the rota drive")
                return "insert (dry run)"
            res = c.sudo(f"{LPSE_BACKUP} drive insert", hide=True, warn=True)
            action = "insert"
        if res.exited != 0:
            raise RunbookError((res.stderr.strip() or res.stdout.strip()).removeprefix("lpse-backup: "))
        say(res.stdout.strip())
        c.sudo(f"{LPSE_BACKUP} status", hide=True, warn=True)  # the drive metrics change now, not in 5 min
    return action
