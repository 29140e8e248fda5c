"""The status board under a crowd: when SPSE is down, every bidder reloads the status page.

Requests a second and p50/p95 latency of the public page (`/`) and its feed (`/feed.atom`) on the
lab's monitoring host while SPSE is stopped, side by side with nginx on the same host serving a
static file of the same size as each (the baseline: the fastest the host could answer).
Goal (issue 15): at least 0.5 of the static rate, at a p95 under 250 ms.

Run on a provisioned lab (`lpse-lab demo`, or after scripts/test with LPSE_LAB_KEEP=1):
    .venv/bin/python benchmarks/status_load.py [--seconds 30] [--clients 32] [--runs 3]

The load comes from ApacheBench (`ab`, Debian's apache2-utils) on this machine, keep-alive, over
HTTPS to the host's nginx, as browsers reach it; the lab hosts share this machine's cores with it,
so the figures compare the targets with each other, not with a server room. For the
baselines a second nginx site (port 8443, the board's certificate) serves the files for the run
and is removed afterwards; SPSE is started again at the end. While SPSE is down an incident is open
with an update (as on-call would have posted), resolved at the end. Prints the figures and writes them as
JSON (benchmarks/results/status_load.json).
"""

from __future__ import annotations

import argparse
import json
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
LPSE_STATUS = "sudo -u lpse-status /opt/lpse-status/venv/bin/lpse-status"
BENCH_RULE = "lpse-bench-static"  # the nftables rule that lets this machine reach the baseline's port
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


# The board alone, without nginx and its cache: a Python client on the monitoring host itself asks
# waitress for the page as fast as it answers (what nginx's one-second cache spares it).
BOARD_ALONE = """
import http.client, json, sys, threading, time
path, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
times, failed, end = [], [0], time.monotonic() + seconds
def run():
    c = http.client.HTTPConnection("127.0.0.1", 9180, timeout=60)
    while time.monotonic() < end:
        t = time.monotonic()
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        times.append(time.monotonic() - t)
        failed[0] += r.status != 200
threads = [threading.Thread(target=run) for _ in range(clients)]
[x.start() for x in threads]
[x.join() for x in threads]
times.sort()
print(json.dumps({"requests_per_s": len(times) / seconds, "p50_ms": 1000 * times[len(times) // 2],
                  "p95_ms": 1000 * times[int(len(times) * 0.95)], "requests": len(times), "failed": failed[0]}))
"""


