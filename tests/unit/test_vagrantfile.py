"""The Vagrantfile (laptops) describes the same hosts, addresses and groups as the nspawn lab."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def groups_of(hosts_yml: Path) -> dict[str, tuple[str, str]]:
    """host -> (group, address) from an inventory's hosts.yml."""
    data = yaml.safe_load(hosts_yml.read_text())
    return {
        host: (group, hvars["ansible_host"])
        for group, body in data["all"]["children"].items()
        for host, hvars in body["hosts"].items()
    }


def test_vagrantfile_matches_the_lab_inventory() -> None:
    text = (REPO / "Vagrantfile").read_text()
    vagrant = {
        m["name"]: (m["group"], m["ip"])
        for m in re.finditer(r'"(?P<name>\w+)"\s*=>\s*\{ ip: "(?P<ip>[\d.]+)", group: "(?P<group>\w+)"', text)
    }
    lab = groups_of(REPO / "inventories/lab/hosts.yml")
    assert vagrant == lab
    assert groups_of(REPO / "inventories/vagrant/hosts.yml") == lab


def test_vagrant_validate_passes() -> None:
    res = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Vagrantfile validated successfully" in res.stdout
