"""Read-only runbooks: they look, they never change a server.

`status` is the one screen on-call reads first; `diagnose` packs what an expert (or LKPP, R15)
needs to see into one timestamped bundle on the operator's machine.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shlex
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric import Connection
from paramiko.ssh_exception import SSHException

from lpse_runbooks.site import Host, RunbookError, Site

PROBE = Path(__file__).with_name("probe.py")


def connect(host: Host) -> Connection:
    try:
        c = host.connect()
        c.open()
    except (OSError, SSHException) as e:
        raise RunbookError(
            f"cannot reach {host.name} ({host.user}@{host.address}) over SSH: {e}. "
            "Check that the host is on and the network to it works (ping it); see HostDown in docs/runbooks."
        ) from e
    return c


def probe_command(*args: str) -> str:
    """The shell command that runs probe.py on a host. The script travels inside the command
    (compressed): fed through stdin, invoke sends it one byte per 10 ms."""
    packed = base64.b64encode(zlib.compress(PROBE.read_bytes(), 9)).decode()
    code = f"import base64, zlib; exec(zlib.decompress(base64.b64decode('{packed}')))"
    return shlex.join(["python3", "-c", code, *args])


def probe(c: Connection, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run probe.py on the host as root; its JSON answer."""
    res = c.sudo(probe_command(*args), hide=True, warn=True, timeout=timeout)
    if res.exited != 0:
        raise RunbookError(f"the probe failed on {c.host}: {res.stderr.strip()[-500:]}")
    return dict(json.loads(res.stdout))


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


@dataclass
class Status:
    """What `status` found; `problems` is empty when everything on the screen is fine."""

    lines: list[str]
    problems: list[str]
    host: dict[str, Any]
    alerts: list[dict[str, Any]]


