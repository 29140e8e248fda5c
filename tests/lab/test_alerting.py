"""Alertmanager on the monitor host notifies the on-call rota: e-mail through the lab's SMTP
relay (a real SMTP server with STARTTLS and a login) and the Telegram stand-in (lab/lpse_lab/oncall.py).

Routing is checked with alerts posted to Alertmanager's API (names unique per test run);
the fault tests break the SPSE host for real and time the e-mails.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from conftest import monitoring_api, run_playbook
from lpse_lab import faults, lab, oncall
from test_prometheus import recorded_expression, wait_for
from test_spse_host import https_get

pytestmark = pytest.mark.lab

CHAT_ID = "-1001234567890"  # inventories/lab/group_vars/monitoring_servers/main.yml
WAIT = 30.0  # lab: group_wait 2 s (critical) / 5 s (warning), group_interval 5 s


def post_alerts(address: str, alerts: list[dict]) -> None:
    monitoring_api(address, "alertmanager", "api/v2/alerts", alerts)


def alert(name: str, severity: str, instance: str, ended: bool = False, started_ago: float = 5, **labels: str) -> dict:
    """An alert as Prometheus posts it. Started `started_ago` s ago: Alertmanager sends a new
    group at once when its first alert started longer than group_wait ago."""
    now = dt.datetime.now(dt.UTC)
    body = {
        "labels": {"alertname": name, "severity": severity, "instance": instance, **labels},
        "annotations": {
            "summary": f"Uji {name}",
            "description": "Deskripsi dalam Bahasa Indonesia",
            "summary_en": f"Test {name}",
            "description_en": "Description in English",
            "runbook_url": f"file:///docs/runbooks/alerts.md#{name.lower()}",
        },
        "startsAt": (now - dt.timedelta(seconds=started_ago)).isoformat(),
    }
    if ended:
        body["endsAt"] = now.isoformat()
    return body


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def mail_about(name: str, since: float, timeout: float = WAIT) -> oncall.Mail | None:
    return oncall.wait_for(lambda: oncall.mails(lab.ONCALL_DIR, since), lambda m: name in m.subject, timeout)


def chat_about(name: str, since: float, timeout: float = WAIT) -> oncall.ChatMessage | None:
    return oncall.wait_for(lambda: oncall.chat_messages(lab.ONCALL_DIR, since), lambda c: name in c.text, timeout)


def test_critical_alert_goes_to_oncall_by_mail_and_telegram(address: dict[str, str], provisioned: object) -> None:
    name, t0 = unique("LabCritical"), time.time()
    post_alerts(address["monitor"], [alert(name, "critical", "offroom")])
    mail = mail_about(name, t0)
    assert mail is not None, "no e-mail reached the relay"
    assert mail.recipients == ("oncall@lab.lpse",)
    assert mail.sender == "alertmanager@monitor.lab.lpse"
    assert mail.subject.startswith("[MENYALA/FIRING] CRITICAL " + name + " offroom")
    for text in (f"Uji {name}", f"Test {name}", "Deskripsi dalam Bahasa Indonesia", "Description in English"):
        assert text in mail.body
    assert f"Runbook: file:///docs/runbooks/alerts.md#{name.lower()}" in mail.body
    chat = chat_about(name, t0)
    assert chat is not None, "no message reached the Telegram stand-in"
    assert chat.chat_id == CHAT_ID
    assert f"Uji {name}" in chat.text and f"Test {name}" in chat.text

    t1 = time.time()
    post_alerts(address["monitor"], [alert(name, "critical", "offroom", ended=True)])
    resolved = oncall.wait_for(
        lambda: oncall.mails(lab.ONCALL_DIR, t1), lambda m: name in m.subject and "PULIH/RESOLVED" in m.subject, WAIT
    )
    assert resolved is not None, "no resolved e-mail"
    assert chat_about(name, t1) is not None, "no resolved Telegram message"


def test_warning_goes_by_mail_only(address: dict[str, str], provisioned: object) -> None:
    name, t0 = unique("LabWarning"), time.time()
    post_alerts(address["monitor"], [alert(name, "warning", "offroom")])
    mail = mail_about(name, t0)
    assert mail is not None
    assert mail.recipients == ("ops@lab.lpse",)
    assert "WARNING" in mail.subject
    assert chat_about(name, t0, timeout=5) is None, "warnings must not page the Telegram group"
    post_alerts(address["monitor"], [alert(name, "warning", "offroom", ended=True)])


def test_alerts_of_one_host_and_name_come_in_one_mail(address: dict[str, str], provisioned: object) -> None:
    name, t0 = unique("LabGrouped"), time.time()
    # Started now, as Prometheus posts a new alert: the group waits group_wait for the others (an
    # alert started earlier than that is sent at once, before the rest of its request is in).
    post_alerts(
        address["monitor"],
        [alert(name, "critical", "offroom", started_ago=0, mountpoint=m) for m in ("/", "/srv", "/var")],
    )
    assert mail_about(name, t0) is not None
    time.sleep(8)  # past group_interval: any straggler mail would be here by now
    got = [m for m in oncall.mails(lab.ONCALL_DIR, t0) if name in m.subject]
    assert len(got) == 1, [m.subject for m in got]
    for m in ("/", "/srv", "/var"):
        assert f"mountpoint={m} " in got[0].body
    post_alerts(
        address["monitor"], [alert(name, "critical", "offroom", True, mountpoint=m) for m in ("/", "/srv", "/var")]
    )


def test_a_down_host_silences_its_other_alerts(address: dict[str, str], provisioned: object) -> None:
    down, other = unique("lab-down-"), unique("lab-up-")
    name, t0 = unique("LabDiskOnDownHost"), time.time()
    post_alerts(address["monitor"], [alert("HostDown", "critical", down)])
    assert mail_about(f"HostDown {down}", t0) is not None
    t1 = time.time()
    post_alerts(address["monitor"], [alert(name, "critical", down), alert(name, "critical", other)])
    assert mail_about(f"{name} {other}", t1) is not None, "an alert of a healthy host was held back"
    time.sleep(8)
    assert not [m for m in oncall.mails(lab.ONCALL_DIR, t1) if f"{name} {down}" in m.subject], (
        "an alert of a host that is down was sent"
    )
    post_alerts(
        address["monitor"],
        [
            alert("HostDown", "critical", down, True),
            alert(name, "critical", down, True),
            alert(name, "critical", other, True),
        ],
    )


def test_watchdog_heartbeats_reach_the_dead_mans_switch(provisioned: object) -> None:
    # Right after Alertmanager (re)starts, Prometheus resends the Watchdog only after its 1 min
    # resend delay; from then on a beat comes every heartbeat interval (10 s in the lab), or on
    # the next group_interval tick.
    t0 = time.time()
    first = oncall.wait_for(lambda: oncall.heartbeats(lab.ONCALL_DIR, t0), lambda _: True, 90)
    assert first is not None, "no heartbeat in 90 s"
    second = oncall.wait_for(lambda: oncall.heartbeats(lab.ONCALL_DIR, first + 0.5), lambda _: True, 30)
    assert second is not None, "heartbeats stopped after the first"
    assert second - first <= 25
    assert not [m for m in oncall.mails(lab.ONCALL_DIR, t0) if "Watchdog" in m.subject], "Watchdog must not mail people"


@pytest.mark.parametrize("fault", faults.FAULTS, ids=[f.name for f in faults.FAULTS])
def test_fault_reaches_oncall_by_mail_and_resolves(
    fault: faults.Fault, lab_config: lab.LabConfig, provisioned: object
) -> None:
    spse = next(h for h in lab_config.hosts if h.name == "spse")
    latency = faults.measure(fault, spse, timeout=120)
    print(f"{fault.name}: {fault.alertname} e-mail after {latency.firing_s} s, resolved after {latency.resolved_s} s")
    assert latency.firing_s is not None, f"no {fault.alertname} e-mail within 120 s of: {fault.name}"
    assert latency.resolved_s is not None, f"no resolved e-mail within 120 s of undoing: {fault.name}"
    if fault.alertname in faults.SPSE_ALERTS:
        assert latency.firing_s <= 60, "SPSE unreachable, for any reason, must page within 60 s"
        assert not latency.also_paged, f"one outage, one page: also got {latency.also_paged}"


def silences(address: str) -> list[dict]:
    return [
        s
        for s in monitoring_api(address, "alertmanager", "api/v2/silences")
        if s["createdBy"] == "lpse-ops maintenance"
    ]


def test_maintenance_window_shows_the_page_and_silences_spse_until_its_end(
    address: dict[str, str], provisioned: object
) -> None:
    wib = dt.timezone(dt.timedelta(hours=7))
    end = (dt.datetime.now(wib) + dt.timedelta(hours=1)).replace(microsecond=0)
    args = (
        "-e",
        "maintenance=on",
        "-e",
        f"maintenance_end={end.isoformat()}",
        "-e",
        "maintenance_reason_id='Ganti disk'",
    )
    on = run_playbook("maintenance.yml", *args)
    assert on.rc == 0, on.output[-3000:]
    try:
        status, body, _ = https_get(address["spse"])
        assert status == 503
        assert "SPSE sedang dalam pemeliharaan" in body and "under maintenance" in body and "Ganti disk" in body
        assert end.strftime("%d-%m-%Y %H:%M") in body
        active = [s for s in silences(address["monitor"]) if s["status"]["state"] == "active"]
        assert len(active) == 1
        assert dt.datetime.fromisoformat(active[0]["endsAt"]) == end
        assert active[0]["matchers"] == [{"name": "instance", "value": "^(spse)$", "isRegex": True, "isEqual": True}]
        again = run_playbook("maintenance.yml", *args)
        assert again.rc == 0 and again.recap()["monitor"]["changed"] == 0, again.output[-3000:]
        # The national contract sees the window: its rule's expression, on what Prometheus scraped.
        maintenance = recorded_expression(address["monitor"], "lpse_national:maintenance_active")
        wait_for(address["monitor"], maintenance, 1, 60)

        name, t0 = unique("LabDuringMaintenance"), time.time()
        post_alerts(address["monitor"], [alert(name, "critical", "spse"), alert(name, "critical", "offroom")])
        assert mail_about(f"{name} offroom", t0) is not None, "other hosts must still alert"
        time.sleep(8)
        assert mail_about(f"{name} spse", t0, timeout=0) is None, "an SPSE alert was sent during maintenance"
    finally:
        # From here on the SPSE alert may go out: Alertmanager sends it within a group_interval
        # of the silence expiring, which can be before the playbook has done its other tasks.
        t1 = time.time()
        off = run_playbook("maintenance.yml", "-e", "maintenance=off")
    assert off.rc == 0, off.output[-3000:]
    status, body, _ = https_get(address["spse"])
    assert status == 200 and "Beranda SPSE" in body
    assert not [s for s in silences(address["monitor"]) if s["status"]["state"] == "active"], (
        "silence outlived maintenance"
    )
    wait_for(address["monitor"], maintenance, 0, 60)
    # The SPSE alert, still firing, now reaches the rota.
    assert mail_about(f"{name} spse", t1, timeout=WAIT) is not None
    post_alerts(address["monitor"], [alert(name, "critical", h, ended=True) for h in ("spse", "offroom")])


def test_maintenance_refuses_a_window_without_a_future_end(address: dict[str, str], provisioned: object) -> None:
    for extra in ((), ("-e", "maintenance_end=2020-01-01T00:00:00+07:00"), ("-e", "maintenance_end=tonight")):
        res = run_playbook("maintenance.yml", "-e", "maintenance=on", *extra)
        assert res.rc != 0
        assert "maintenance_end=<when SPSE is back>" in res.text
    status, _, _ = https_get(address["spse"])
    assert status == 200
