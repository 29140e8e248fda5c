"""lpse-exporter vs prometheus-node-exporter (Debian, default collectors), side by side.

On the lab's SPSE host, in one run: scrape each exporter N times over the host's loopback and
print p50/p95 scrape time, CPU seconds per scrape and resident memory of both, and the ratios
(ours / node_exporter), also written to benchmarks/results/exporter.json. Targets (issue 3): p50
at most 0.5x, CPU per scrape below 1x, RSS at most 1.5x. Needs the lab up and provisioned;
installs prometheus-node-exporter on the host.

    .venv/bin/python benchmarks/exporter.py [-n 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import figures
from lpse_lab import lab

HOST = "spse"
TICK = os.sysconf("SC_CLK_TCK")


def ssh(host: lab.LabHost, command: str) -> str:
    res = lab.ssh(host.address, command)
    if res.returncode != 0:
        sys.exit(f"on {host.name}: {command}: {res.stderr.strip()}")
    return res.stdout


def service_pid(host: lab.LabHost, unit: str) -> int:
    """The service's main process, seen from this machine (the host's cgroup holds it)."""
    procs = Path(f"/sys/fs/cgroup/systemd/lpse-lab/{host.name}/payload/system.slice/{unit}/cgroup.procs")
    pids = [int(p) for p in procs.read_text().split()]
    if not pids:
        sys.exit(f"{unit} is not running on {host.name}")
    return pids[0]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Result:
    name: str
    p50: float
    p95: float
    cpu_per_scrape: float
    rss: int
    series: int


def bench(host: lab.LabHost, name: str, unit: str, port: int, n: int) -> Result:
    """Scrape from inside the host's network namespace; python's urllib keeps the client cost equal."""
    pid = service_pid(host, unit)
    script = (
        "import sys,time,urllib.request\n"
        f"u='http://127.0.0.1:{port}/metrics'\n"
        "urllib.request.urlopen(u).read()\n"  # warm up
        f"for _ in range({n}):\n"
        " t=time.perf_counter(); b=urllib.request.urlopen(u).read(); print(time.perf_counter()-t)\n"
        "print(sum(1 for l in b.decode().splitlines() if l and not l.startswith('#')))\n"
    )
    cpu0 = cpu_seconds(pid)
    out = subprocess.run(
        ["ip", "netns", "exec", host.netns, sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout.split()
    cpu1 = cpu_seconds(pid)
    times = sorted(float(x) for x in out[:-1])
    return Result(
        name,
        statistics.median(times),
        times[int(len(times) * 0.95) - 1],
        (cpu1 - cpu0) / n,
        rss_bytes(pid),
        int(out[-1]),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200, help="scrapes per exporter")
    args = p.parse_args()
    host = next(h for h in lab.load_config().hosts if h.name == HOST)
    ssh(
        host,
        "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        "prometheus-node-exporter >/dev/null && sudo systemctl start prometheus-node-exporter",
    )
    time.sleep(2)
    ours = bench(host, "lpse-exporter", "lpse-exporter.service", 9120, args.n)
    base = bench(host, "node_exporter (baseline)", "prometheus-node-exporter.service", 9100, args.n)
    print(f"\n{args.n} scrapes each on lab host {HOST}, over its loopback, one run")
    print(f"{'exporter':<26}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/scrape':>15}{'RSS MiB':>9}{'series':>8}")
    for r in (ours, base):
        print(
            f"{r.name:<26}{r.p50 * 1e3:9.2f}{r.p95 * 1e3:9.2f}{r.cpu_per_scrape * 1e3:15.2f}"
            f"{r.rss / 2**20:9.1f}{r.series:8d}"
        )
    print(
        f"{'ratio ours/baseline':<26}{ours.p50 / base.p50:9.2f}{ours.p95 / base.p95:9.2f}"
        f"{ours.cpu_per_scrape / base.cpu_per_scrape:15.2f}{ours.rss / base.rss:9.2f}"
    )
    print("targets: p50 <= 0.50, CPU/scrape < 1.00, RSS <= 1.50")
    figures.write(
        "exporter",
        {
            "host": HOST,
            "scrapes": args.n,
            "ours": asdict(ours),
            "baseline": asdict(base),
            "ratios": {
                "p50": ours.p50 / base.p50,
                "p95": ours.p95 / base.p95,
                "cpu_per_scrape": ours.cpu_per_scrape / base.cpu_per_scrape,
                "rss": ours.rss / base.rss,
            },
            "targets": {"p50": 0.5, "cpu_per_scrape": 1.0, "rss": 1.5},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
