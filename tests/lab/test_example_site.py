"""The example inventory is a working site (issue 13): the lab provisioned from
`inventories/example` with only the lab's addresses, names, certificates and vault values over it
(`tests/lab/example-overlay`), and there SPSE being down pages, healthy hosts do not, and the
status board shows SPSE up, with the roles' own timings.

Marked `lab_example`: it runs after the other lab tests and leaves the lab in the example's
configuration (the next session's `provisioned` fixture applies the lab's own again).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import pytest
import testinfra
from conftest import REPO, front_door, overlay_inventory, run_playbook
from lpse_lab import lab
from lpse_lab.cli import lab_secrets

pytestmark = [pytest.mark.lab, pytest.mark.lab_example]

OVERLAY = Path(__file__).parent / "example-overlay"


def example_inventory(tmp: Path) -> Path:
    """The overlay with the lab vault's secrets under the example's vault names (0600, not in git)."""
    s = lab_secrets()
    pki = lab.STATE_DIR / "pki"
    vault = {
        "vault_spse_db_password": s["vault_spse_db_password"],
        "vault_spse_tls_key": (pki / "spse.key").read_text(),
        "vault_alertmanager_smtp_password": s["vault_alertmanager_smtp_password"],
        "vault_alertmanager_telegram_bot_token": s["vault_alertmanager_telegram_bot_token"],
        "vault_lkpp_password_bcrypt": s["vault_lkpp_password_bcrypt"],
        "vault_lkpp_telemetry_password": s["vault_lkpp_telemetry_secret"],
        "vault_monitor_tls_key": (pki / "monitor.key").read_text(),
        "vault_status_tls_key": (pki / "monitor.key").read_text(),
        "vault_status_ops_password_bcrypt": s["vault_status_ops_password_bcrypt"],
        "vault_incident_webhook_token": s["vault_incident_webhook_token"],
        "vault_backup_s3_secret_key": s["vault_backup_offroom_secret_key"],
        "vault_backup_pgbackrest_cipher_pass": s["vault_backup_pgbackrest_cipher_pass"],
        "vault_backup_restic_password": s["vault_backup_restic_password"],
        "vault_backup_age_recipient": s["vault_backup_age_recipient"],
        "vault_ups_monitor_password": s["vault_ups_monitor_password"],
    }
    return overlay_inventory(tmp, OVERLAY, vault)


def alerts(monitor_address: str, login: tuple[str, str]) -> list[dict]:
    """The alerts firing now, as the rule manager holds them (the ALERTS series would still show
    one that resolved while the rules were reloaded, for Prometheus' 5-minute lookback)."""
    status, body = front_door(monitor_address, "/prometheus/api/v1/alerts", login=login)
    assert status == 200, body[:300]
    return [a["labels"] for a in json.loads(body)["data"]["alerts"] if a["state"] == "firing"]


def wait_until(check: object, timeout: float, step: float = 2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def test_the_example_inventory_is_a_working_site(
    provisioned: object, address: dict[str, str], spse: testinfra.host.Host, tmp_path: Path
) -> None:
    overlay = example_inventory(tmp_path)
    run = run_playbook("site.yml", "-i", str(overlay), inventory=REPO / "inventories" / "example")
    assert run.rc == 0, run.failures
    # The example's own login for the operations view: "sysadmin".
    login = ("sysadmin", lab_secrets()["vault_status_ops_password"])
    mon = address["monitor"]

    def healthy() -> bool:
        q = urllib.parse.urlencode({"query": 'count(up{job="lpse"} == 1) == 3'})
        status, body = front_door(mon, f"/prometheus/api/v1/query?{q}", login=login)
        return status == 200 and bool(json.loads(body)["data"]["result"])

    if not wait_until(healthy, 90):
        status, body = front_door(mon, "/prometheus/api/v1/targets", login=login)
        targets = json.loads(body)["data"]["activeTargets"] if status == 200 else body[:500]
        seen = [(t["labels"], t["health"], t["lastError"]) for t in targets] if status == 200 else targets
        pytest.fail(f"not every exporter of the example site is scraped within 90 s: {seen}")
    t_healthy = time.monotonic()
    status, page = front_door(mon, "/")
    assert status == 200 and b'data-state="up"' in page, page[:500]

    spse.check_output("systemctl stop spse")
    try:
        t0 = time.monotonic()
        fired = wait_until(lambda: any(a["alertname"] == "SpseDown" for a in alerts(mon, login)), 120)
        assert fired, "SpseDown did not fire on the example site"
        print(f"example site: SpseDown firing {time.monotonic() - t0:.0f} s after SPSE stopped")
    finally:
        spse.check_output("systemctl start spse")
    assert wait_until(lambda: not any(a["alertname"] == "SpseDown" for a in alerts(mon, login)), 120)
    status, page = front_door(mon, "/")
    assert b'data-state="up"' in page

    # Healthy hosts never paged all along, SPSE's outage included: no HostDown, not even pending
    # (Prometheus' ALERTS series holds pending alerts too), over a window longer than its 1 min
    # (waited out if SPSE's outage was shorter); it starts 30 s after all were scraped (a rule
    # evaluation from before may still be in it).
    time.sleep(max(0.0, t_healthy + 30 + 70 - time.monotonic()))
    window = time.monotonic() - t_healthy - 30
    q = urllib.parse.urlencode({"query": f'count_over_time(ALERTS{{alertname="HostDown"}}[{window:.0f}s])'})
    status, body = front_door(mon, f"/prometheus/api/v1/query?{q}", login=login)
    assert status == 200, body[:300]
    assert json.loads(body)["data"]["result"] == [], body[:1000]