def board_alone(address: str, path: str, clients: int, seconds: float) -> dict[str, float]:
    out = lab.ssh(address, f"python3 -c {shlex.quote(BOARD_ALONE)} {path} {clients} {seconds:g}",
                  timeout=seconds + 120)  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the board alone on {address}: {out.stderr[-500:]}")
    return dict(json.loads(out.stdout))


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
    # As on a real day: on-call has said what is known, so the page and the feed carry an incident.
    said = (
        "--summary-id 'SPSE tidak dapat diakses' --summary-en 'SPSE cannot be reached' --severity critical "
        "--affects spse --message-id 'Server SPSE mati, sedang kami periksa.' --by benchmark"
    )
    opened = lab.ssh(monitor.address, f"{LPSE_STATUS} incidents open {said}")
    if opened.returncode:
        raise SystemExit(f"could not open the benchmark's incident: {opened.stderr[-500:]}")
    incident = opened.stdout.split(":")[0]
    try:
        deadline = time.monotonic() + 120
        while b'data-state="down"' not in (page := get(monitor.address, "/")):
            if time.monotonic() > deadline:
                raise SystemExit("the status page did not say SPSE is down within 120 s")
            time.sleep(2)
        feed = get(monitor.address, "/feed.atom")
        # A static file of each one's size (random, base64: neither compresses nor repeats).
        for name, body in (("page", page), ("feed", feed)):
            as_root(monitor.address, f"install -d {BENCH_ROOT} && head -c {len(body)} /dev/urandom | base64 -w 100 "
                                     f"| head -c {len(body)} > {BENCH_ROOT}/{name}.html")  # fmt: skip
        tls = "/etc/nginx/tls/lpse-status"
        site = (f"server {{ listen {STATIC_PORT} ssl; server_name monitor; ssl_certificate {tls}.crt; "
                f"ssl_certificate_key {tls}.key; root {BENCH_ROOT}; access_log off; }}")  # fmt: skip
        as_root(monitor.address, f"echo {shlex.quote(site)} > {BENCH_SITE} && nginx -t -q && systemctl reload nginx")
        # The host's firewall drops every port it does not serve: open the baseline's for the run.
        as_root(monitor.address, f"nft insert rule inet lpse_filter input tcp dport {STATIC_PORT} "
                                 f"ip saddr {cfg.gateway} accept comment {BENCH_RULE}")  # fmt: skip
        time.sleep(2)
        assert len(get(monitor.address, "/page.html", STATIC_PORT)) == len(page)
        targets = {
            "static, page's size": f"https://{monitor.address}:{STATIC_PORT}/page.html",
            "public page": f"https://{monitor.address}/",
            "static, feed's size": f"https://{monitor.address}:{STATIC_PORT}/feed.html",
            "feed": f"https://{monitor.address}/feed.atom",
        }
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        alone: list[dict[str, float]] = []
        for r in range(args.runs):
            for name, url in targets.items():
                ab(url, args.clients, 3)  # warm: connections, the board's shared figures
                rounds[name].append(ab(url, args.clients, args.seconds))
                print(f"round {r + 1}, {name}: {rounds[name][-1]}", flush=True)
            alone.append(board_alone(monitor.address, "/", args.clients, min(args.seconds, 15)))
            print(f"round {r + 1}, public page, board alone: {alone[-1]}", flush=True)
    finally:
        as_root(monitor.address, f"rm -f {BENCH_SITE} && rm -rf {BENCH_ROOT} && systemctl reload nginx")
        handles = re.findall(rf"comment \"{BENCH_RULE}\" # handle (\d+)",
                             as_root(monitor.address, "nft -a list chain inet lpse_filter input"))  # fmt: skip
        for handle in handles:
            as_root(monitor.address, f"nft delete rule inet lpse_filter input handle {handle}")
        as_root(spse.address, "systemctl start spse")
        lab.ssh(monitor.address, f"{LPSE_STATUS} incidents update {incident} --state resolved "
                                 "--message-id 'Pengujian beban selesai.' --by benchmark")  # fmt: skip
    medians = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in rounds.items()}
    print(
        f"\nSPSE down, {args.clients} clients, {args.seconds:g} s each, medians of {args.runs} rounds "
        f"(page {len(page)} bytes, feed {len(feed)}; each beside nginx serving a static file of its size):"
    )
    out: dict[str, dict[str, object]] = {}
    ratios: dict[str, float] = {}
    for name, static in (("public page", "static, page's size"), ("feed", "static, feed's size")):
        for shown in (static, name):
            m = medians[shown]
            ratios[shown] = ratio = m["requests_per_s"] / medians[static]["requests_per_s"]
            out[shown] = m | {"ratio_to_static": round(ratio, 3), "rounds": rounds[shown]}
            print(f"  {shown:20} {m['requests_per_s']:9.1f} requests/s ({ratio:.3f} of static), "
                  f"p50 {m['p50_ms']:.0f} ms, p95 {m['p95_ms']:.0f} ms, failed {m['failed']:.0f}")  # fmt: skip
    board = {k: statistics.median(x[k] for x in alone) for k in alone[0]}
    print(
        f"  without nginx's cache, the board alone (a client on the host): {board['requests_per_s']:.1f} "
        f"pages/s, p50 {board['p50_ms']:.0f} ms, p95 {board['p95_ms']:.0f} ms, failed {board['failed']:.0f}"
    )
    goal = all(ratios[n] >= 0.5 and medians[n]["p95_ms"] < 250 and not medians[n]["failed"]
               for n in ("public page", "feed"))  # fmt: skip
    print(f"goal (>= 0.5 of static at p95 < 250 ms): {'met' if goal else 'NOT met'}")
    results.write("status_load", {"clients": args.clients, "seconds": args.seconds, "runs": args.runs,
                                  "page_bytes": len(page), "feed_bytes": len(feed), "goal_met": goal,
                                  "targets": out, "board_alone": board | {"rounds": alone}}, args.out)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
