"""LKPP's national store at scale (issue 14): VictoriaMetrics 1.79 as roles/national_store runs it
vs Prometheus 2.42 as remote-write receiver (the baseline), side by side on this machine, fed the
same data: N simulated sites' telemetry contracts (the series of docs/national-telemetry.md),
with outages, silent spells, maintenance and drifting values, 90 days of history, then live
ingest at the contract's real interval while every query of the national page
(lpse_status.national) runs `--runs` times on each store. Prints ingest CPU seconds and peak RSS
of both, p50/p95 of every query, the ratios, and writes benchmarks/results/national.json.

History, scaled to what this 2-core machine can make and send in minutes (a full 90 days of
600 sites at the real 60 s interval is 600 x 39 x 129 600 = 3.0 G samples): every site at the
real interval for its last `--recent-days` (what the table reads: the last 15 min, 30 d of
contract_info: `--seen-days`), at `--history-step` before that, and `--detail-sites` sites at the real interval
for all 90 days (what a site's page reads: a query reads only its own site's series, so its cost
is that of any site with full history). Both stores get everything by remote write, history
first (Prometheus with an out-of-order window of the history's length: by default it refuses
samples about an hour old), each store's writes timed on their own.

    .venv/bin/python benchmarks/national.py [--sites 600] [--runs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import figures
from lpse_lab import remote_write
from lpse_status.national import HISTORY_QUERIES, INFO_QUERY, TABLE_QUERIES

INTERVAL = 60  # the contract's real interval (lkpp_telemetry_scrape_interval)
QUERY_TIMEOUT_S = 120
# PromQL for what the page asks in MetricsQL (Prometheus has no tlast_over_time): the newest
# sample's time through a subquery (at 10 min: at the real 1 min it took 32 s for 30 sites).
PROMQL = {"last_seen": "max by (lpse_site) (max_over_time(timestamp(lpse_national:contract_info)[30d:10m]))"}
DAY = 86400
PROVINCES = 38
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

    def in_any(self, spans: tuple[tuple[float, float], ...], t: float) -> bool:
        return any(a <= t < b for a, b in spans)


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


Value = float | Callable[[float], float]


def series_of(site: SiteModel) -> list[tuple[dict[str, str], Value]]:
    """The site's contract (docs/national-telemetry.md) as its Prometheus records it: each series
    with its value, a constant or a function of the time."""

    def lost(t: float, window: float) -> float:
        return sum(max(0.0, min(b, t) - max(a, t - window)) for a, b in site.outages) / window

    def wobble(t: float) -> float:
        return math.sin(t / 7200 + site.seed % 100)

    def down(t: float) -> float:
        return 1.0 if site.in_any(site.outages, t) else 0.0

    out: list[tuple[dict[str, str], Value]] = [
        ({"__name__": "lpse_national:contract_info", "contract_version": "1", "lpse_ops_version": site.version,
          "config_fingerprint": site.fingerprint}, 1.0),
        ({"__name__": "lpse_national:spse_up"}, lambda t: 1.0 - down(t)),
        ({"__name__": "lpse_national:spse_probe_duration_seconds"}, lambda t: 0.2 + 0.1 * wobble(t)),
        ({"__name__": "lpse_national:maintenance_active"}, lambda t: 1.0 if site.in_any(site.maintenance, t) else 0.0),
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


def sample_times(site: SiteModel, start: float, end: float, step: float) -> list[float]:
    first = math.ceil(start / step) * step
    return [t for t in (first + i * step for i in range(int((end - first) // step) + 1)) if t < end
            and not site.in_any(site.silent, t)]  # fmt: skip


def samples_at(series: list[tuple[dict[str, str], Value]], times: list[float]) -> list[remote_write.Series]:
    out: list[remote_write.Series] = []
    for labels, value in series:
        stamps = [int(t * 1000) for t in times]
        values = [value] * len(times) if isinstance(value, float) else [value(t) for t in times]
        out.append((labels, list(zip(values, stamps, strict=True))))
    return out


def history(sites: list[SiteModel], args: argparse.Namespace, now: float) -> Iterator[list[remote_write.Series]]:
    """Each site's series with their samples before `now`, a site at a time."""
    start = now - args.days * DAY
    recent = now - args.recent_days * DAY
    seen = now - args.seen_days * DAY
    for i, site in enumerate(sites):
        series = series_of(site)
        if i < args.detail_sites:
            yield samples_at(series, sample_times(site, start, now, INTERVAL))
            continue
        times = sample_times(site, start, recent, args.history_step) + sample_times(site, recent, now, INTERVAL)
        # contract_info at the real interval over what the table's "last sent" reads.
        info, rest = series[:1], series[1:]
        info_times = sorted(set(times) | set(sample_times(site, seen, now, INTERVAL)))
        yield samples_at(info, info_times) + samples_at(rest, times)


