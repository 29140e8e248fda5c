"""Seconds from a fault on the SPSE lab host to the on-call e-mail, and from its repair to the
"resolved" e-mail, for each fault of lpse_lab.faults.

Run on a provisioned lab (scripts/demo, or after scripts/test with LPSE_LAB_KEEP=1):
    .venv/bin/python benchmarks/alert_latency.py [--rounds 3] [--site-timings] [--faults killed,powered]
Prints p50 and max per fault and writes them, every round's figure and the commit, as JSON
(benchmarks/results/alert_latency.json unless --json says otherwise).

--site-timings first applies the roles' own defaults for every timing the lab inventory makes
faster (read from roles/*/defaults/main.yml), measures with those, then puts the lab's back.

Baseline: the 60 s the on-call rota is promised for "SPSE down" (issue 4); the lab's timings are
inventories/lab/group_vars/monitoring_servers/main.yml (probe, scrape and evaluation every 2 s,
SpseDown/HostDown/DiskCritical after 10 s, critical group_wait 2 s). The production defaults
(roles/*/defaults/main.yml) are what --site-timings measures: a sum of those settings is no
figure (a repeated outage waits for Alertmanager's group tick, which no sum showed).
Each round also records whether the same outage paged twice (SpseDown and SpseUnreachable).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import time
from pathlib import Path

import figures as results
import yaml
from lpse_lab import faults, lab
from lpse_lab.cli import ansible_env, playbook_cmd

PROMISE_S = 60.0
PHASE_S = 10.0  # the roles' default scrape and evaluation interval
RESULTS = results.default_path("alert_latency")
# Timings the lab inventory shortens, by the role that owns them.
TIMINGS = {
    "prometheus": (
        "prometheus_scrape_interval",
        "prometheus_evaluation_interval",
        "prometheus_alert_spse_down_for",
        "prometheus_alert_spse_unreachable_for",
        "prometheus_alert_host_down_for",
        "prometheus_alert_disk_critical_for",
    ),
    "alertmanager": (
        "alertmanager_critical_group_wait",
        "alertmanager_critical_group_interval",
        "alertmanager_warning_group_wait",
        "alertmanager_group_interval",
    ),
    "lpse_exporter": ("lpse_exporter_probe_interval_seconds", "lpse_exporter_probe_timeout_seconds"),
}
TAGS = "prometheus_configure,alertmanager_configure,lpse_exporter_configure"


def site_timings() -> dict[str, object]:
    out: dict[str, object] = {}
    for role, names in TIMINGS.items():
        defaults = yaml.safe_load((lab.REPO / "roles" / role / "defaults" / "main.yml").read_text())
        out |= {n: defaults[n] for n in names}
    return out


def apply_timings(extra: dict[str, object] | None) -> None:
    args = ["--tags", TAGS] + (["-e", json.dumps(extra)] if extra else [])
    subprocess.run(
        playbook_cmd("servers.yml", *args), cwd=lab.REPO, env=ansible_env(), check=True, stdout=subprocess.DEVNULL
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--site-timings", action="store_true", help="measure with the roles' defaults, not the lab's")
    p.add_argument("--faults", default="", help="only the faults whose name contains one of these, comma-separated")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the figures (default {RESULTS})")
    args = p.parse_args()
    cfg = lab.load_config()
    wanted = [w.strip() for w in args.faults.split(",") if w.strip()]
    chosen = [f for f in faults.FAULTS if not wanted or any(w in f.name for w in wanted)]
    if not chosen:
        p.error(f"no fault matches {args.faults!r}; faults: {', '.join(f.name for f in faults.FAULTS)}")
    timings = site_timings() if args.site_timings else {}
    if timings:
        print("timings: " + ", ".join(f"{k}={v}" for k, v in timings.items()))
        apply_timings(timings)
    try:
        figures = run(cfg, chosen, args.rounds)
    finally:
        if timings:
            apply_timings(None)
    results.write(
        "alert_latency",
        {
            "timings": "roles' defaults" if timings else "lab inventory",
            "settings": timings,
            "rounds": args.rounds,
            "promise_s": PROMISE_S,
            "faults": figures,
        },
        args.json,
    )


def run(cfg: lab.LabConfig, chosen: list[faults.Fault], rounds: int) -> list[dict[str, object]]:
    spse = next(h for h in cfg.hosts if h.name == "spse")
    print(f"{'fault':<36} {'alert':<16} {'firing s (p50, max)':>20} {'resolved s (p50, max)':>22}")
    figures: list[dict[str, object]] = []
    for fault in chosen:
        runs = []
        for _ in range(rounds):
            # Rounds last a near multiple of the 10 s scrape and evaluation intervals: started at
            # once, every round would meet the same phase and the max would not be a worst case.
            time.sleep(random.uniform(0, PHASE_S))
            runs.append(faults.measure(fault, spse, timeout=240))
        firing = [r.firing_s for r in runs if r.firing_s is not None]
        resolved = [r.resolved_s for r in runs if r.resolved_s is not None]
        missed = rounds - len(firing)

        def fmt(xs: list[float]) -> str:
            return f"{statistics.median(xs):6.1f}, {max(xs):6.1f}" if xs else "none"

        line = f"{fault.name:<36} {fault.alertname:<16} {fmt(firing):>20} {fmt(resolved):>22}"
        if missed:
            line += f"  ({missed} of {rounds} never arrived)"
        doubled = sum(1 for r in runs if r.also_paged)
        if doubled:
            line += f"  ({doubled} of {rounds} paged twice, as SpseDown and SpseUnreachable)"
        if fault.alertname in ("SpseDown", "SpseUnreachable") and firing:
            line += f"  max / {PROMISE_S:.0f} s promise: {max(firing) / PROMISE_S:.2f}"
        print(line, flush=True)
        figures.append(
            {
                "fault": fault.name,
                "alert": fault.alertname,
                "firing_s": [r.firing_s for r in runs],
                "resolved_s": [r.resolved_s for r in runs],
                "firing_p50_s": statistics.median(firing) if firing else None,
                "firing_max_s": max(firing) if firing else None,
                "resolved_p50_s": statistics.median(resolved) if resolved else None,
                "resolved_max_s": max(resolved) if resolved else None,
                "never_arrived": missed,
                "also_paged": [list(r.also_paged) for r in runs],
                "ratio_max_to_promise": max(firing) / PROMISE_S if firing and missed == 0 else None,
            }
        )
    return figures


if __name__ == "__main__":
    main()
