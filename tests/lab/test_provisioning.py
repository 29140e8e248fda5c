"""Provisioning as a sysadmin would check it: bootstrap, idempotence, check mode."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import Provisioned, run_bootstrap, run_playbook
from lpse_lab import lab

pytestmark = pytest.mark.lab


def ssh(address: str, user: str, command: str = "true", *opts: str) -> subprocess.CompletedProcess[str]:
    return lab.ssh(address, command, user=user, options=opts, timeout=30)


def test_first_site_run_succeeded_on_every_host(provisioned: Provisioned, address: dict[str, str]) -> None:
    recap = provisioned.site.recap()
    # LKPP's host is in the lab's inventory too: the inventory checks read it, nothing more.
    assert set(recap) - set(address) <= {"lkpp"} and set(address) <= set(recap), recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap


def test_bootstrap_made_hosts_ansible_ready(address: dict[str, str], provisioned: Provisioned) -> None:
    for addr in address.values():
        res = ssh(addr, "lpseops", "sudo -n python3 -c 'import sys; print(sys.version_info[0])'")
        assert res.returncode == 0 and res.stdout.strip() == "3", res.stderr


def test_root_cannot_log_in(address: dict[str, str], provisioned: Provisioned) -> None:
    for addr in address.values():
        res = ssh(addr, "root")
        assert res.returncode == 255
        assert "Permission denied" in res.stderr


def test_password_login_is_refused(address: dict[str, str], provisioned: Provisioned) -> None:
    res = ssh(
        address["spse"],
        "lpseops",
        "true",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        "-o",
        "PubkeyAuthentication=no",
    )
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr


def test_second_bootstrap_changes_nothing(provisioned: Provisioned) -> None:
    again = run_bootstrap()
    assert again.rc == 0, again.output[-2000:]
    total = re.search(r"Grand total\s+(\d+)\s+(\d+|-)", again.output)
    assert total, again.output[-2000:]
    assert total.group(2) == "-", f"bootstrap changed {total.group(2)} operations on a second run"


def test_the_first_run_leaves_the_monitoring_services_running(provisioned: Provisioned) -> None:
    """Read right after the first run, before the second could start anything: a service both
    restarted and reloaded in one run (its handlers) still runs."""
    assert provisioned.monitor_after_site, "the provisioned fixture read no services after the first run"
    down = {name: state for name, state in provisioned.monitor_after_site.items() if state != "active"}
    assert not down, f"not running after the first site.yml run: {down}"


def test_second_site_run_changes_nothing(provisioned: Provisioned) -> None:
    """The second run, right after the first (tests/lab/conftest.py), reports no change."""
    again = provisioned.again
    assert again is not None, "the provisioned fixture made no second run"
    assert again.rc == 0, again.output[-3000:]
    changed = {h: r["changed"] for h, r in again.recap().items() if r["changed"]}
    assert not changed, f"not idempotent: {changed}\n{again.changes}"


def test_check_mode_before_the_first_run_reports_the_installs_and_changes_nothing(
    provisioned: Provisioned,
) -> None:
    """site.yml --check on hosts just handed over (bootstrapped, never provisioned)."""
    if any(provisioned.before_check.values()):
        # Only a run asked to keep the hosts may find them provisioned; scripts/test destroys them.
        assert os.environ.get("LPSE_LAB_REUSE") == "1", f"fresh lab hosts had packages: {provisioned.before_check}"
        pytest.skip(f"LPSE_LAB_REUSE=1 kept hosts provisioned before this run: {provisioned.before_check}")
    check = provisioned.check
    assert check is not None, "the provisioned fixture made no check run"
    assert check.rc == 0, check.output[-4000:]
    # LKPP's host is in the lab's inventory too: only the inventory checks read it.
    recap = check.recap()
    lkpp = recap.pop("lkpp", {"failed": 0, "changed": 0})
    assert lkpp["failed"] == 0 and lkpp["changed"] == 0, lkpp
    assert set(recap) == {"spse", "monitor", "offroom"}, recap
    assert all(r["failed"] == 0 and r["changed"] > 0 for r in recap.values()), recap
    assert "base : Install base packages" in check.output
    # Nothing was installed by it: the first real run found none of the packages it brings.
    assert provisioned.after_check == provisioned.before_check, provisioned.after_check


def test_install_tag_reaches_the_included_wheel_tasks_and_drops_loose_wheels(
    provisioned: Provisioned, address: dict[str, str]
) -> None:
    """`--tags lpse_exporter_install` reaches the tasks of the python_package role it includes,
    and a wheel left in the wheels folder by a build before the archive is removed."""
    stale = "/opt/lpse-exporter/wheels/lpse_exporter-0.0.1-py3-none-any.whl"
    assert ssh(address["offroom"], "lpseops", f"sudo touch {stale}").returncode == 0
    run = run_playbook("servers.yml", "--limit", "offroom", "--tags", "lpse_exporter_install")
    assert run.rc == 0, run.output[-3000:]
    assert "python_package : Remove the loose wheels of earlier builds of lpse-exporter" in run.output
    assert run.recap()["offroom"]["changed"] == 1, run.output[-3000:]
    assert ssh(address["offroom"], "lpseops", f"test -e {stale}").returncode == 1
    assert ssh(address["offroom"], "lpseops", "systemctl is-active lpse-exporter").stdout.strip() == "active"
