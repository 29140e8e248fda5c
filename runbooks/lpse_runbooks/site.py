"""The site as the inventory describes it: hosts, their groups and how to reach them.

The runbooks read the same Ansible inventory the playbooks use (`LPSE_INVENTORY`, as for the
bootstrap), through Ansible's own loader, so `ansible_host`, `ansible_user`, the key and the
known-hosts file are the ones Ansible would use, with their templates rendered. Connections
check host keys strictly: a runbook never talks to a host it does not know.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from fabric import Connection
from paramiko import RejectPolicy

REPO = Path(__file__).resolve().parents[2]
# paramiko logs a traceback for every refused connection; the runbook says it in one line.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class RunbookError(RuntimeError):
    """A problem the on-call person can fix; the message says how."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    user: str
    key_file: str | None
    known_hosts: str | None
    groups: tuple[str, ...]
    port: int = 22

    def connect(self, timeout: float = 10) -> Connection:
        kwargs: dict[str, object] = {"timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout}
        if self.key_file:
            kwargs |= {"key_filename": self.key_file, "look_for_keys": False, "allow_agent": False}
        c = Connection(self.address, user=self.user, port=self.port, connect_kwargs=kwargs)
        c.client.set_missing_host_key_policy(RejectPolicy())
        known = self.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        if os.path.exists(known):
            c.client.load_host_keys(known)
        return c


def _known_hosts(common_args: str) -> str | None:
    """UserKnownHostsFile from ansible_ssh_common_args, if the inventory sets one."""
    for word in shlex.split(common_args or ""):
        key, _, value = word.removeprefix("-o").partition("=")
        if key == "UserKnownHostsFile" and value:
            return value
    return None


@dataclass(frozen=True)
class Thresholds:
    """The alert rules' own thresholds (the prometheus role's `prometheus_alert_*`, as the
    monitoring server's inventory sets them), so `fab status` calls bad what pages."""

    disk_critical_ratio: float
    memory_critical_ratio: float
    backup_stale_hours: float

    VARIABLES: ClassVar[dict[str, str]] = {
        "disk_critical_ratio": "prometheus_alert_disk_critical_ratio",
        "memory_critical_ratio": "prometheus_alert_memory_critical_ratio",
        "backup_stale_hours": "prometheus_alert_backup_stale_hours",
    }

    @classmethod
    def of(cls, site_vars: dict[str, object]) -> Thresholds:
        defaults = yaml.safe_load((REPO / "roles/prometheus/defaults/main.yml").read_text())
        values = {}
        for field_name, var in cls.VARIABLES.items():
            raw = site_vars.get(var, defaults[var])
            try:
                values[field_name] = float(str(raw))
            except ValueError:
                msg = f"{var} must be a number, not {raw!r} (the inventory of the monitoring server)"
                raise RunbookError(msg) from None
        return cls(**values)


@dataclass(frozen=True)
class Site:
    inventory: Path
    hosts: dict[str, Host]
    thresholds: Thresholds

    @classmethod
    def load(cls, inventory: str | os.PathLike[str] | None = None) -> Site:
        path = Path(inventory or os.environ.get("LPSE_INVENTORY", "")).expanduser()
        if not str(inventory or os.environ.get("LPSE_INVENTORY", "")):
            raise RunbookError("which site? set LPSE_INVENTORY=inventories/<site> (the folder with hosts.yml)")
        if not path.is_absolute() and not path.exists():
            path = REPO / path
        if not (path / "hosts.yml").exists() and not path.is_file():
            raise RunbookError(f"no inventory at {path}: LPSE_INVENTORY must name a folder with hosts.yml")
        # Imported here: Ansible's loader is slow to import and only this needs it.
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar
        from ansible.vars.manager import VariableManager

        class InventoryWithoutVault(DataLoader):  # type: ignore[misc]
            """Vault files read as empty: the runbooks need no secret, so on-call needs no vault
            password, and no secret is ever decrypted into this process."""

            def load_from_file(self, file_name: str, *args: Any, **kwargs: Any) -> Any:
                with open(file_name, "rb") as f:
                    if f.read(14) == b"$ANSIBLE_VAULT":
                        return {}
                return super().load_from_file(file_name, *args, **kwargs)

        loader = InventoryWithoutVault()
        inv = InventoryManager(loader=loader, sources=[str(path)])
        variables = VariableManager(loader=loader, inventory=inv)
        hosts = {}
        monitor_vars: dict[str, object] = {}
        for h in inv.get_hosts():
            v = variables.get_vars(host=h)
            t = Templar(loader=loader, variables=v)

            def get(name: str, default: object = None, t: Templar = t, v: dict[str, object] = v) -> object:
                return t.template(v[name]) if name in v else default

            hosts[h.name] = Host(
                name=h.name,
                address=str(get("ansible_host", h.name)),
                user=str(get("ansible_user", "lpseops")),
                key_file=str(get("ansible_ssh_private_key_file")) if "ansible_ssh_private_key_file" in v else None,
                known_hosts=_known_hosts(str(get("ansible_ssh_common_args", ""))),
                groups=tuple(sorted(g.name for g in h.get_groups() if g.name not in ("all", "ungrouped"))),
                port=int(str(get("ansible_port", 22))),
            )
            if "monitoring_servers" in hosts[h.name].groups and not monitor_vars:
                monitor_vars = {var: get(var) for var in Thresholds.VARIABLES.values() if var in v}
        return cls(path, hosts, Thresholds.of(monitor_vars))

    def host(self, name: str, group: str | None = None) -> Host:
        if name not in self.hosts:
            raise RunbookError(
                f"no host {name!r} in {self.inventory}/hosts.yml (hosts: {', '.join(sorted(self.hosts))})"
            )
        h = self.hosts[name]
        if group and group not in h.groups:
            raise RunbookError(f"{name} is not in {group} (it is in {', '.join(h.groups) or 'no group'})")
        return h

    def group(self, group: str) -> list[Host]:
        return [h for h in self.hosts.values() if group in h.groups]

    def monitor(self) -> Host | None:
        found = self.group("monitoring_servers")
        return found[0] if found else None
