"""The lab itself: `up` recovers from a killed run; `down` leaves nothing behind.

Marked `lab_lifecycle`: conftest runs these after every other lab test, and brings the lab
back up at the end so that a later `LPSE_LAB_REUSE=1` run finds it as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN
from lpse_lab import lab

pytestmark = [pytest.mark.lab, pytest.mark.lab_lifecycle]


def lpse_lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "lpse-lab"), *args], capture_output=True, text=True, timeout=300)


def leftovers(cfg: lab.LabConfig) -> list[str]:
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith("lab-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [f"link {name}" for h in cfg.hosts for name in (h.veth,) if f" {name}@" in links or f" {name}:" in links]
    if f" {lab.BRIDGE}:" in links:
        found.append(f"bridge {lab.BRIDGE}")
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {h.root}" for h in cfg.hosts if str(h.root) in mounts]
    found += [f"process nspawn {h.name}" for h in cfg.hosts if lab.nspawn_pids(h)]
    found += [f"cgroup {cg}" for h in cfg.hosts for cg in lab.host_cgroups(h) if cg.exists()]
    if lab.read_pid(lab.APT_PROXY_DIR / "pid"):
        found.append("process apt proxy")
    return found


def test_up_recovers_from_a_killed_host_and_down_leaves_nothing(lab_config: lab.LabConfig, provisioned: object) -> None:
    offroom = next(h for h in lab_config.hosts if h.name == "offroom")
    # A killed run: nspawn dies without cleaning up its mount, namespace and cgroup.
    for pid in lab.nspawn_pids(offroom):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lab.nspawn_pids(offroom) and time.monotonic() < deadline:
        time.sleep(0.1)
    # What is left: the host's systemd and sshd, orphaned, with its mount, netns and cgroup.
    assert not lab.nspawn_pids(offroom)
    assert lab.cgroup_pids(offroom) and lab.netns_exists(offroom.netns), "expected leftovers to recover from"
    orphans = lab.cgroup_pids(offroom)

    res = lpse_lab("up")
    assert res.returncode == 0, res.stderr
    assert lab.nspawn_pids(offroom) and lab.port_open(offroom.address, 22)
    assert not orphans & lab.cgroup_pids(offroom), "orphaned processes of the killed host survived"
    res = lpse_lab("up")  # twice is fine
    assert res.returncode == 0, res.stderr
    status = lpse_lab("status").stdout
    assert all(f"{h.name}" in status for h in lab_config.hosts) and "stopped" not in status

    res = lpse_lab("down")
    assert res.returncode == 0, res.stderr
    assert leftovers(lab_config) == []

    res = lpse_lab("up")
    assert res.returncode == 0, res.stderr
