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
        for host, hvars in (body.get("hosts") or {}).items()
    }


def test_vagrantfile_matches_the_lab_inventory() -> None:
    text = (REPO / "Vagrantfile").read_text()
    vagrant = {
        m["name"]: (m["group"], m["ip"])
        for m in re.finditer(r'"(?P<name>\w+)"\s*=>\s*\{ ip: "(?P<ip>[\d.]+)", group: "(?P<group>\w+)"', text)
    }
    # The site's hosts: the lab's LKPP host (lkpp_national) has no Vagrant box.
    lab = {name: g for name, g in groups_of(REPO / "inventories/lab/hosts.yml").items() if g[0] != "lkpp_national"}
    assert vagrant == lab
    assert groups_of(REPO / "inventories/vagrant/hosts.yml") == lab


def test_vagrant_validate_passes() -> None:
    res = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Vagrantfile validated successfully" in res.stdout


def test_the_vagrant_inventory_parses_and_passes_the_preflight() -> None:
    """What a laptop user runs first: the inventory loads, the playbooks parse with it, and the
    preflight's inventory checks pass (only reaching the VMs, which do not run here, is skipped)."""
    import sys

    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "HOME": str(REPO / ".venv")}  # fmt: skip
    inv = ["-i", "inventories/vagrant"]
    listed = subprocess.run([str(bin_dir / "ansible-inventory"), *inv, "--list"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert set(yaml.safe_load(listed.stdout)["all"]["children"]) >= {"spse_servers", "monitoring_servers"}
    for playbook in ("site.yml", "restore.yml", "maintenance.yml"):
        syntax = subprocess.run([str(bin_dir / "ansible-playbook"), *inv, f"playbooks/{playbook}", "--syntax-check"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert syntax.returncode == 0, playbook + syntax.stdout[-2000:] + syntax.stderr[-2000:]
    preflight = subprocess.run(
        [str(bin_dir / "ansible-playbook"), *inv, "playbooks/preflight.yml", "--skip-tags", "preflight_ssh"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert preflight.returncode == 0, preflight.stdout[-3000:] + preflight.stderr[-2000:]
