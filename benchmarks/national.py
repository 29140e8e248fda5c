"""LKPP's national store at scale (issue 14): VictoriaMetrics 1.79 as roles/national_store runs it
vs Prometheus 2.42 (the baseline), side by side on this machine, fed the same data: N simulated
sites' telemetry contracts (the series of docs/national-telemetry.md) at the contract's real
interval (60 s), with outages, silent spells, maintenance and drifting values, over 90 days of
history, then live ingest by remote write while every query of the national page
(lpse_status.national) runs `--runs` times on each store. Prints ingest CPU seconds and peak RSS
of both, p50/p95 of every query, the ratios, and writes benchmarks/results/national.json.

The history (600 sites x 39 series x 129 600 minutes = 3.0 G samples) is backfilled the way a
store is filled from an archive, not by remote write (at the ~140 k samples/s Prometheus takes by
remote write that alone would be six hours): a UTC day at a time, the same text to both stores,
VictoriaMetrics through its JSON import (`/api/v1/import`) and Prometheus through
`promtool tsdb create-blocks-from openmetrics` (a block a day), each timed on its own CPU. Values
go as text, fractions to four decimals, in the history and the live ingest alike.

    .venv/bin/python benchmarks/national.py [--sites 600] [--days 90] [--runs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import figures
import numpy as np
from lpse_lab import remote_write
from lpse_status.national import HISTORY_QUERIES, INFO_QUERY, TABLE_QUERIES

INTERVAL = 60  # the contract's real interval (lkpp_telemetry_scrape_interval)
QUERY_TIMEOUT_S = 120
# PromQL for what the page asks in MetricsQL (Prometheus has no tlast_over_time): the newest
# sample's time through a subquery (at 10 min: at the real 1 min it took 32 s for 30 sites).
PROMQL = {"last_seen": "max by (lpse_site) (max_over_time(timestamp(lpse_national:contract_info)[30d:10m]))"}
DAY = 86400
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SiteModel:
    """One simulated site: its own outages, silent spells and maintenance windows (epoch
    seconds), its release and configuration, and the levels its figures drift around."""

    name: str
    outages: tuple[tuple[float, float], ...]
    silent: tuple[tuple[float, float], ...]
    maintenance: tuple[tuple[float, float], ...]
    version: str
    fingerprint: str
    disk_days: float
    seed: int

    @staticmethod
    def within(spans: tuple[tuple[float, float], ...], t: np.ndarray) -> np.ndarray:
        inside = np.zeros(t.shape, dtype=bool)
        for a, b in spans:
            inside |= (a <= t) & (t < b)
        return inside


def make_sites(n: int, start: float, end: float, rng: random.Random) -> list[SiteModel]:
    sites = []
    for i in range(n):

        def spans(count: int, longest: float) -> tuple[tuple[float, float], ...]:
            out = []
            for _ in range(count):
                a = rng.uniform(start, end)
                out.append((a, a + rng.uniform(300, longest)))
            return tuple(sorted(out))

        sites.append(
            SiteModel(
                name=f"situs-{i:03d}",
                outages=spans(rng.randint(0, 6), 6 * 3600),
                silent=spans(rng.randint(0, 3), 3 * DAY),
                maintenance=spans(rng.randint(0, 4), 4 * 3600),
                version=rng.choice(["0.9.0", "0.9.0", "0.9.1", "1.0.0"]),
                fingerprint=rng.choice(["a1b2c3d4e5f60718"] * 8 + [f"{rng.getrandbits(64):016x}"]),
                disk_days=rng.choice([3650.0] * 6 + [rng.uniform(2, 60)]),
                seed=rng.getrandbits(32),
            )
        )
    return sites


PAIRS = [("database", "s3"), ("database", "portable"), ("database", "local"), ("documents", "s3"),
         ("documents", "portable"), ("dump", "s3"), ("dump", "portable"), ("dump", "local")]  # fmt: skip
DRILLS = [("database", "s3"), ("database", "portable"), ("documents", "s3"), ("documents", "portable"),
          ("dump", "local")]  # fmt: skip
ROLES = ["system", "database", "documents", "backup_media"]


Value = float | Callable[[np.ndarray], np.ndarray]  # a constant, or the values at an array of times


def series_of(site: SiteModel) -> list[tuple[dict[str, str], Value]]:
    """The site's contract (docs/national-telemetry.md) as its Prometheus records it: each series
    with its value, a constant or a function of the time."""

    def lost(t: np.ndarray, window: float) -> np.ndarray:
        total = np.zeros(t.shape)
        for a, b in site.outages:
            total += np.clip(np.minimum(b, t) - np.maximum(a, t - window), 0, None)
        return total / window

    def wobble(t: np.ndarray) -> np.ndarray:
        return np.sin(t / 7200 + site.seed % 100)

    def down(t: np.ndarray) -> np.ndarray:
        return site.within(site.outages, t).astype(float)

    out: list[tuple[dict[str, str], Value]] = [
        ({"__name__": "lpse_national:contract_info", "contract_version": "1", "lpse_ops_version": site.version,
          "config_fingerprint": site.fingerprint}, 1.0),
        ({"__name__": "lpse_national:spse_up"}, lambda t: 1.0 - down(t)),
        ({"__name__": "lpse_national:spse_probe_duration_seconds"}, lambda t: 0.2 + 0.1 * wobble(t)),
        ({"__name__": "lpse_national:maintenance_active"},
         lambda t: site.within(site.maintenance, t).astype(float)),
        ({"__name__": "lpse_national:spse_availability_1d:ratio"}, lambda t: 1 - lost(t, DAY)),
        ({"__name__": "lpse_national:spse_availability_30d:ratio"}, lambda t: 1 - lost(t, 30 * DAY)),
        ({"__name__": "lpse_national:spse_availability_excluding_maintenance_1d:ratio"}, lambda t: 1 - lost(t, DAY)),
        ({"__name__": "lpse_national:spse_availability_excluding_maintenance_30d:ratio"},
         lambda t: 1 - lost(t, 30 * DAY)),
        ({"__name__": "lpse_national:memory_available:ratio", "instance": "spse"}, lambda t: 0.4 + 0.1 * wobble(t)),
        ({"__name__": "lpse_national:uplink_utilisation:ratio", "instance": "spse", "interface": "eth0"},
         lambda t: 0.3 + 0.2 * wobble(t)),
        ({"__name__": "lpse_national:portable_media_present"}, 1.0),
        ({"__name__": "lpse_national:portable_media_swap_due"}, 0.0),
        ({"__name__": "lpse_national:critical_alerts_firing"}, down),
    ]  # fmt: skip
    out += [({"__name__": "lpse_national:disk_free:ratio", "instance": "spse", "role": r},
             lambda t: 0.5 + 0.05 * wobble(t)) for r in ROLES]  # fmt: skip
    out += [({"__name__": "lpse_national:disk_days_until_full", "instance": "spse", "role": r},
             site.disk_days if r == "documents" else 3650.0) for r in ROLES]  # fmt: skip
    offset = site.seed % 3600
    out += [({"__name__": "lpse_national:backup_verified_age_seconds", "dataset": d, "target": g},
             lambda t: (t - offset) % DAY + 1800) for d, g in PAIRS]  # fmt: skip
    out += [({"__name__": "lpse_national:drill_success", "dataset": d, "target": g}, 1.0) for d, g in DRILLS]
    out += [({"__name__": "lpse_national:drill_rto_seconds", "dataset": d, "target": g}, 90.0) for d, g in DRILLS]
    return [(labels | {"lpse_site": site.name}, value) for labels, value in out]


def sample_times(site: SiteModel, start: float, end: float) -> np.ndarray:
    """The site's scrape times in [start, end) at the contract's interval, but in its silent spells."""
    times = np.arange(-(-start // INTERVAL) * INTERVAL, end, INTERVAL, dtype=np.float64)
    return times[~site.within(site.silent, times)]


FRACTIONS = [f"{k / 10_000:g}" for k in range(10_001)]


def texts(value: Value, times: np.ndarray) -> list[str]:
    """The values at `times` as the stores are sent them: a constant as Python writes it, a
    fraction to four decimals, anything larger (seconds, days) to the unit."""
    if isinstance(value, float):
        return [repr(value)] * len(times)
    v = value(times)
    if np.all((v >= 0) & (v <= 1)):
        return [FRACTIONS[k] for k in np.rint(v * 10_000).astype(np.int64).tolist()]
    return [str(k) for k in np.rint(v).astype(np.int64).tolist()]


def samples_at(series: list[tuple[dict[str, str], Value]], times: list[float]) -> list[remote_write.Series]:
    stamps = [int(t * 1000) for t in times]
    return [(labels, [(float(v), ms) for v, ms in zip(texts(value, np.array(times)), stamps, strict=True)])
            for labels, value in series]  # fmt: skip


def openmetrics_name(labels: dict[str, str]) -> str:
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels['__name__']}{{{rest}}} "


@dataclass
class Backfilled:
    samples: int = 0
    made_s: float = 0.0  # this script's own time making the text
    vm_wall_s: float = 0.0
    promtool_cpu_s: float = 0.0
    promtool_wall_s: float = 0.0
    promtool_peak_rss_mib: float = 0.0


BLOCK = 7200  # promtool 2.42 makes 2-hour blocks, reading its whole input once for each


def backfill(sites: list[SiteModel], start: float, end: float, vm: Store, prom_dir: Path, scratch: Path) -> Backfilled:
    """Every site's contract in [start, end) into both stores, a UTC day at a time: the day's
    samples as JSON lines to VictoriaMetrics' import (a thread posting while the next part is
    made), and as an OpenMetrics file for each of its 2-hour blocks, which promtool turns into
    Prometheus blocks (another thread, a day behind)."""
    done = Backfilled()
    to_vm: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    to_promtool: queue.Queue[list[Path] | None] = queue.Queue(maxsize=1)
    failed: list[str] = []

    def post_to_vm() -> None:
        while (body := to_vm.get()) is not None:
            t0 = time.monotonic()
            try:
                req = urllib.request.Request(f"{vm.url}/api/v1/import", data=body)
                urllib.request.urlopen(req, timeout=600).close()
            except OSError as e:
                failed.append(f"{vm.name} refused an import of {len(body)} bytes: {e}")
            done.vm_wall_s += time.monotonic() - t0

    def run_promtool() -> None:
        while (paths := to_promtool.get()) is not None:
            for path in paths:
                if path.stat().st_size <= len("# EOF\n"):  # the history starts or ends within the day
                    path.unlink()
                    continue
                t0 = time.monotonic()
                argv = ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(prom_dir)]
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                err = proc.stderr.read() if proc.stderr else b""
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                if proc.returncode:
                    failed.append(f"promtool refused {path.name}: {err[-1000:]!r}")
                done.promtool_cpu_s += usage.ru_utime + usage.ru_stime
                done.promtool_peak_rss_mib = max(done.promtool_peak_rss_mib, usage.ru_maxrss / 1024)
                done.promtool_wall_s += time.monotonic() - t0
                path.unlink()

    workers = [threading.Thread(target=post_to_vm), threading.Thread(target=run_promtool)]
    for w in workers:
        w.start()
    try:
        for day in range(int(start // DAY) * DAY, int(end), DAY):
            t0 = time.monotonic()
            paths = [scratch / f"{block}.om" for block in range(day, day + DAY, BLOCK)]
            with contextlib.ExitStack() as stack:
                blocks = [stack.enter_context(path.open("w")) for path in paths]
                lines: list[str] = []
                for site in sites:
                    times = sample_times(site, max(start, day), min(end, day + DAY))
                    if not len(times):
                        continue
                    whole = times.astype(np.int64).tolist()
                    stamps = ",".join(f"{t}000" for t in whole)
                    # Where each block's samples begin and end in the day's (x3: name, value, time).
                    cuts = [3 * int(i) for i in np.searchsorted(times, np.arange(day, day + DAY + 1, BLOCK))]
                    text = [""] * (3 * len(whole))
                    text[2::3] = [f" {t}\n" for t in whole]
                    for labels, value in series_of(site):
                        values = texts(value, times)
                        lines.append(f'{{"metric":{json.dumps(labels)},"values":[{",".join(values)}],'
                                     f'"timestamps":[{stamps}]}}\n')  # fmt: skip
                        text[0::3] = [openmetrics_name(labels)] * len(whole)
                        text[1::3] = values
                        for block, a, b in zip(blocks, cuts, cuts[1:], strict=False):
                            block.write("".join(text[a:b]))
                        done.samples += len(whole)
                    if len(lines) >= 2000:
                        to_vm.put("".join(lines).encode())
                        lines = []
                    if failed:
                        sys.exit(failed[0])
                if lines:
                    to_vm.put("".join(lines).encode())
                for block in blocks:
                    block.write("# EOF\n")
            done.made_s += time.monotonic() - t0
            to_promtool.put(paths)
            print(f"  {time.strftime('%Y-%m-%d', time.gmtime(day))}: {done.samples / 1e6:.0f} M samples so far",
                  flush=True)  # fmt: skip
    finally:
        to_vm.put(None)
        to_promtool.put(None)
        for w in workers:
            w.join()
    if failed:
        sys.exit(failed[0])
    return done


# --- the two stores -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STARTED: list[subprocess.Popen[bytes]] = []  # stopped however the run ends (main's finally)


class Store:
    def __init__(self, name: str, argv: list[str], url: str, ready: str, log: Path) -> None:
        self.name, self.url = name, url
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        STARTED.append(self.proc)
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(url + ready, timeout=2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{name} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def query(self, path: str, params: dict[str, str]) -> float:
        """Seconds one query took, inf past QUERY_TIMEOUT_S (shown as such); exits on an error (a
        failed query has no time worth quoting)."""
        t0 = time.perf_counter()
        try:
            url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
            with urllib.request.urlopen(url, timeout=QUERY_TIMEOUT_S) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            sys.exit(f"{self.name} refused {params.get('query')}: {e.read()[:500]!r}")
        except TimeoutError:
            print(f"{self.name}: no answer within {QUERY_TIMEOUT_S} s to {params.get('query')}")
            return float("inf")
        took = time.perf_counter() - t0
        if body.get("status") != "success":
            sys.exit(f"{self.name}: {body}")
        return took

    def write(self, body: bytes) -> None:
        req = urllib.request.Request(
            f"{self.url}/api/v1/write", data=body,
            headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                     "X-Prometheus-Remote-Write-Version": "0.1.0"},
        )  # fmt: skip
        try:
            urllib.request.urlopen(req, timeout=120).close()
        except OSError as e:
            sys.exit(f"{self.name} refused a remote-write request of {len(body)} bytes: {e}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def compacted(prom: Store, quiet_s: float = 180) -> int:
    """Wait until Prometheus has compacted its blocks (its count unchanged and no compaction for
    `quiet_s`; it plans one a minute); the count of blocks."""

    def metric(name: str) -> float:
        with urllib.request.urlopen(f"{prom.url}/metrics", timeout=60) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        sys.exit(f"Prometheus has no {name}")

    seen = (metric("prometheus_tsdb_blocks_loaded"), metric("prometheus_tsdb_compactions_total"))
    since = time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(15)
        now = (metric("prometheus_tsdb_blocks_loaded"), metric("prometheus_tsdb_compactions_total"))
        if now != seen:
            seen, since = now, time.monotonic()
    return int(seen[0])


def replay(store: Store, bodies: list[bytes], threads: int = 2) -> dict[str, float]:
    """Send `bodies` as fast as the store takes them over keep-alive connections (as vmagent
    does), timed on the store's own CPU: what LKPP's node spends on a backlog coming back."""
    host, port = store.url.removeprefix("http://").split(":")
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}  # fmt: skip
    parts = [bodies[i::threads] for i in range(threads)]

    def send(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        for body in part:
            conn.request("POST", "/api/v1/write", body, headers)
            r = conn.getresponse()
            r.read()
            if r.status >= 300:
                sys.exit(f"{store.name} refused a replayed request: {r.status}")
        conn.close()

    cpu0, t0 = store.cpu_seconds(), time.monotonic()
    workers = [threading.Thread(target=send, args=(part,)) for part in parts]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # At least a clock tick, the resolution of the CPU figure (a tiny replay may read as none).
    return {"wall_s": time.monotonic() - t0, "cpu_s": max(store.cpu_seconds() - cpu0, 1 / TICK)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sites", type=int, default=600)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--live-minutes", type=float, default=10, help="live ingest before the queries start")
    p.add_argument(
        "--replay-scrapes",
        type=int,
        default=20_000,
        help="backlog replayed after the queries: one site's scrape a request, as vmagent's queue holds it",
    )
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=figures.default_path("national"))
    args = p.parse_args()
    for tool in ("victoria-metrics", "prometheus", "promtool"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: scripts/setup installs it (Debian's package)")
    rng = random.Random(args.seed)
    now = time.time() - 120  # the backfill ends two minutes ago; live ingest goes on from there
    sites = make_sites(args.sites, now - args.days * DAY, now, rng)
    work = Path(tempfile.mkdtemp(prefix="lpse-national-bench-", dir="/var/tmp"))
    print(f"{args.sites} sites, {args.days} days at {INTERVAL} s; working in {work}")
    try:
        return run(args, sites, now, work)
    finally:
        for proc in STARTED:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, sites: list[SiteModel], now: float, work: Path) -> int:
    vm_port, prom_port = free_port(), free_port()
    vm = Store(
        "VictoriaMetrics",
        ["victoria-metrics", f"-storageDataPath={work / 'vm'}", f"-httpListenAddr=127.0.0.1:{vm_port}",
         "-retentionPeriod=2y", "-dedup.minScrapeInterval=1ms"],
        f"http://127.0.0.1:{vm_port}", "/health", work / "vm.log",
    )  # fmt: skip
    figures_out: dict[str, dict] = {vm.name: {}, "Prometheus": {}}

    # The history: into VictoriaMetrics as it runs, into Prometheus' blocks before it starts.
    scratch = Path(tempfile.mkdtemp(prefix="lpse-national-bench-", dir="/dev/shm"))
    start = now - args.days * DAY
    cpu0, t0 = vm.cpu_seconds(), time.monotonic()
    try:
        done = backfill(sites, start, now, vm, work / "prom", scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    urllib.request.urlopen(f"{vm.url}/internal/force_flush", timeout=600).close()
    samples = done.samples
    print(f"history: {samples / 1e6:.0f} M samples in {time.monotonic() - t0:.0f} s; made as text in "
          f"{done.made_s:.0f} s of this script's time")  # fmt: skip
    vm_cpu = vm.cpu_seconds() - cpu0
    figures_out[vm.name]["backfill"] = {"how": "JSON lines to /api/v1/import, a UTC day at a time",
                                        "wall_s": round(done.vm_wall_s, 1), "cpu_s": round(vm_cpu, 1),
                                        "samples_per_cpu_s": round(samples / vm_cpu)}  # fmt: skip
    figures_out["Prometheus"]["backfill"] = {
        "how": "promtool tsdb create-blocks-from openmetrics, 2-hour blocks",
        "wall_s": round(done.promtool_wall_s, 1), "cpu_s": round(done.promtool_cpu_s, 1),
        "samples_per_cpu_s": round(samples / done.promtool_cpu_s), "peak_rss_mib": round(done.promtool_peak_rss_mib),
    }  # fmt: skip
    for name, got in figures_out.items():
        b = got["backfill"]
        print(f"{name}: backfill CPU {b['cpu_s']:.0f} s, {b['samples_per_cpu_s'] / 1e3:.0f} k samples per CPU-second")
    figures_out[vm.name]["rss_after_backfill_mib"] = round(vm.peak_rss_mib())

    # Prometheus on its blocks: remote-write receiver for the live part; an out-of-order window
    # for the replay of a 3-day backlog below (by default it refuses samples about an hour old).
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1h}\nstorage: {tsdb: {out_of_order_time_window: 4d}}\nscrape_configs: []\n"
    )
    t0 = time.monotonic()
    prom = Store(
        "Prometheus",
        ["prometheus", f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'prom'}",
         "--storage.tsdb.retention.time=2y", f"--web.listen-address=127.0.0.1:{prom_port}",
         "--web.enable-remote-write-receiver", "--query.max-samples=500000000"],
        f"http://127.0.0.1:{prom_port}", "/-/ready", work / "prom.log",
    )  # fmt: skip
    figures_out[prom.name]["start_on_blocks_s"] = round(time.monotonic() - t0, 1)
    # Prometheus compacts the 2-hour blocks into larger ones (up to 31 days) as a long-running one
    # would have: part of what holding the history costs it, and done before anything is timed.
    cpu0, t0 = prom.cpu_seconds(), time.monotonic()
    blocks = compacted(prom)
    figures_out[prom.name]["compaction"] = {"wall_s": round(time.monotonic() - t0), "blocks_after": blocks,
                                            "cpu_s": round(prom.cpu_seconds() - cpu0, 1)}  # fmt: skip
    print(f"Prometheus: compacted into {blocks} blocks in {time.monotonic() - t0:.0f} s, "
          f"CPU {prom.cpu_seconds() - cpu0:.0f} s")  # fmt: skip
    stores = (vm, prom)
    # Both hold the same history: one site's samples of one series counted in each, against the model.
    first = sites[0]
    expected = len(sample_times(first, start, now))
    query = {"query": f'count_over_time(lpse_national:spse_up{{lpse_site="{first.name}"}}[{args.days + 1}d])',
             "time": f"{now:.3f}"}  # fmt: skip
    for s in stores:
        with urllib.request.urlopen(f"{s.url}/api/v1/query?{urllib.parse.urlencode(query)}", timeout=120) as r:
            held = json.load(r)["data"]["result"]
        if not held or int(float(held[0]["value"][1])) != expected:
            sys.exit(f"{s.name} holds {held} samples of {first.name}'s spse_up, not {expected}")
    print(f"both stores hold {first.name}'s {expected} samples of spse_up")
    # What the node holds: series (RAM grows with them) and disk per sample (VictoriaMetrics'
    # before its background merges shrink it further; Prometheus' after its compaction).
    with urllib.request.urlopen(f"{vm.url}/api/v1/series/count", timeout=60) as r:
        figures_out[vm.name]["series"] = int(json.load(r)["data"][0])
    for s, data_dir in ((vm, work / "vm"), (prom, work / "prom")):
        size = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())
        figures_out[s.name]["disk_mib_after_backfill"] = round(size / 2**20)
        figures_out[s.name]["disk_bytes_per_sample"] = round(size / samples, 3)
        print(f"{s.name}: {size / 2**20:.0f} MiB on disk, {size / samples:.2f} bytes a sample")

    # Live ingest: every site's contract every INTERVAL, as one remote-write request per site,
    # to both stores; runs under the queries too.
    stop = threading.Event()
    live_cpu0 = {s.name: s.cpu_seconds() for s in (vm, prom)}
    live_start = time.monotonic()
    live_samples = [0]

    def ingest() -> None:
        t = now
        while not stop.is_set():
            t = max(t + INTERVAL, time.time() - 5)
            for site in sites:
                if site.within(site.silent, np.array([t]))[0]:
                    continue
                series = samples_at(series_of(site), [t])
                body = remote_write.encode(series)
                for s in (vm, prom):
                    s.write(body)
                live_samples[0] += len(series)
            stop.wait(max(0.0, t + INTERVAL - time.time()))

    feeder = threading.Thread(target=ingest, daemon=True)
    feeder.start()
    print(f"live ingest for {args.live_minutes:g} min before the queries…")
    stop.wait(args.live_minutes * 60)
    # Ingest alone: its CPU and samples (the queries' CPU comes on top after this).
    live_s, ingested = time.monotonic() - live_start, live_samples[0]
    for s in stores:
        figures_out[s.name]["live"] = {"seconds": round(live_s), "samples": ingested,
                                       "cpu_s": round(s.cpu_seconds() - live_cpu0[s.name], 1)}  # fmt: skip

    queries = [("table", name, "/api/v1/query", {"query": q}) for name, q in TABLE_QUERIES.items()]
    queries += [("table (PromQL form)", name, "/api/v1/query", {"query": q}) for name, q in PROMQL.items()]
    queries.append(("table", "info", "/api/v1/query", {"query": INFO_QUERY}))
    day_end = time.time() // DAY * DAY
    for i, name in enumerate(HISTORY_QUERIES):
        site = sites[i % len(sites)].name
        q = HISTORY_QUERIES[name].format(site=site)
        queries.append(("site page", name, "/api/v1/query_range",
                        {"query": q, "start": str(day_end - (args.days - 1) * DAY), "end": str(day_end),
                         "step": "86400", "nocache": "1"}))  # fmt: skip
    results: dict[str, dict[str, dict[str, float]]] = {}
    for view, name, path, params in queries:
        # A MetricsQL query only on VictoriaMetrics, its PromQL form only on Prometheus (VictoriaMetrics
        # refuses a 30-day subquery at a 1-minute step: over its 30 000 points per series).
        on = ((vm,) if not view.endswith("(PromQL form)") else (prom,)) if name in PROMQL else (vm, prom)
        for s in on:
            # The PromQL form takes a minute or more a run at 600 sites: one run says enough.
            runs = 1 if view.endswith("(PromQL form)") else args.runs
            times = sorted(s.query(path, params) for _ in range(runs))
            p50, p95 = statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]
            results.setdefault(f"{view}: {name}", {})[s.name] = {"p50_s": round(p50, 4), "p95_s": round(p95, 4)}
    stop.set()
    feeder.join(120)

    # A backlog coming back (sites after an LKPP or uplink outage): vmagent's queue holds a block
    # per scrape, one site's contract at one time, and sends one a request. Scrapes 30 s off the
    # history's minute grid, so that every sample is new to both stores.
    replayed = [(site, now - 3 * DAY + 30 + INTERVAL * k) for k in range(args.replay_scrapes // len(sites) + 1)
                for site in sites][: args.replay_scrapes]  # fmt: skip
    bodies = [remote_write.encode(samples_at(series_of(site), [t])) for site, t in replayed]
    rows = sum(len(series_of(site)) for site, _ in replayed)
    for s in stores:
        sent = replay(s, bodies)
        figures_out[s.name]["replay"] = {
            "requests": len(bodies), "samples": rows, "wall_s": round(sent["wall_s"], 1),
            "cpu_s": round(sent["cpu_s"], 1), "cpu_us_per_sample": round(sent["cpu_s"] / rows * 1e6, 2),
            "samples_per_cpu_s": round(rows / sent["cpu_s"]),
        }  # fmt: skip
        print(f"{s.name}: replay of {len(bodies)} scrapes ({rows} samples) in {sent['wall_s']:.0f} s, CPU "
              f"{sent['cpu_s']:.1f} s: {rows / sent['cpu_s'] / 1e3:.0f} k samples per CPU-second")  # fmt: skip
    for s in stores:
        figures_out[s.name]["peak_rss_mib"] = round(s.peak_rss_mib())
        s.stop()

    print(f"\n{'query':<44} {'VM p50':>8} {'VM p95':>8} {'Prom p50':>9} {'Prom p95':>9} {'p95 ratio':>10}")
    for key, r in results.items():
        v, pr = r.get("VictoriaMetrics"), r.get("Prometheus")
        if pr is None or v is None:
            x = v or pr
            assert x is not None
            where = (
                f"{x['p50_s']:>8.3f} {x['p95_s']:>8.3f}" + " " * 20
                if v
                else " " * 18 + f"{x['p50_s']:>9.3f} {x['p95_s']:>9.3f}"
            )
            print(f"{key:<44} {where}")
            continue
        ratio = pr["p95_s"] / v["p95_s"] if v["p95_s"] else float("inf")
        print(f"{key:<44} {v['p50_s']:>8.3f} {v['p95_s']:>8.3f} {pr['p50_s']:>9.3f} {pr['p95_s']:>9.3f} {ratio:>9.1f}x")
    for name, got in figures_out.items():
        live = got["live"]
        print(f"{name}: live ingest {live['samples']} samples in {live['seconds']} s, CPU {live['cpu_s']} s; "
              f"peak RSS {got['peak_rss_mib']} MiB; backfill {got['backfill']}")  # fmt: skip
    worst = max(r["VictoriaMetrics"]["p95_s"] for r in results.values() if "VictoriaMetrics" in r)
    print(f"slowest p95 of the national page's queries on VictoriaMetrics: {worst:.3f} s (goal: under 1 s)")
    figures.write(
        "national",
        {"sites": args.sites, "days": args.days, "interval_s": INTERVAL, "runs": args.runs,
         "replay_scrapes": args.replay_scrapes,
         "history_samples": samples, "stores": figures_out, "queries": results, "slowest_p95_s_victoriametrics": worst},
        args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
