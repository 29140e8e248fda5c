"""The monitoring server's doors (issue 13): Prometheus and Alertmanager have no login of their
own, so they listen on localhost only and operators reach them through the status board's HTTPS
site behind the /ops logins, each request logged with its login; the incident webhook takes
notifications from Alertmanager only. Requests come from the lab gateway, as from the office."""

from __future__ import annotations

import datetime as dt
import json
import socket
import uuid

import pytest
import testinfra
from conftest import front_door, monitoring_api, ops_login

pytestmark = pytest.mark.lab

LOCKED = [
    ("POST", "/alertmanager/api/v2/silences"),
    ("POST", "/alertmanager/api/v2/alerts"),
    ("GET", "/alertmanager/api/v2/status"),  # the configuration, webhook URLs included
    ("GET", "/alertmanager/"),
    ("GET", "/prometheus/api/v1/status/config"),
    ("GET", "/prometheus/api/v1/query?query=up"),
    ("POST", "/prometheus/-/reload"),
    ("GET", "/prometheus/graph"),
]


def silence(minutes: int = 5) -> dict:
    now = dt.datetime.now(dt.UTC)
    return {
        "matchers": [{"name": "alertname", "value": f"FrontDoorTest{uuid.uuid4().hex[:6]}", "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(minutes=minutes)).isoformat(),
        "createdBy": "front door test",
        "comment": "test",
    }


def test_prometheus_and_alertmanager_do_not_answer_the_office_directly(address: dict[str, str]) -> None:
    for port in (9090, 9093, 9094):
        with pytest.raises(OSError):
            socket.create_connection((address["monitor"], port), timeout=3).close()


@pytest.mark.parametrize(("method", "path"), LOCKED)
def test_without_a_login_nothing_opens(address: dict[str, str], method: str, path: str) -> None:
    body: object = [] if method == "POST" and "alerts" in path else (silence() if "silences" in path else None)
    status, data = front_door(address["monitor"], path, body, method)
    assert status == 401, (method, path, data[:300])
    status, _ = front_door(address["monitor"], path, body, method, ("ops", "not the password"))
    assert status == 401, (method, path)


def test_with_the_login_an_operator_silences_and_reads(address: dict[str, str], monitor: testinfra.host.Host) -> None:
    mon = address["monitor"]
    made = monitoring_api(mon, "alertmanager", "api/v2/silences", silence())
    try:
        listed = {s["id"] for s in monitoring_api(mon, "alertmanager", "api/v2/silences")}
        assert made["silenceID"] in listed
    finally:
        monitoring_api(mon, "alertmanager", f"api/v2/silence/{made['silenceID']}", method="DELETE")
    config = monitoring_api(mon, "alertmanager", "api/v2/status")["config"]["original"]
    assert "http://127.0.0.1:9180/alertmanager" in config
    assert monitoring_api(mon, "prometheus", "api/v1/status/config")["status"] == "success"
    # The UI works under its prefix: Prometheus sends its start page's address, and the page's
    # links and API calls, back through the front door (Debian ships the classic UI).
    status, _ = front_door(mon, "/prometheus/", login=ops_login())
    assert status == 302
    status, page = front_door(mon, "/prometheus/classic/graph", login=ops_login())
    assert status == 200 and b'href="/prometheus/' in page, page[:500]
    # Debian's Alertmanager has no web UI, only its API (used above) and a page that says so.
    status, page = front_door(mon, "/alertmanager/", login=ops_login())
    assert status == 200 and b"Alertmanager" in page
    # Each request is on record with the login that made it.
    log = monitor.file("/var/log/nginx/lpse-ops-access.log").content_string
    assert " - ops [" in log and "POST /alertmanager/api/v2/silences HTTP" in log
    assert f"DELETE /alertmanager/api/v2/silence/{made['silenceID']} HTTP" in log


def test_the_incident_webhook_takes_notifications_from_alertmanager_only(monitor: testinfra.host.Host) -> None:
    """Any process on the monitoring server can reach 127.0.0.1:9180; without Alertmanager's token
    a firing critical alert opens no record (Alertmanager's own, with the token, do: the status
    page test follows SPSE down to a record)."""
    payload = {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "SpseDown", "severity": "critical",
                    "instance": "spse"}, "startsAt": dt.datetime.now(dt.UTC).isoformat()}],
    }  # fmt: skip
    before = monitor.check_output("ls /var/lib/lpse-ops/incidents | wc -l")
    post = "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' "
    forged = monitor.check_output(
        f"{post} --data-binary {json.dumps(json.dumps(payload))} http://127.0.0.1:9180/alertmanager"
    )
    assert forged == "401"
    wrong = monitor.check_output(
        f"{post} -H 'Authorization: Bearer guessed' --data-binary '{{}}' http://127.0.0.1:9180/alertmanager"
    )
    assert wrong == "401"
    assert monitor.check_output("ls /var/lib/lpse-ops/incidents | wc -l") == before
    # The token is Alertmanager's: not readable by the board's other users, not in its config file.
    token_file = monitor.file("/etc/prometheus/incident-webhook.token")
    assert token_file.mode == 0o640 and token_file.user == "root" and token_file.group == "prometheus"
    assert token_file.content_string.strip() not in monitor.file("/etc/prometheus/alertmanager.yml").content_string
    # With it, a notification is accepted (a warning: no record is opened).
    token = token_file.content_string.strip()
    accepted = monitor.check_output(
        f"{post} -H 'Authorization: Bearer {token}' --data-binary '{{\"alerts\": []}}' http://127.0.0.1:9180/alertmanager"
    )
    assert accepted == "200"
