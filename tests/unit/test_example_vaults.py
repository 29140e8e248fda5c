"""What a site (inventories/example) or LKPP (inventories/national-example) copies: every vault
value the inventory uses is named in its vault.yml.example, and with the example vault filled in
as it ships, the inventory loads and its playbooks parse."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLES = {"example": ["site.yml", "restore.yml", "maintenance.yml"], "national-example": ["national.yml"]}


def vault_names_used(inventory: Path) -> set[str]:
    text = "".join(p.read_text() for p in inventory.rglob("*.yml"))
    return set(re.findall(r"\bvault_[a-z0-9_]+", text))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_example_vault_names_every_secret_and_the_playbooks_parse(name: str, tmp_path: Path) -> None:
    inventory = tmp_path / name
    shutil.copytree(REPO / "inventories" / name, inventory)
    example = yaml.safe_load((inventory / "group_vars/all/vault.yml.example").read_text())
    missing = vault_names_used(inventory) - set(example)
    assert not missing, f"inventories/{name} uses vault values its vault.yml.example does not name: {missing}"
    (inventory / "group_vars/all/vault.yml").write_text((inventory / "group_vars/all/vault.yml.example").read_text())
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "HOME": str(tmp_path)}  # fmt: skip
    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    for playbook in EXAMPLES[name]:
        syntax = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(inventory), f"playbooks/{playbook}", "--syntax-check"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert syntax.returncode == 0, playbook + syntax.stdout[-2000:] + syntax.stderr[-2000:]
