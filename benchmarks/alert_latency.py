"""Seconds from a fault on the SPSE lab host to the on-call e-mail, and from its repair to the
"resolved" e-mail, for each fault of lpse_lab.faults.

Run on a provisioned lab (scripts/demo, or after scripts/test with LPSE_LAB_KEEP=1):
    .venv/bin/python benchmarks/alert_latency.py [--rounds 3] [--site-timings]

--site-timings first applies the roles' own defaults for every timing the lab inventory makes
faster (read from roles/*/defaults/main.yml), measures with those, then puts the lab's back.

Baseline: the 60 s the on-call rota is promised for "SPSE down" (issue 4); the lab's timings are
inventories/lab/group_vars/monitoring_servers/main.yml (probe, scrape and evaluation every 2 s,
SpseDown/HostDown/DiskCritical after 10 s, critical group_wait 2 s). The production defaults
(5 s probe, 10 s scrape and evaluation, SpseDown after 20 s, group_wait 5 s) add up to at most
5 + 10 + 10 + 20 + 5 = 50 s in the worst phase alignment (roles/prometheus/defaults/main.yml).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

import yaml
from lpse_lab import faults, lab
from lpse_lab.cli import ansible_env, playbook_cmd

PROMISE_S = 60.0
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
    args = p.parse_args()
    cfg = lab.load_config()
    if args.site_timings:
        timings = site_timings()
        print("timings: " + ", ".join(f"{k}={v}" for k, v in timings.items()))
        apply_timings(timings)
        try:
            run(cfg, args.rounds)
        finally:
            apply_timings(None)
    else:
        run(cfg, args.rounds)


def run(cfg: lab.LabConfig, rounds: int) -> None:
    spse = next(h for h in cfg.hosts if h.name == "spse")
    print(f"{'fault':<36} {'alert':<13} {'firing s (median, max)':>24} {'resolved s (median, max)':>26}")
    for fault in faults.FAULTS:
        runs = [faults.measure(fault, spse, timeout=240) for _ in range(rounds)]
        firing = [r.firing_s for r in runs if r.firing_s is not None]
        resolved = [r.resolved_s for r in runs if r.resolved_s is not None]
        missed = rounds - len(firing)

        def fmt(xs: list[float]) -> str:
            return f"{statistics.median(xs):6.1f}, {max(xs):6.1f}" if xs else "none"

        line = f"{fault.name:<36} {fault.alertname:<13} {fmt(firing):>24} {fmt(resolved):>26}"
        if missed:
            line += f"  ({missed} of {rounds} never arrived)"
        if fault.alertname == "SpseDown" and firing:
            line += f"  ratio to the {PROMISE_S:.0f} s promise: {max(firing) / PROMISE_S:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
