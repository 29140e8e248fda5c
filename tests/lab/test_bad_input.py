"""Bad input stops early with a message that names the problem, and loses nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_playbook
from lpse_lab import lab
from test_spse_host import https_get

pytestmark = pytest.mark.lab


def test_wrong_artifact_checksum_is_refused_and_spse_keeps_running(
    address: dict[str, str], provisioned: object
) -> None:
    res = run_playbook("servers.yml", "--limit", "spse_servers", "-e", "spse_artifact_sha256=" + "0" * 64)
    assert res.rc != 0
    assert "not spse_artifact_sha256=" + "0" * 64 in res.text
    assert "get it again from LKPP" in res.text
    status, body, _ = https_get(address["spse"])
    assert status == 200 and "Beranda SPSE" in body


def test_missing_artifact_variable_is_named(tmp_path: Path, provisioned: object) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(lab.INVENTORY, inv)
    spse_vars = inv / "group_vars" / "spse_servers" / "main.yml"
    spse_vars.write_text(
        "\n".join(line for line in spse_vars.read_text().splitlines() if not line.startswith("spse_artifact_src"))
        + "\n"
    )
    res = run_playbook("servers.yml", "--limit", "spse_servers", inventory=inv)
    assert res.rc != 0
    assert "spse_artifact_src must name the SPSE release" in res.text


def test_unreachable_host_is_named(tmp_path: Path, provisioned: object) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(lab.INVENTORY, inv)
    # An address on the lab bridge where no host runs.
    (inv / "hosts.yml").write_text(
        "all:\n  children:\n    spse_servers:\n      hosts:\n        ghost:\n          ansible_host: 10.213.0.99\n"
        "    monitoring_servers:\n      hosts:\n        monitor:\n          ansible_host: 10.213.0.11\n"
    )
    res = run_playbook("site.yml", inventory=inv)
    assert res.rc != 0
    assert "host ghost (10.213.0.99:22) does not answer on SSH" in res.text
