from __future__ import annotations

from pathlib import Path

import pytest
from lpse_lab.lab import INVENTORY, LabError, load_config


def test_lab_inventory_lists_the_three_hosts() -> None:
    cfg = load_config()
    assert {h.name for h in cfg.hosts} >= {"spse", "monitor", "offroom"}
    assert len({h.address for h in cfg.hosts}) == len(cfg.hosts)
    assert cfg.gateway == "10.213.0.1"
    assert all(len(h.veth) <= 15 for h in cfg.hosts)


def test_address_outside_the_bridge_is_refused(tmp_path: Path) -> None:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "lab.yml").write_text((INVENTORY / "group_vars/all/lab.yml").read_text())
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    x:\n      ansible_host: 192.0.2.5\n")
    with pytest.raises(LabError, match=r"x address 192\.0\.2\.5 is outside 10\.213\.0\.0/24"):
        load_config(tmp_path)


def test_disk_sizes_from_the_environment_replace_the_inventorys(monkeypatch: pytest.MonkeyPatch) -> None:
    def docs_mb() -> int:
        spse = next(h for h in load_config().hosts if h.name == "spse")
        return next(d.size_mb for d in spse.disks if d.label == "spse-docs")

    monkeypatch.delenv("LPSE_LAB_DISK_MB", raising=False)
    assert docs_mb() == 512
    monkeypatch.setenv("LPSE_LAB_DISK_MB", "spse-docs=3584")
    assert docs_mb() == 3584
    monkeypatch.setenv("LPSE_LAB_DISK_MB", "spse-docs:3584")
    with pytest.raises(LabError, match="write label=MiB"):
        load_config()
