"""pyinfra inventory built from an Ansible inventory (one source of host addresses).

Environment:
  LPSE_INVENTORY       Ansible inventory path (e.g. inventories/lab)            required
  LPSE_BOOTSTRAP_KEY   public key file for the admin user                        required
  LPSE_BOOTSTRAP_USER  admin user name                                           lpseops
  LPSE_SSH_KEY         private key to log in with (root first, admin later)      ssh default
  LPSE_KNOWN_HOSTS     known_hosts file with the hosts' keys                      ssh default
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def _need(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        sys.exit(f"{var} is not set: see the docstring of playbooks/bootstrap_inventory.py")
    return value


def _admin_login_works(address: str, port: int, user: str) -> bool:
    """After the first run root login is off: then connect as the admin user with sudo."""
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", str(port)]
    if os.environ.get("LPSE_SSH_KEY"):
        cmd += ["-i", os.environ["LPSE_SSH_KEY"], "-o", "IdentitiesOnly=yes"]
    if os.environ.get("LPSE_KNOWN_HOSTS"):
        cmd += ["-o", f"UserKnownHostsFile={os.environ['LPSE_KNOWN_HOSTS']}", "-o", "StrictHostKeyChecking=yes"]
    cmd += [f"{user}@{address}", "sudo -n true"]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def _hosts() -> list:
    inventory = _need("LPSE_INVENTORY")
    key_file = Path(_need("LPSE_BOOTSTRAP_KEY")).expanduser()
    if not key_file.is_file():
        sys.exit(f"LPSE_BOOTSTRAP_KEY={key_file} does not exist: give the admin's public key file")
    admin_key = key_file.read_text().strip()
    admin_user = os.environ.get("LPSE_BOOTSTRAP_USER", "lpseops")
    res = subprocess.run(["ansible-inventory", "-i", inventory, "--list"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"cannot read Ansible inventory {inventory}: {res.stderr.strip()}")
    hostvars = json.loads(res.stdout).get("_meta", {}).get("hostvars", {})
    only = set(filter(None, os.environ.get("LPSE_LIMIT", "").split(",")))
    hosts = []
    for name, hv in sorted(hostvars.items()):
        if only and name not in only:
            continue
        address = hv.get("ansible_host", name)
        port = int(hv.get("ansible_port", 22))
        data = {
            "ssh_hostname": address,
            "ssh_port": port,
            "bootstrap_admin_user": admin_user,
            "bootstrap_admin_key": admin_key,
        }
        if os.environ.get("LPSE_SSH_KEY"):
            data["ssh_key"] = os.environ["LPSE_SSH_KEY"]
        if os.environ.get("LPSE_KNOWN_HOSTS"):
            data["ssh_known_hosts_file"] = os.environ["LPSE_KNOWN_HOSTS"]
            data["ssh_strict_host_key_checking"] = "yes"
        if _admin_login_works(address, port, admin_user):
            data.update(ssh_user=admin_user, _sudo=True)
        else:
            data["ssh_user"] = "root"
        hosts.append((name, data))
    return hosts


hosts = _hosts()