def batches(series: list[remote_write.Series], most: int = 100_000) -> Iterator[list[remote_write.Series]]:
    """Requests of at most `most` samples (a few MB; VictoriaMetrics takes up to 32 MB a request),
    a long series split across them."""
    batch: list[remote_write.Series] = []
    room = most
    for labels, points in series:
        points = list(points)
        while points:
            part, points = points[:room], points[room:]
            batch.append((labels, part))
            room -= len(part)
            if room == 0:
                yield batch
                batch, room = [], most
    if batch:
        yield batch


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
    return {"wall_s": time.monotonic() - t0, "cpu_s": store.cpu_seconds() - cpu0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sites", type=int, default=600)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--recent-days", type=float, default=2, help="days at the real interval for every site")
    p.add_argument("--history-step", type=int, default=3600, help="seconds between samples before that")
    p.add_argument("--detail-sites", type=int, default=10, help="sites at the real interval for all --days")
    p.add_argument("--seen-days", type=float, default=30, help="days of contract_info at the real interval, every site")
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
    for tool in ("victoria-metrics", "prometheus"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: scripts/setup installs it (Debian's package)")
    rng = random.Random(args.seed)
    now = time.time() - 120  # the backfill ends two minutes ago; live ingest goes on from there
    sites = make_sites(args.sites, now - args.days * DAY, now, rng)
    work = Path(tempfile.mkdtemp(prefix="lpse-national-bench-", dir="/var/tmp"))
    print(f"{args.sites} sites, {args.days} days ({args.detail_sites} at {INTERVAL} s throughout, the rest at "
          f"{args.history_step} s before the last {args.recent_days} days); working in {work}")  # fmt: skip
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
    # Prometheus takes old samples by remote write only within an out-of-order window (2.39+);
    # by default it refuses those about an hour old.
    (work / "prometheus.yml").write_text(
        f"global: {{scrape_interval: 1h}}\nstorage: {{tsdb: {{out_of_order_time_window: {args.days + 1}d}}}}\n"
        "scrape_configs: []\n"
    )
    prom = Store(
        "Prometheus",
        ["prometheus", f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'prom'}",
         "--storage.tsdb.retention.time=2y", f"--web.listen-address=127.0.0.1:{prom_port}",
         "--web.enable-remote-write-receiver", "--query.max-samples=500000000"],
        f"http://127.0.0.1:{prom_port}", "/-/ready", work / "prom.log",
    )  # fmt: skip
    stores = (vm, prom)
    figures_out: dict[str, dict] = {s.name: {} for s in stores}

    # The same history to both, a site's series per request, each store timed on its own writes.
    cpu0 = {s.name: s.cpu_seconds() for s in stores}
    spent = dict.fromkeys(cpu0, 0.0)
    samples, t_gen = 0, time.monotonic()
    for site_series in history(sites, args, now):
        for batch in batches(site_series):
            body = remote_write.encode(batch)
            samples += sum(len(points) for _, points in batch)
            for s in stores:
                t0 = time.monotonic()
                s.write(body)
                spent[s.name] += time.monotonic() - t0
    urllib.request.urlopen(f"{vm.url}/internal/force_flush", timeout=600).close()
    print(f"history: {samples / 1e6:.1f} M samples, made and sent in {time.monotonic() - t_gen:.0f} s")
    for s in stores:
        took = spent[s.name]
        figures_out[s.name]["backfill"] = {"write_s": round(took, 1), "cpu_s": round(s.cpu_seconds() - cpu0[s.name], 1),
                                           "samples_per_s": round(samples / took)}  # fmt: skip
        print(f"{s.name}: backfill {took:.0f} s of writes, {samples / took / 1e3:.0f} k samples/s, "
              f"CPU {s.cpu_seconds() - cpu0[s.name]:.0f} s")  # fmt: skip
    for s in (vm, prom):
        figures_out[s.name]["rss_after_backfill_mib"] = round(s.peak_rss_mib())
    # What the node holds: series (RAM grows with them) and, for VictoriaMetrics, disk per sample
    # (flushed, before its background merges shrink it further).
    with urllib.request.urlopen(f"{vm.url}/api/v1/series/count", timeout=60) as r:
        figures_out[vm.name]["series"] = int(json.load(r)["data"][0])
    with urllib.request.urlopen(f"{prom.url}/api/v1/status/tsdb", timeout=60) as r:
        figures_out[prom.name]["series"] = int(json.load(r)["data"]["headStats"]["numSeries"])
    vm_bytes = sum(f.stat().st_size for f in (work / "vm").rglob("*") if f.is_file())
    figures_out[vm.name]["disk_mib_after_backfill"] = round(vm_bytes / 2**20)
    figures_out[vm.name]["disk_bytes_per_sample"] = round(vm_bytes / samples, 3)
    print(
        f"series: VictoriaMetrics {figures_out[vm.name]['series']}, Prometheus {figures_out[prom.name]['series']}; "
        f"VictoriaMetrics on disk {vm_bytes / 2**20:.0f} MiB, {vm_bytes / samples:.2f} bytes a sample"
    )

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
                if site.in_any(site.silent, t):
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
        site = sites[i % max(1, args.detail_sites)].name
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
        {"sites": args.sites, "days": args.days, "detail_sites": args.detail_sites, "recent_days": args.recent_days,
         "history_step_s": args.history_step, "interval_s": INTERVAL, "runs": args.runs,
         "replay_scrapes": args.replay_scrapes,
         "history_samples": samples, "stores": figures_out, "queries": results, "slowest_p95_s_victoriametrics": worst},
        args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
