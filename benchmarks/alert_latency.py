"""Seconds from a fault on the SPSE lab host to the on-call e-mail, and from its repair to the
"resolved" e-mail, for each fault of lpse_lab.faults.

Run on a provisioned lab (scripts/demo, or after scripts/test with LPSE_LAB_KEEP=1):
    .venv/bin/python benchmarks/alert_latency.py [--rounds 3]

Baseline: the 60 s the on-call rota is promised for "SPSE down" (issue 4); the lab's timings are
inventories/lab/group_vars/monitoring_servers/main.yml (probe, scrape and evaluation every 2 s,
SpseDown/HostDown/DiskCritical after 10 s, critical group_wait 2 s). The production defaults
(5 s probe, 10 s scrape and evaluation, SpseDown after 20 s, group_wait 5 s) add up to at most
5 + 10 + 10 + 20 + 5 = 50 s in the worst phase alignment (roles/prometheus/defaults/main.yml).
"""

from __future__ import annotations

import argparse
import statistics

from lpse_lab import faults, lab

PROMISE_S = 60.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    cfg = lab.load_config()
    spse = next(h for h in cfg.hosts if h.name == "spse")
    print(f"{'fault':<36} {'alert':<13} {'firing s (median, max)':>24} {'resolved s (median, max)':>26}")
    for fault in faults.FAULTS:
        runs = [faults.measure(fault, spse) for _ in range(args.rounds)]
        firing = [r.firing_s for r in runs if r.firing_s is not None]
        resolved = [r.resolved_s for r in runs if r.resolved_s is not None]
        missed = args.rounds - len(firing)

        def fmt(xs: list[float]) -> str:
            return f"{statistics.median(xs):6.1f}, {max(xs):6.1f}" if xs else "none"

        line = f"{fault.name:<36} {fault.alertname:<13} {fmt(firing):>24} {fmt(resolved):>26}"
        if missed:
            line += f"  ({missed} of {args.rounds} never arrived)"
        if fault.alertname == "SpseDown" and firing:
            line += f"  ratio to the {PROMISE_S:.0f} s promise: {max(firing) / PROMISE_S:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