def collect_status(site: Site, name: str) -> Status:
    h = site.host(name)
    with connect(h) as c:
        data = probe(c, "host")
    now = data["time"]
    lines, problems = (
        [f"{h.name} ({h.address}), {dt.datetime.fromtimestamp(now).astimezone():%Y-%m-%d %H:%M:%S %Z}"],
        [],
    )

    def line(label: str, text: str, bad: bool = False) -> None:
        lines.append(f"  {label:<10} {'!! ' if bad else ''}{text}")
        if bad:
            problems.append(f"{label}: {text}")

    if data["spse"] is not None:
        page = data["spse"]
        line("SPSE", f"{page['state'].upper()} ({page['detail']}, {page['seconds']:.2f} s)", page["state"] != "up")
    if data["database"] is not None:
        db = data["database"]
        if db["up"]:
            line("Database", f"UP, spse {gib(db['bytes'])}, running {db['uptime_s'] // 3600} h")
        else:
            line("Database", f"DOWN: {db['detail']}", True)
    down = [u for u, s in data["units"].items() if s["active"] != "active" and u != "lpse-backup"]
    units = ", ".join(f"{u} {s['active']}" for u, s in data["units"].items() if u != "lpse-backup")
    line("Services", units or "none of the LPSE services", bool(down))
    limits = site.thresholds  # the alert rules' own
    for d in data["disks"]:
        used = 1 - d["avail"] / d["size"] if d["size"] else 0
        low = bool(d["size"]) and d["avail"] / d["size"] < limits.disk_critical_ratio
        line("Disk", f"{d['mountpoint']}: {used:.0%} used, {gib(d['avail'])} free of {gib(d['size'])}", low)
    m = data["memory"]
    low = m["available"] < limits.memory_critical_ratio * m["total"]
    line("RAM", f"{gib(m['available'])} available of {gib(m['total'])}", low)
    for link in data["links"]:
        line("Link", f"{link['interface']} {link['state']}", link["state"] not in ("up", "unknown"))
    line("Load", " ".join(f"{x:.2f}" for x in data["load"]) + f", up {ago(now - data['boot_time'])[:-4]}")
    # Power and temperature bad as the lpse-power and lpse-room alerts judge them: on battery or
    # battery low, the UPS unreadable, a sensor at its own high limit.
    for u in data.get("ups", []):
        v = u["values"]
        if not u["ok"]:
            line("Power", f"UPS {u['name']} cannot be read: {u['detail']}", True)
            continue
        flags = v.get("ups.status", "").split()
        runtime = f", {float(v['battery.runtime']) / 60:.0f} min on battery" if "battery.runtime" in v else ""
        charge = f", charge {v['battery.charge']} %" if "battery.charge" in v else ""
        state = "BATTERY LOW" if "LB" in flags else ("ON BATTERY (mains lost)" if "OB" in flags else "on mains")
        line("Power", f"UPS {u['name']} {state} ({' '.join(flags)}){charge}{runtime}", "OB" in flags or "LB" in flags)
    if not data.get("ups"):
        line("Power", "no UPS watched on this host (roles/ups)")
    temps = data.get("temperatures", {"ok": False, "detail": "not read", "sensors": []})
    sensors = temps["sensors"]
    limit = "max_celsius", "critical_celsius"
    hot = [s for s in sensors if any(s[k] is not None and s["celsius"] >= s[k] for k in limit)]
    shown = sorted(sensors, key=lambda s: -s["celsius"])[:4]
    text = ", ".join(f"{s['chip']} {s['sensor']} {s['celsius']:.0f} C" for s in shown) or "no sensors on this host"
    text = text if temps["ok"] else f"cannot be read: {temps['detail']}"
    more = f" ({len(sensors)} sensors, the hottest shown)" if len(sensors) > 4 else ""
    line("Temp", text + more, bool(hot) or not temps["ok"])

    last = {(s["labels"]["dataset"], s["labels"]["target"]): s["value"] for s in data["backup"]
            if s["name"] == "lpse_backup_last_success_timestamp_seconds"}  # fmt: skip
    ok = {(s["labels"]["dataset"], s["labels"]["target"]): s["value"] for s in data["backup"]
          if s["name"] == "lpse_backup_last_run_success"}  # fmt: skip
    for key in sorted(set(last) | set(ok)):
        failed = ok.get(key) == 0
        text = f"{key[0]} -> {key[1]}: last good copy {ago(now - last[key]) if key in last else 'never'}"
        stale = now - last.get(key, 0) > limits.backup_stale_hours * 3600
        line("Backup", text + (" (the last run FAILED)" if failed else ""), failed or stale)
    if data["spse"] is not None and not last:
        line("Backup", "no backup has run on this host yet", True)
    drive = {s["name"]: s for s in data["backup_status"]}
    if "lpse_backup_portable_media_present" in drive:
        present = drive["lpse_backup_portable_media_present"]
        if present["value"]:
            label = present["labels"].get("label", "")
            free = drive.get("lpse_backup_portable_media_free_bytes", {}).get("value", 0)
            due = drive.get("lpse_backup_portable_media_swap_due", {}).get("value", 0)
            line("Drive", f"{label}, {gib(free)} free" + (": due to go to the safe (fab rotate-drive)" if due else ""))
        else:
            line("Drive", "no backup drive plugged in", True)
    drills = {(s["labels"]["dataset"], s["labels"]["target"]): s["value"] for s in data["drill"]
              if s["name"] == "lpse_backup_drill_last_run_success"}  # fmt: skip
    if drills:
        failed = [f"{d}<-{t}" for (d, t), v in drills.items() if not v]
        line("Drill", "last restore drill " + ("FAILED: " + ", ".join(failed) if failed else "passed"), bool(failed))

    alerts: list[dict[str, Any]] = []
    mon = site.monitor()
    if mon is None:
        lines.append("  Alerts     (no monitoring server in the inventory)")
    else:
        try:
            with connect(mon) as c:
                answer = probe(c, "alerts", "9093")
        except RunbookError as e:
            answer = {"ok": False, "detail": str(e)}
        if not answer["ok"]:
            line("Alerts", f"cannot read Alertmanager on {mon.name}: {answer['detail']}", True)
        else:
            alerts = [a for a in answer["alerts"] if a["labels"].get("alertname") != "Watchdog"]
            mine = [a for a in alerts if a["labels"].get("instance") == name]
            if not mine:
                line("Alerts", "none firing for this host")
            for a in mine:
                state = a["status"]["state"]
                note = "" if state == "active" else (" (silenced)" if a["status"].get("silencedBy") else " (inhibited)")
                line(
                    "Alert",
                    f"{a['labels'].get('severity', '?')} {a['labels']['alertname']} since {a['startsAt'][:19]}Z{note}: "
                    f"{a['annotations'].get('summary', '')}",
                    state == "active",
                )
    return Status(lines, problems, data, alerts)


