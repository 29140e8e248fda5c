"""site.yml --check on provisioned hosts changes nothing and reports nothing to change (check
mode on fresh hosts, before the first run, is in test_provisioning.py).
"""

from __future__ import annotations

import re

import pytest
from conftest import Provisioned, run_playbook

pytestmark = pytest.mark.lab


def test_check_mode_runs_clean(provisioned: Provisioned) -> None:
    check = run_playbook("site.yml", "--check")
    assert check.rc == 0, check.output[-3000:]
    recap = check.recap()
    changed = re.findall(r"^TASK \[([^\]]*)\][^\n]*\n(?:(?!TASK \[).*\n)*?changed: \[(\S+)\]", check.output, re.M)
    assert all(r["failed"] == 0 and r["changed"] == 0 for r in recap.values()), (recap, changed)
