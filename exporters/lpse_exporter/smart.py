"""lpse-smart-textfile: disk SMART health as a textfile for the exporter (R6).

smartctl needs root and can take seconds per disk, so it never runs inside a scrape: a systemd
timer runs this as root and writes smart.prom atomically into the exporter's textfile directory.
Without smartctl the file says so (lpse_disk_smart_available 0) instead of failing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile


def scan(smartctl: str) -> list[str]:
    out = subprocess.run([smartctl, "--scan-open", "--json"], capture_output=True, text=True, timeout=60).stdout
    return [d["name"] for d in json.loads(out or "{}").get("devices", [])]


def health(smartctl: str, device: str) -> tuple[bool | None, str]:
    res = subprocess.run([smartctl, "--health", "--info", "--json", device], capture_output=True, text=True, timeout=60)
    data = json.loads(res.stdout or "{}")
    passed = data.get("smart_status", {}).get("passed")
    return passed, str(data.get("model_name", ""))


def collect(registry: CollectorRegistry, smartctl: str | None) -> None:
    available = Gauge("lpse_disk_smart_available", "1 if smartctl is installed and ran", registry=registry)
    healthy = Gauge(
        "lpse_disk_smart_healthy", "1 if SMART says the disk is healthy", ["device", "model"], registry=registry
    )
    last = Gauge("lpse_disk_smart_last_run_timestamp_seconds", "When SMART health was last read", registry=registry)
    last.set(time.time())
    if smartctl is None:
        available.set(0)
        return
    available.set(1)
    for device in scan(smartctl):
        passed, model = health(smartctl, device)
        if passed is not None:  # no SMART on this device (virtual disk): no series
            healthy.labels(device, model).set(1.0 if passed else 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-smart-textfile", description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=Path("/var/lib/lpse-exporter/textfile/smart.prom"))
    p.add_argument("--smartctl", default=None, help="path to smartctl (default: search PATH)")
    args = p.parse_args(argv)
    smartctl = args.smartctl or shutil.which("smartctl")
    if smartctl is None:
        print("lpse-smart-textfile: smartctl not found: install smartmontools for disk health", file=sys.stderr)
    registry = CollectorRegistry()
    collect(registry, smartctl)
    write_to_textfile(str(args.output), registry)  # temp file + rename: never half-written
    return 0


if __name__ == "__main__":
    sys.exit(main())
