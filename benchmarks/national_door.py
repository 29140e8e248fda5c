"""CPU a site's remote-write request costs at LKPP's national door (roles/national_gateway: nginx
with TLS and basic auth, vmauth, VictoriaMetrics), by the hash of the site's login.

nginx checks the login's hash on every request (it keeps no cache of good logins). A site's
vmagent sends one request a minute, and after an outage replays its queue one block (one
scrape, ~1 KB) a request: what one request costs decides how many sites one LKPP server holds
and how fast they may replay (lkpp_telemetry_rate_limit_bytes).

Run on a provisioned lab (`lpse-lab demo`, or after scripts/test with LPSE_LAB_KEEP=1); the
benchmark applies playbooks/national.yml to the lab's lkpp host first (idempotent):
    .venv/bin/python benchmarks/national_door.py [--seconds 60] [--rate 15]

Side by side on the same door, the same site and the same requests: the site's login under
SHA-512-crypt (what roles/national_gateway requires of a site) and, as the baseline, under bcrypt
at cost 12 (what the national example inventory prescribed before) and at cost 10 (the lowest
the role accepts for a person's password). For bcrypt the lab's door file is changed for the
run (nginx reads it on every request) and put back afterwards. Requests are paced below the
door's per-address limit (national_gateway_requests_per_second, 20 a second); what each process
on the lkpp host spends is read from /proc, less what it spends idle over as long a time.
Prints the figures and writes them as JSON (benchmarks/results/national_door.json).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import ssl
import statistics
import time
from base64 import b64encode
from pathlib import Path

import bcrypt
import figures as results
import yaml
from lpse_lab import lab, remote_write
from lpse_lab.cli import lab_secrets, playbook

SITE = "kab-contoh"  # the lab's second site at LKPP (inventories/lab/group_vars/lkpp_national)
DOOR_FILE = "/etc/nginx/national.htpasswd"
# The processes a request passes through on the lkpp host (comm, as /proc shows it: 15 characters).
STACK = {"nginx": "nginx", "vmauth": "vmauth", "victoria-metrics": "victoria-metric"}
SITES = 540  # LPSE units LKPP supervises
TICK = os.sysconf("SC_CLK_TCK")


def stack_cpu(host: lab.LabHost) -> dict[str, float]:
    """CPU seconds each part of the door's stack has spent so far (all its processes)."""
    spent = dict.fromkeys(STACK, 0.0)
    for pid in lab.cgroup_pids(host):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        for part, name in STACK.items():
            if comm == name:
                spent[part] += (int(fields[11]) + int(fields[12])) / TICK
    return spent


def one_scrape(t_ms: int) -> bytes:
    """A request as a site's vmagent sends one scrape of the contract: 39 series, one sample each."""
    series = [({"__name__": f"lpse_national:bench_{i}", "lpse_site": SITE}, [(float(i), t_ms)]) for i in range(39)]
    return remote_write.encode(series)


