"""playbooks/preflight.yml stops a malformed inventory before any host is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def preflight(tmp_path: Path, hosts_yml: str) -> subprocess.CompletedProcess[str]:
    """Run the inventory checks; stdout comes back with its line wrapping undone."""
    inv = tmp_path / "hosts.yml"
    inv.write_text(hosts_yml)
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/preflight.yml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "HOME": str(tmp_path),
        },
    )
    res.stdout = " ".join(res.stdout.split())
    return res


def test_duplicate_address_is_refused(tmp_path: Path) -> None:
    res = preflight(
        tmp_path,
        """
all:
  children:
    spse_servers:
      hosts:
        spse: {ansible_host: 127.0.0.1}
    monitoring_servers:
      hosts:
        monitor: {ansible_host: 127.0.0.1}
""",
    )
    assert res.returncode != 0
    assert "has address 127.0.0.1, which another host in the inventory also has" in res.stdout


def test_host_in_no_known_group_is_refused(tmp_path: Path) -> None:
    res = preflight(
        tmp_path,
        """
all:
  hosts:
    stray: {ansible_host: 127.0.0.2}
  children:
    spse_servers:
      hosts:
        spse: {ansible_host: 127.0.0.1}
""",
    )
    assert res.returncode != 0
    assert "host stray is in no known group" in res.stdout
    assert "spse_servers, monitoring_servers, offroom_storage" in res.stdout


def test_missing_spse_server_is_refused(tmp_path: Path) -> None:
    res = preflight(
        tmp_path,
        """
all:
  children:
    monitoring_servers:
      hosts:
        monitor: {ansible_host: 127.0.0.1}
""",
    )
    assert res.returncode != 0
    assert "no host in group spse_servers" in res.stdout


def test_single_server_site_is_allowed_with_a_warning(tmp_path: Path) -> None:
    res = preflight(
        tmp_path,
        """
all:
  children:
    spse_servers:
      hosts:
        lpse1: {ansible_host: 127.0.0.1, ansible_port: 1}
    monitoring_servers:
      hosts:
        lpse1: {}
""",
    )
    assert "runs SPSE and the monitoring: when this host dies, nothing is left" in res.stdout
    # Port 1 is closed: the same run then stops on the unreachable host, naming it.
    assert res.returncode != 0
    assert "host lpse1 (127.0.0.1:1) does not answer on SSH" in res.stdout
