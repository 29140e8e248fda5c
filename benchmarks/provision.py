"""Wall time of provisioning the lab: first run of site.yml on fresh hosts vs the idempotent rerun.

Baseline: the first provisioning run, on the same hosts in the same invocation. Destroys
the lab's hosts first (the cached template and apt cache stay, so package downloads that
were cached before are not counted: say so when quoting the figures). Figures also go to
benchmarks/results/provision.json.

    .venv/bin/python benchmarks/provision.py [--keep]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import figures
from lpse_lab import lab
from lpse_lab.cli import ansible_env, bootstrap, cmd_up, playbook_cmd

BIN = Path(sys.executable).parent


def timed_site_run() -> tuple[float, str]:
    t0 = time.monotonic()
    res = subprocess.run(
        playbook_cmd("site.yml"),
        cwd=lab.REPO,
        env=ansible_env() | {"ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"site.yml failed:\n{res.stdout[-3000:]}")
    return elapsed, res.stdout


def changed(output: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", action="store_true", help="reuse the running lab instead of fresh hosts")
    args = p.parse_args()
    cfg = lab.load_config()
    if not args.keep:
        lab.destroy(cfg)
    t0 = time.monotonic()
    cmd_up(cfg)
    t_up = time.monotonic() - t0
    t0 = time.monotonic()
    bootstrap()
    t_boot = time.monotonic() - t0
    first, out1 = timed_site_run()
    second, out2 = timed_site_run()
    print(f"\nhosts: {len(cfg.hosts)} ({', '.join(h.name for h in cfg.hosts)})")
    print(f"lab up (hosts from cached template)   {t_up:7.1f} s")
    print(f"bootstrap (pyinfra, bare -> ready)      {t_boot:7.1f} s")
    print(f"site.yml first run (baseline)          {first:7.1f} s   changed={changed(out1)}")
    print(f"site.yml second run (idempotent)       {second:7.1f} s   changed={changed(out2)}")
    print(f"ratio second/first                     {second / first:7.2f}")
    figures.write(
        "provision",
        {
            "hosts": [h.name for h in cfg.hosts],
            "fresh_hosts": not args.keep,
            "lab_up_s": t_up,
            "bootstrap_s": t_boot,
            "first_run_s": first,
            "first_run_changed": changed(out1),
            "second_run_s": second,
            "second_run_changed": changed(out2),
            "ratio_second_to_first": second / first,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