def send_paced(address: str, secret: str, rate: float, seconds: float) -> int:
    """Requests at `rate` a second for `seconds` over one keep-alive HTTPS connection (as vmagent
    sends); returns how many were sent. Anything but 204 stops the run."""
    ctx = ssl.create_default_context(cafile=str(lab.STATE_DIR / "pki" / "lab-ca.crt"))
    conn = http.client.HTTPSConnection(address, 443, context=ctx, timeout=60)
    headers = {"Authorization": "Basic " + b64encode(f"{SITE}:{secret}".encode()).decode(),
               "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}  # fmt: skip
    start, sent = time.monotonic(), 0
    while time.monotonic() < start + seconds:
        conn.request("POST", "/api/v1/write", one_scrape(int(time.time() * 1000)), headers)
        res = conn.getresponse()
        body = res.read()
        if res.status != 204:
            raise SystemExit(f"the door answered {res.status} to request {sent + 1}: {body[:300]!r}")
        sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    conn.close()
    return sent


def as_root(address: str, command: str) -> str:
    res = lab.ssh(address, f"sudo sh -c {shlex.quote(command)}")
    if res.returncode:
        raise SystemExit(f"on the lkpp host, {command!r} failed: {res.stderr[-500:]}")
    return res.stdout


def measure(host: lab.LabHost, secret: str, rate: float, seconds: float) -> dict[str, float]:
    """CPU milliseconds a request, per part of the stack, less the idle spend over the same time."""
    idle0 = stack_cpu(host)
    time.sleep(seconds)
    idle1 = stack_cpu(host)
    sent = send_paced(host.address, secret, rate, seconds)
    busy = stack_cpu(host)
    figures: dict[str, float] = {"requests": sent}
    for part in STACK:
        extra = (busy[part] - idle1[part]) - (idle1[part] - idle0[part])
        figures[f"{part}_cpu_ms"] = round(max(0.0, extra) * 1000 / sent, 3)
    figures["cpu_ms_a_request"] = round(sum(figures[f"{p}_cpu_ms"] for p in STACK), 3)
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60, help="sending (and as long idle) per hash")
    p.add_argument("--rate", type=float, default=15, help="requests a second (the door allows 20 an address)")
    p.add_argument("--bcrypt-rate", type=float, default=1, help="requests a second under bcrypt (slow on purpose)")
    p.add_argument("--runs", type=int, default=3, help="rounds of all three hashes; the median is reported")
    p.add_argument("--block-bytes", type=int, default=1000, help="a replayed block (the lab measured ~1 KB)")
    p.add_argument("--rate-limit-bytes", type=int, default=None, help="replay limit to judge; default the role's")
    p.add_argument("--no-provision", action="store_true", help="the lkpp host already runs national.yml")
    p.add_argument("--out", type=Path, default=results.default_path("national_door"))
    args = p.parse_args()
    cfg = lab.load_config()
    host = cfg.lkpp
    if not args.no_provision:
        playbook("national.yml")
    secret = lab_secrets()["vault_national_other_site_secret"]
    deployed = as_root(host.address, f"cat {DOOR_FILE}")
    site_line = next((line for line in deployed.splitlines() if line.startswith(f"{SITE}:")), "")
    if not site_line.startswith(f"{SITE}:$6$"):
        raise SystemExit(f"{SITE}'s login on the lkpp host is not SHA-512-crypt: run national.yml from this checkout")
    hashes = {"sha512-crypt": None} | {
        f"bcrypt-{cost}": bcrypt.hashpw(secret.encode(), bcrypt.gensalt(cost)).decode() for cost in (10, 12)
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in hashes}
    as_root(host.address, f"cp -p {DOOR_FILE} {DOOR_FILE}.benchmark")
    try:
        for r in range(args.runs):
            for name, hashed in hashes.items():
                as_root(host.address, f"cp -p {DOOR_FILE}.benchmark {DOOR_FILE}")
                if hashed:
                    line = shlex.quote(f"{SITE}:{hashed}")
                    as_root(host.address, f"grep -v '^{SITE}:' {DOOR_FILE}.benchmark > {DOOR_FILE}.new && "
                                          f"echo {line} >> {DOOR_FILE}.new && cat {DOOR_FILE}.new > {DOOR_FILE} && "
                                          f"rm {DOOR_FILE}.new")  # fmt: skip
                rate = args.rate if hashed is None else args.bcrypt_rate
                runs[name].append(measure(host, secret, rate, args.seconds))
                print(f"round {r + 1}, {name}: {runs[name][-1]}", flush=True)
    finally:
        as_root(host.address, f"cat {DOOR_FILE}.benchmark > {DOOR_FILE} && rm {DOOR_FILE}.benchmark")
    defaults = yaml.safe_load((lab.REPO / "roles/lkpp_telemetry/defaults/main.yml").read_text())
    limit = args.rate_limit_bytes or int(defaults["lkpp_telemetry_rate_limit_bytes"])
    per_site_rps = limit / args.block_bytes
    out: dict[str, dict] = {}
    base = statistics.median(x["cpu_ms_a_request"] for x in runs["bcrypt-12"])
    print(f"\nCPU a request at the door, medians of {args.runs} rounds (baseline bcrypt-12):")
    for name, rounds in runs.items():
        med = {k: statistics.median(x[k] for x in rounds) for k in rounds[0]}
        cores_live = med["cpu_ms_a_request"] / 1000 * SITES / 60
        cores_replay = med["cpu_ms_a_request"] / 1000 * SITES * per_site_rps
        out[name] = med | {"ratio_to_bcrypt_12": round(med["cpu_ms_a_request"] / base, 4),
                           "requests_per_core_s": round(1000 / med["cpu_ms_a_request"]),
                           "cores_540_sites_live": round(cores_live, 3),
                           "cores_540_sites_replaying": round(cores_replay, 2), "rounds": rounds}  # fmt: skip
        print(f"  {name:13} {med['cpu_ms_a_request']:8.2f} ms (nginx {med['nginx_cpu_ms']:.2f}, vmauth "
              f"{med['vmauth_cpu_ms']:.2f}, store {med['victoria-metrics_cpu_ms']:.2f}), "
              f"{med['cpu_ms_a_request'] / base:.4f} of bcrypt-12; one core: {1000 / med['cpu_ms_a_request']:.0f} "
              f"requests/s; {SITES} sites live: {cores_live:.3f} cores, replaying at {limit} B/s "
              f"({per_site_rps:.1f} requests/s a site): {cores_replay:.2f} cores")  # fmt: skip
    results.write("national_door", {"sites": SITES, "rate_limit_bytes": limit, "block_bytes": args.block_bytes,
                                    "seconds": args.seconds, "rate": args.rate, "bcrypt_rate": args.bcrypt_rate,
                                    "hashes": out}, args.out)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
