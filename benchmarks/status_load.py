"""The status board under a crowd: when SPSE is down, every bidder reloads the status page.

Requests a second and p50/p95 latency of the public page (`/`) and its feed (`/feed.atom`) on the
lab's monitoring host while SPSE is stopped, side by side with nginx on the same host serving a
static file of the same size as the page (the baseline: the fastest the host could answer).
Goal (issue 15): at least 0.5 of the static rate, at a p95 under 250 ms.

Run on a provisioned lab (`lpse-lab demo`, or after scripts/test with LPSE_LAB_KEEP=1):
    .venv/bin/python benchmarks/status_load.py [--seconds 30] [--clients 32] [--runs 3]

The load comes from ApacheBench (`ab`, Debian's apache2-utils) on this machine, keep-alive, over
HTTPS to the host's nginx, as browsers reach it; the lab hosts share this machine's cores with it,
so the figures compare the three targets with each other, not with a server room. For the
baseline a second nginx site (port 8443, the board's certificate) serves the file for the run and
is removed afterwards; SPSE is started again at the end. Prints the figures and writes them as
JSON (benchmarks/results/status_load.json).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import ssl
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

import figures as results
from lpse_lab import lab

BENCH_SITE = "/etc/nginx/sites-enabled/lpse-bench-static.conf"
BENCH_ROOT = "/var/www/lpse-bench"
STATIC_PORT = 8443


def as_root(address: str, command: str) -> str:
    res = lab.ssh(address, f"sudo sh -c {shlex.quote(command)}")
    if res.returncode:
        raise SystemExit(f"on {address}, {command!r} failed: {res.stderr[-500:]}")
    return res.stdout


def get(address: str, path: str, port: int = 443) -> bytes:
    ctx = ssl.create_default_context(cafile=str(lab.STATE_DIR / "pki" / "lab-ca.crt"))
    ctx.check_hostname = False
    req = urllib.request.Request(f"https://{address}:{port}{path}", headers={"Host": "monitor"})
    with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
        return bytes(r.read())


def ab(url: str, clients: int, seconds: float) -> dict[str, float]:
    """One ApacheBench run: requests a second, p50 and p95 in ms, failures."""
    cmd = ["ab", "-k", "-q", "-c", str(clients), "-t", f"{seconds:g}", "-n", "10000000", "-H", "Host: monitor", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode:
        raise SystemExit(f"ab {url}: {out.stderr[-500:]}")

    def number(pattern: str) -> float:
        found = re.search(pattern, out.stdout, re.MULTILINE)
        return float(found[1]) if found else 0.0

    return {
        "requests_per_s": number(r"^Requests per second:\s+([\d.]+)"),
        "p50_ms": number(r"^\s+50%\s+(\d+)"),
        "p95_ms": number(r"^\s+95%\s+(\d+)"),
        "requests": number(r"^Complete requests:\s+(\d+)"),
        "failed": number(r"^Failed requests:\s+(\d+)") + number(r"^Non-2xx responses:\s+(\d+)"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30, help="each measurement")
    p.add_argument("--clients", type=int, default=32, help="bidders reloading at once (keep-alive connections)")
    p.add_argument("--runs", type=int, default=3, help="rounds of the three targets; medians are reported")
    p.add_argument("--out", type=Path, default=results.default_path("status_load"), help="JSON file")
    args = p.parse_args()
    if shutil.which("ab") is None:
        raise SystemExit("ab is missing: apt-get install apache2-utils")
    cfg = lab.load_config()
    monitor = next(h for h in cfg.hosts if h.name == "monitor")
    spse = next(h for h in cfg.hosts if h.name == "spse")
    as_root(spse.address, "systemctl stop spse")
    try:
        deadline = time.monotonic() + 120
        while b'data-state="down"' not in (page := get(monitor.address, "/")):
            if time.monotonic() > deadline:
                raise SystemExit("the status page did not say SPSE is down within 120 s")
            time.sleep(2)
        feed = get(monitor.address, "/feed.atom")
        as_root(monitor.address, f"install -d {BENCH_ROOT} && head -c {len(page)} /dev/urandom | base64 -w 100 "
                                 f"| head -c {len(page)} > {BENCH_ROOT}/page.html")  # fmt: skip
        tls = "/etc/nginx/tls/lpse-status"
        site = (f"server {{ listen {STATIC_PORT} ssl; server_name monitor; ssl_certificate {tls}.crt; "
                f"ssl_certificate_key {tls}.key; root {BENCH_ROOT}; access_log off; }}")  # fmt: skip
        as_root(monitor.address, f"echo {shlex.quote(site)} > {BENCH_SITE} && nginx -t -q && systemctl reload nginx")
        time.sleep(2)
        static = get(monitor.address, "/page.html", STATIC_PORT)
        targets = {
            "static file (nginx)": f"https://{monitor.address}:{STATIC_PORT}/page.html",
            "public page": f"https://{monitor.address}/",
            "feed": f"https://{monitor.address}/feed.atom",
        }
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for r in range(args.runs):
            for name, url in targets.items():
                ab(url, args.clients, 3)  # warm: connections, the board's shared figures
                rounds[name].append(ab(url, args.clients, args.seconds))
                print(f"round {r + 1}, {name}: {rounds[name][-1]}", flush=True)
    finally:
        as_root(monitor.address, f"rm -f {BENCH_SITE} && rm -rf {BENCH_ROOT} && systemctl reload nginx")
        as_root(spse.address, "systemctl start spse")
    medians = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in rounds.items()}
    base = medians["static file (nginx)"]["requests_per_s"]
    print(f"\nSPSE down, {args.clients} clients, {args.seconds:g} s each, medians of {args.runs} rounds "
          f"(page {len(page)} bytes, feed {len(feed)}, static {len(static)}):")  # fmt: skip
    out: dict[str, dict[str, object]] = {}
    for name, m in medians.items():
        ratio = m["requests_per_s"] / base
        out[name] = m | {"ratio_to_static": round(ratio, 3), "rounds": rounds[name]}
        print(f"  {name:20} {m['requests_per_s']:9.1f} requests/s ({ratio:.3f} of static), p50 {m['p50_ms']:.0f} ms, "
              f"p95 {m['p95_ms']:.0f} ms, failed {m['failed']:.0f}")  # fmt: skip
    goal = all(
        medians[n]["requests_per_s"] >= 0.5 * base and medians[n]["p95_ms"] < 250 for n in ("public page", "feed")
    )
    print(f"goal (>= 0.5 of static at p95 < 250 ms): {'met' if goal else 'NOT met'}")
    results.write("status_load", {"clients": args.clients, "seconds": args.seconds, "runs": args.runs,
                                  "page_bytes": len(page), "feed_bytes": len(feed), "goal_met": goal,
                                  "targets": out}, args.out)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
