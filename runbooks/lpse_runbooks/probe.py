"""What the runbooks read on a host, in one SSH round trip: this file is sent to the host and
run there as root with its python3 (`python3 - <mode> [args]`), standard library only, and
prints one JSON document. It changes nothing except in `cleanup apply`, which deletes only the
targets listed in CLEANUP.

Modes:
  host                  services, SPSE page, database, disks, memory, links, backups, drive,
                        the UPS this host's upsmon watches, temperature sensors
  spse                  the SPSE page only
  alerts <port>         Alertmanager's active alerts (run on the monitoring host)
  cleanup list|apply    the disk-cleanup targets, their sizes (and removal)
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from typing import Any

UNITS = (
    "spse",
    "nginx",
    "postgresql@15-main",
    "lpse-exporter",
    "lpse-backup.timer",
    "lpse-backup",
    "prometheus",
    "prometheus-alertmanager",
)
TEXTFILES = "/var/lib/lpse-exporter/textfile"
REAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "exfat", "overlay", "zfs"}
SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$")
SPSE_ERROR = "Maaf, terjadi error pada aplikasi SPSE."


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def sh(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def units() -> dict[str, dict[str, str]]:
    out = {}
    for unit in UNITS:
        props = sh("systemctl", "show", unit, "-p", "LoadState,ActiveState,SubState,ActiveEnterTimestamp").stdout
        d = dict(line.partition("=")[::2] for line in props.splitlines() if "=" in line)
        if d.get("LoadState") == "loaded":
            out[unit] = {"active": d.get("ActiveState", ""), "sub": d.get("SubState", ""),
                         "since": d.get("ActiveEnterTimestamp", "")}  # fmt: skip
    return out


def spse_page() -> dict[str, Any]:
    """The SPSE page through the local nginx, as a bidder gets it (certificate not judged here:
    that is the exporter's TLS check)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    t0 = time.monotonic()
    req = urllib.request.Request("https://127.0.0.1/eproc4/", headers={"Host": socket.gethostname()})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            body, status = r.read(200_000).decode("utf-8", "replace"), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(200_000).decode("utf-8", "replace"), e.code
    except OSError as e:
        return {"state": "down", "detail": f"no answer: {e}", "seconds": time.monotonic() - t0}
    took = time.monotonic() - t0
    if status == 503 and "pemeliharaan" in body.lower():
        state = "maintenance"
    elif status == 200 and "SPSE" in body and SPSE_ERROR not in body:
        state = "up"
    else:
        state = "down"
    return {"state": state, "detail": f"HTTP {status}" + (" (SPSE error page)" if SPSE_ERROR in body else ""),
            "seconds": took}  # fmt: skip


def database() -> dict[str, Any]:
    query = "SELECT pg_database_size('spse'), extract(epoch FROM now() - pg_postmaster_start_time())::int"
    res = sh("runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-d", "spse", "-c", query)
    if res.returncode != 0:
        return {"up": False, "detail": (res.stderr.strip().splitlines() or ["psql failed"])[-1]}
    size, started = res.stdout.strip().split("|")
    return {"up": True, "bytes": int(size), "uptime_s": int(started)}


def disks() -> list[dict[str, Any]]:
    """Whole filesystems only (mountinfo root "/"): a bind mount of a directory is not a disk."""
    out, seen = [], set()
    for line in read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        root, target = fields[3], fields[4].replace("\\040", " ")
        fstype, source = rest[0], rest[1]
        if fstype not in REAL_FS or root != "/" or target in seen:
            continue
        seen.add(target)
        st = os.statvfs(target)
        size, avail = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        out.append({"mountpoint": target, "device": source, "size": size, "avail": avail})
    return out


def memory() -> dict[str, int]:
    info = {
        k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in read("/proc/meminfo").splitlines())
    }
    return {"total": info["MemTotal"], "available": info["MemAvailable"], "swap_total": info.get("SwapTotal", 0),
            "swap_free": info.get("SwapFree", 0)}  # fmt: skip


def links() -> list[dict[str, Any]]:
    """The interfaces of this host's network namespace (netlink, not /sys, which a container
    may share with its host)."""
    res = sh("ip", "-j", "-s", "link", "show")
    out = []
    for link in json.loads(res.stdout or "[]"):
        if link["ifname"] == "lo":
            continue
        stats = link.get("stats64", link.get("stats", {}))
        up = "UP" in link.get("flags", []) and "LOWER_UP" in link.get("flags", [])
        out.append({"interface": link["ifname"], "state": "up" if up else link.get("operstate", "").lower() or "down",
                    "rx": stats.get("rx", {}).get("bytes", 0), "tx": stats.get("tx", {}).get("bytes", 0)})  # fmt: skip
    return out


def textfile(name: str) -> list[dict[str, Any]]:
    """Samples of one of the textfiles the backup job writes for the exporter."""
    try:
        text = read(os.path.join(TEXTFILES, name))
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m[2] or ""))
            out.append({"name": m[1], "labels": labels, "value": float(m[3])})
    return out


