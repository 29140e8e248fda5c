"""lpse-os-updates-textfile: pending updates, held-back packages and a pending reboot, as a
textfile for the exporter (R2, R10).

Unattended upgrades install security updates at night outside the tender-closing blackouts; what
they could not install (a blackout that lasted, a package held back, a failure) and a reboot an
update asks for stay visible here until someone acts. apt's simulation needs no lock and changes
nothing; it runs as root from a timer, never inside a scrape, and writes os_updates.prom
atomically into the exporter's textfile directory.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

# "Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/... [amd64])"
INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ([^\[]*)\[")


@dataclass(frozen=True)
class Pending:
    security: int
    other: int
    held_back: int


def parse_simulation(text: str) -> Pending:
    """What `apt-get -s upgrade` would install, by origin, and what it keeps back."""
    security = other = 0
    lines = text.splitlines()
    for line in lines:
        m = INST.match(line)
        if m:
            if "-security" in m.group(3) or "Debian-Security" in m.group(3):
                security += 1
            else:
                other += 1
    held: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("The following packages have been kept back"):
            for follow in lines[i + 1 :]:
                if not follow.startswith(" "):
                    break
                held += follow.split()
    return Pending(security, other, len(held))


def collect(registry: CollectorRegistry, simulation: str | None, held: list[str], reboot_file: Path) -> None:
    ok = Gauge("lpse_os_updates_check_success", "1 if apt's simulation ran", registry=registry)
    checked = Gauge("lpse_os_updates_checked_timestamp_seconds", "When updates were last looked for", registry=registry)
    pending = Gauge("lpse_os_upgrades_pending", "Updates apt would install now", ["kind"], registry=registry)
    kept = Gauge(
        "lpse_os_packages_held_back", "Packages with an update that is not installed (kept back or on hold)",
        registry=registry,
    )  # fmt: skip
    reboot = Gauge("lpse_os_reboot_required", "1 if an installed update asks for a reboot", registry=registry)
    checked.set(time.time())
    reboot.set(1.0 if reboot_file.exists() else 0.0)
    if simulation is None:
        ok.set(0)
        return
    ok.set(1)
    found = parse_simulation(simulation)
    pending.labels("security").set(found.security)
    pending.labels("other").set(found.other)
    kept.set(found.held_back + len(held))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-os-updates-textfile", description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=Path("/var/lib/lpse-exporter/textfile/os_updates.prom"))
    p.add_argument("--reboot-file", type=Path, default=Path("/run/reboot-required"))
    args = p.parse_args(argv)
    sim = subprocess.run(
        ["apt-get", "-s", "-o", "Debug::NoLocking=true", "upgrade"], capture_output=True, text=True, timeout=300
    )
    if sim.returncode != 0:
        print(f"lpse-os-updates-textfile: apt-get -s upgrade failed: {sim.stderr.strip()[-300:]}", file=sys.stderr)
    marks = subprocess.run(["apt-mark", "showhold"], capture_output=True, text=True, timeout=60)
    held = marks.stdout.split() if marks.returncode == 0 else []
    registry = CollectorRegistry()
    collect(registry, sim.stdout if sim.returncode == 0 else None, held, args.reboot_file)
    write_to_textfile(str(args.output), registry)  # temp file + rename: never half-written
    return 0 if sim.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
