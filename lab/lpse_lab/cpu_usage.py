"""Where a test run's CPU time goes (scripts/test runs this beside the suite): every lab host's
CPU seconds, read from its cgroup (cgroup v2 `cpu.stat`, one cgroup per host per lab folder),
and the machine's busy seconds since it started, written as JSON every 10 s until stopped or
its parent ends. What the hosts do not
account for is the controller's: Ansible, pytest, the tests without a lab.

    python -m lpse_lab.cpu_usage OUT.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup/unified")


def busy_seconds() -> float:
    """CPU seconds the machine spent on anything but idle and I/O wait since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / 100  # USER_HZ


def host_seconds() -> dict[str, float]:
    out: dict[str, float] = {}
    for lab_dir in CGROUPS.glob("lpse-lab*"):
        for host in (p for p in lab_dir.iterdir() if (p / "cpu.stat").is_file()):
            try:
                usage = (host / "cpu.stat").read_text().split("\n", 1)[0].split()
            except OSError:  # the host went down while this read
                continue
            out[f"{lab_dir.name}/{host.name}"] = int(usage[1]) / 1e6
    return out


def main(out: Path) -> None:
    start, busy0, before = time.monotonic(), busy_seconds(), host_seconds()
    seen: dict[str, float] = {}
    parent = os.getppid()
    while os.getppid() == parent:  # ends with the run that started it, however that ends
        for key, seconds in host_seconds().items():
            # Hosts already up count from now; a box's host is gone at its end: its last reading stays.
            seen[key] = max(seen.get(key, 0.0), seconds - before.get(key, 0.0))
        hosts, busy = sum(seen.values()), busy_seconds() - busy0
        figures = {
            "wall_s": round(time.monotonic() - start),
            "busy_s": round(busy),
            "hosts_s": round(hosts),
            "controller_s": round(busy - hosts),
            "per_host_s": {k: round(v) for k, v in sorted(seen.items())},
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(figures, indent=1) + "\n")
        tmp.replace(out)
        time.sleep(10)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
