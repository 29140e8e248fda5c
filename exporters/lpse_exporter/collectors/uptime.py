"""Host boot time, and the SPSE, internet and TLS probes (R1, R8).

Probes touch the network, so they run in a background thread at a fixed interval with a
timeout each; a scrape only reads the latest results and never waits on the network.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

from lpse_exporter.collectors.base import log, read_text


class BootSource:
    name = "uptime"

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root

    def read(self) -> Iterable[Metric]:
        btime = next(
            (int(line[6:]) for line in read_text(self.root / "proc/stat").splitlines() if line.startswith("btime ")),
            None,
        )
        if btime is None:
            raise ValueError("no btime in /proc/stat")
        # When init started (field 22 of /proc/1/stat, in clock ticks after the kernel's boot): the
        # same moment on a server, and in a container (the lab's hosts) its own start, not the
        # machine's. A power cut's incident record needs to know the host is back (lpse_status.power).
        try:
            started = btime + int(read_text(self.root / "proc/1/stat").rsplit(")", 1)[1].split()[19]) / os.sysconf(
                "SC_CLK_TCK"
            )
        except (OSError, IndexError, ValueError):
            started = btime  # /proc/1 not readable here (hidepid): the kernel's boot
        yield GaugeMetricFamily("lpse_boot_time_timestamp_seconds", "When the host (its init) started", value=started)


@dataclass(frozen=True)
class SpseCheck:
    url: str
    ca_file: str | None = None
    markers: tuple[str, ...] = ("SPSE v4",)
    error_markers: tuple[str, ...] = ("Maaf, terjadi error pada aplikasi SPSE.",)


@dataclass(frozen=True)
class InternetTarget:
    name: str
    kind: str  # "tcp" (connect to host:port) or "dns" (resolve host)
    host: str
    port: int = 443


@dataclass(frozen=True)
class TlsTarget:
    host: str
    port: int = 443
    server_name: str | None = None
    ca_file: str | None = None


@dataclass
class ProbeResult:
    up: bool
    seconds: float
    at: float
    status: int = 0
    reason: str = ""
    expiry: float | None = None


@functools.lru_cache(maxsize=8)
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """One context per CA file: loading the CA store on every probe costs CPU and memory."""
    return ssl.create_default_context(cafile=ca_file)


def probe_spse(check: SpseCheck, timeout: float) -> ProbeResult:
    """Up only for a 200 page with SPSE's markers: SPSE's own error page comes with 200."""
    ctx = tls_context(check.ca_file)
    t0 = time.monotonic()
    status, body, reason = 0, "", ""
    try:
        with urllib.request.urlopen(check.url, timeout=timeout, context=ctx) as r:
            status, body = r.status, r.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, reason = e.code, f"HTTP {e.code}"
    except (OSError, ssl.SSLError) as e:
        reason = str(e)
    seconds = time.monotonic() - t0
    up = status == 200 and all(m in body for m in check.markers) and not any(m in body for m in check.error_markers)
    if status == 200 and not up:
        reason = "SPSE error page or markers missing"
    return ProbeResult(up, seconds, time.time(), status, reason)


def probe_internet(target: InternetTarget, timeout: float) -> ProbeResult:
    t0 = time.monotonic()
    try:
        if target.kind == "dns":
            socket.getaddrinfo(target.host, None)
        else:
            socket.create_connection((target.host, target.port), timeout=timeout).close()
        return ProbeResult(True, time.monotonic() - t0, time.time())
    except OSError as e:
        return ProbeResult(False, time.monotonic() - t0, time.time(), reason=str(e))


def probe_tls(target: TlsTarget, timeout: float) -> ProbeResult:
    ctx = tls_context(target.ca_file)
    t0 = time.monotonic()
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=target.server_name or target.host) as tls,
        ):
            cert = tls.getpeercert()
        expiry = ssl.cert_time_to_seconds(str(cert["notAfter"])) if cert else None
        return ProbeResult(True, time.monotonic() - t0, time.time(), expiry=expiry)
    except (OSError, ssl.SSLError, ValueError) as e:  # expired, wrong name, untrusted, unreachable
        return ProbeResult(False, time.monotonic() - t0, time.time(), reason=str(e))


@dataclass
class ProbeSource:
    """Runs the probes every `interval` seconds; read() serves the latest round."""

    spse: SpseCheck | None
    internet: Sequence[InternetTarget] = ()
    tls: Sequence[TlsTarget] = ()
    interval: float = 10.0
    timeout: float = 5.0
    name: str = "probes"
    _results: dict[tuple[str, str], ProbeResult] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))

    def run_once(self) -> None:
        jobs: dict[tuple[str, str], tuple] = {}
        if self.spse:
            jobs[("spse", self.spse.url)] = (probe_spse, self.spse)
        for t in self.internet:
            jobs[("internet", t.name)] = (probe_internet, t)
        for tt in self.tls:
            jobs[("tls", f"{tt.server_name or tt.host}:{tt.port}")] = (probe_tls, tt)
        # One long-lived pool: new threads every round would fragment memory (glibc arenas).
        futures = {key: self._pool.submit(fn, arg, self.timeout) for key, (fn, arg) in jobs.items()}
        results = {key: f.result() for key, f in futures.items()}
        with self._lock:
            self._results = results  # one consistent round, swapped in whole

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:
                    log.exception("probe round failed")
                self._stop.wait(self.interval)

        threading.Thread(target=loop, name="lpse-probes", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False)

    def read(self) -> Iterable[Metric]:
        with self._lock:
            results = dict(self._results)
        if not results:
            raise RuntimeError("no probe round has finished yet")
        spse_up = GaugeMetricFamily("lpse_spse_up", "1 if SPSE served its page (not its error page)", labels=["url"])
        spse_time = GaugeMetricFamily("lpse_spse_probe_duration_seconds", "SPSE page response time", labels=["url"])
        spse_status = GaugeMetricFamily(
            "lpse_spse_http_status", "HTTP status of the SPSE probe (0: none)", labels=["url"]
        )
        net_up = GaugeMetricFamily("lpse_internet_probe_up", "1 if the internet target answered", labels=["target"])
        net_time = GaugeMetricFamily(
            "lpse_internet_probe_duration_seconds", "Internet probe latency", labels=["target"]
        )
        tls_ok = GaugeMetricFamily("lpse_tls_certificate_valid", "1 if the TLS certificate verifies", labels=["target"])
        tls_exp = GaugeMetricFamily(
            "lpse_tls_certificate_expiry_timestamp_seconds", "When the TLS certificate expires", labels=["target"]
        )
        last = GaugeMetricFamily("lpse_probe_last_run_timestamp_seconds", "When the probes last ran")
        last.add_metric([], max(r.at for r in results.values()))
        for (kind, key), r in results.items():
            if kind == "spse":
                spse_up.add_metric([key], float(r.up))
                spse_time.add_metric([key], r.seconds)
                spse_status.add_metric([key], r.status)
            elif kind == "internet":
                net_up.add_metric([key], float(r.up))
                net_time.add_metric([key], r.seconds)
            else:
                tls_ok.add_metric([key], float(r.up))
                if r.expiry is not None:
                    tls_exp.add_metric([key], r.expiry)
        return [spse_up, spse_time, spse_status, net_up, net_time, tls_ok, tls_exp, last]