DIAGNOSE = [
    # (file in the bundle, command run as root on the host); no file holds a secret.
    ("status.json", None),
    ("systemctl-failed.txt", "systemctl --failed --no-pager"),
    (
        "services.txt",
        "systemctl status --no-pager --lines=30 spse nginx postgresql@15-main lpse-exporter "
        "lpse-backup.service lpse-backup.timer prometheus prometheus-alertmanager",
    ),
    ("journal-errors-24h.txt", "journalctl --no-pager -p err --since=-24h"),
    ("journal-spse-2h.txt", "journalctl --no-pager -u spse --since=-2h"),
    ("journal-nginx-2h.txt", "journalctl --no-pager -u nginx --since=-2h"),
    ("journal-postgresql-2h.txt", "journalctl --no-pager -u postgresql@15-main --since=-2h"),
    ("journal-backup-48h.txt", "journalctl --no-pager -u 'lpse-backup*' --since=-48h"),
    ("nginx-error.log", "tail -n 500 /var/log/nginx/error.log"),
    ("nginx-5xx.txt", "awk '$9 ~ /^5/' /var/log/nginx/access.log | tail -n 200"),
    ("postgresql.log", "tail -n 500 /var/log/postgresql/postgresql-15-main.log"),
    ("disk.txt", "df -h; echo; df -i; echo; du -xsh /var/lib/spse/documents /var/lib/postgresql /var/log 2>&1"),
    ("memory.txt", "free -m; echo; cat /proc/pressure/memory 2>&1"),
    ("processes.txt", "ps auxf --sort=-%mem | head -n 60"),
    ("network.txt", "ip -br addr; echo; ip route; echo; ss -tlnp; echo; cat /proc/net/dev"),
    ("firewall.txt", "nft list ruleset"),
    ("uptime.txt", "uptime; echo; last -x -n 20 2>&1 | head -n 25"),
]


def diagnose(site: Site, name: str, out_dir: Path) -> Path:
    """Collect logs, service states and recent errors into one bundle on this machine."""
    h = site.host(name)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    bundle = f"lpse-diagnose-{h.name}-{stamp}"
    remote = f"/var/tmp/{bundle}"
    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / f"{bundle}.tar.gz"
    with connect(h) as c:
        c.sudo(f"install -d -m 0700 {remote}", hide=True)
        try:
            c.sudo(f"sh -c {shlex.quote(probe_command('host') + f' > {remote}/status.json')}", hide=True)
            for file, command in DIAGNOSE:
                if command:
                    # Each part on its own: a missing log must not cost the others.
                    to_file = f"{{ {command}; }} > {remote}/{file} 2>&1"
                    c.sudo(f"sh -c {shlex.quote(to_file)}", hide=True, warn=True, timeout=120)
            c.sudo(f"tar -C /var/tmp -czf {remote}.tar.gz {bundle}", hide=True)
            tmp = local.with_suffix(".part")
            c.get(f"{remote}.tar.gz", str(tmp))
            tmp.replace(local)
        finally:
            c.sudo(f"rm -rf {remote} {remote}.tar.gz", hide=True, warn=True)
    return local


def wait_for_spse(c: Connection, timeout: float) -> tuple[bool, float, dict[str, Any]]:
    """Poll the SPSE page until it is up; (up, seconds waited, last probe)."""
    t0 = time.monotonic()
    while True:
        page = probe(c, "spse")
        if page["state"] == "up" or time.monotonic() - t0 > timeout:
            return page["state"] == "up", time.monotonic() - t0, page
        time.sleep(2)