def ups() -> list[dict[str, Any]]:
    """Each UPS this host's upsmon watches (its MONITOR lines), as upsd reports it now."""
    try:
        conf = read("/etc/nut/upsmon.conf")
    except OSError:
        return []
    out = []
    for name in re.findall(r"^\s*MONITOR\s+(\S+)", conf, re.M):
        res = sh("upsc", name)
        values = dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)
        ok = res.returncode == 0 and "ups.status" in values
        detail = "" if ok else (res.stderr.strip().splitlines() or ["no answer"])[-1]
        keep = ("ups.status", "battery.charge", "battery.runtime", "ups.load", "input.voltage")
        out.append({"name": name, "ok": ok, "detail": detail, "values": {k: values[k] for k in keep if k in values}})
    return out


# The exporter's own hwmon reader, through its venv (on every host): one reader of the sensors.
EXPORTER_PYTHON = "/opt/lpse-exporter/venv/bin/python"
READ_HWMON = (
    "import dataclasses, json, pathlib; from lpse_exporter.collectors.temperature import read_hwmon; "
    "print(json.dumps([dataclasses.asdict(r) for r in read_hwmon(pathlib.Path('/'))]))"
)


def temperatures() -> dict[str, Any]:
    """Every hwmon temperature sensor with its own limits (none in a container or most VMs)."""
    if not os.path.exists(EXPORTER_PYTHON):
        return {"ok": False, "detail": "lpse-exporter is not installed here", "sensors": []}
    res = sh(EXPORTER_PYTHON, "-c", READ_HWMON)
    if res.returncode != 0:
        return {"ok": False, "detail": (res.stderr.strip().splitlines() or ["?"])[-1], "sensors": []}
    return {"ok": True, "detail": "", "sensors": json.loads(res.stdout)}


def host() -> dict[str, Any]:
    u = units()
    load = read("/proc/loadavg").split()[:3]
    boot = time.time() - float(read("/proc/uptime").split()[0])
    return {
        "hostname": socket.gethostname(),
        "time": time.time(),
        "boot_time": boot,
        "load": [float(x) for x in load],
        "units": u,
        "spse": spse_page() if "nginx" in u and "spse" in u else None,
        "database": database() if "postgresql@15-main" in u else None,
        "disks": disks(),
        "memory": memory(),
        "links": links(),
        "backup": textfile("backup.prom"),
        "drill": textfile("drill.prom"),
        "backup_status": textfile("status.prom"),
        "ups": ups(),
        "temperatures": temperatures(),
    }


def alerts(port: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v2/alerts?active=true&silenced=true&inhibited=true"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return {"ok": True, "alerts": json.load(r)}
    except OSError as e:
        return {"ok": False, "detail": f"Alertmanager at 127.0.0.1:{port} did not answer: {e}"}


# --- disk cleanup: the only things a runbook may delete ------------------------------------


def _spse_old_releases() -> list[str]:
    """SPSE releases other than the running one and the one before it (kept for a rollback)."""
    current = os.path.realpath("/opt/spse/current")
    releases = sorted(glob.glob("/opt/spse/releases/*"), key=os.path.getmtime)
    keep = {current}
    older = [r for r in releases if os.path.realpath(r) != current]
    if older:
        keep.add(os.path.realpath(older[-1]))
    return [r for r in releases if os.path.realpath(r) not in keep]


def _unit_idle(unit: str) -> bool:
    return sh("systemctl", "is-active", unit).stdout.strip() not in ("active", "activating", "deactivating")


CLEANUP: list[tuple[str, str]] = [
    ("apt-cache", "downloaded Debian packages (/var/cache/apt/archives/*.deb), fetched again when needed"),
    ("old-spse-releases", "SPSE releases older than the running one and the one before it"),
    ("diagnose-bundles", "diagnose bundles left on the host (/var/tmp/lpse-diagnose-*)"),
    ("drill-scratch", "leftovers of a restore drill that is not running (/var/tmp/lpse-backup-drill)"),
    ("core-dumps", "crash dumps (/var/lib/systemd/coredump/*)"),
]


def _cleanup_paths(target: str) -> list[str]:
    if target == "apt-cache":
        return glob.glob("/var/cache/apt/archives/*.deb")
    if target == "old-spse-releases":
        return _spse_old_releases()
    if target == "diagnose-bundles":
        return glob.glob("/var/tmp/lpse-diagnose-*")
    if target == "drill-scratch":
        return glob.glob("/var/tmp/lpse-backup-drill") if _unit_idle("lpse-backup-drill.service") else []
    if target == "core-dumps":
        return glob.glob("/var/lib/systemd/coredump/*")
    raise ValueError(target)


def _size(path: str) -> int:
    if os.path.islink(path) or not os.path.isdir(path):
        return os.lstat(path).st_size
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def cleanup(action: str) -> dict[str, Any]:
    out = []
    for target, what in CLEANUP:
        paths = _cleanup_paths(target)
        size = sum(_size(p) for p in paths)
        removed = []
        if action == "apply":
            for p in paths:
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
                removed.append(p)
        out.append({"target": target, "what": what, "paths": paths, "bytes": size, "removed": removed})
    st = os.statvfs("/")
    return {"targets": out, "root_avail": st.f_bavail * st.f_frsize}


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "host"
    if mode == "host":
        result = host()
    elif mode == "spse":
        result = spse_page()
    elif mode == "alerts":
        result = alerts(argv[1] if len(argv) > 1 else "9093")
    elif mode == "cleanup" and len(argv) > 1 and argv[1] in ("list", "apply"):
        result = cleanup(argv[1])
    else:
        print(f"unknown mode {argv!r}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
