"""LKPP's read-only access, tried from LKPP's network (the lab's `lkpp` namespace):
the query API and /federate with LKPP's login over TLS, and nothing else."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse

import pytest
import testinfra
from conftest import LAB_CA, run_playbook
from lpse_lab import lab
from lpse_lab.cli import lab_secrets

pytestmark = pytest.mark.lab

PORT = 9443


@pytest.fixture(scope="module")
def lkpp_password(provisioned: object) -> str:
    return lab_secrets()["vault_lkpp_password"]


def from_lkpp(*cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab.load_config().lkpp.netns, *cmd], capture_output=True, text=True, timeout=timeout
    )


def lkpp_request(
    address: str, path: str, user: str | None = None, password: str | None = None, method: str = "GET", data: str = ""
) -> tuple[int, str]:
    """curl from LKPP's network to https://monitor:9443<path>; the HTTP status and the body."""
    cmd = ["curl", "-sS", "--cacert", str(LAB_CA), "--resolve", f"monitor:{PORT}:{address}", "-X", method]
    cmd += ["-o", "-", "-w", "\n%{http_code}", "--max-time", "10"]
    if user is not None:
        cmd += ["-u", f"{user}:{password}"]
    if data:
        cmd += ["--data", data]
    res = from_lkpp(*cmd, f"https://monitor:{PORT}{path}")
    assert res.returncode == 0, res.stderr
    body, _, status = res.stdout.rpartition("\n")
    return int(status), body


def query(q: str) -> str:
    return "/api/v1/query?" + urllib.parse.urlencode({"query": q})


def test_lkpp_can_query_over_tls(address: dict[str, str], lkpp_password: str) -> None:
    status, body = lkpp_request(address["monitor"], query('lpse_spse_up{instance="spse"}'), "lkpp", lkpp_password)
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    assert [r["metric"]["instance"] for r in result] == ["spse"]
    now = int(time.time())
    form = urllib.parse.urlencode({"query": "up", "start": now - 60, "end": now, "step": 15})
    status, body = lkpp_request(address["monitor"], "/api/v1/query_range", "lkpp", lkpp_password, "POST", form)
    assert status == 200 and json.loads(body)["data"]["result"], body


def test_lkpp_can_federate(address: dict[str, str], lkpp_password: str) -> None:
    path = "/federate?" + urllib.parse.urlencode({"match[]": '{job="lpse"}'})
    status, body = lkpp_request(address["monitor"], path, "lkpp", lkpp_password)
    assert status == 200, body
    # The SPSE server's probe of itself (the monitoring server's probe of the same page is there too).
    lines = [line for line in body.splitlines() if line.startswith("lpse_spse_up{") and 'instance="spse"' in line]
    assert lines and 'lpse_site="lab"' in lines[0], body[:2000]


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("lkpp", "wrong-password"), ("someone", "x")],
    ids=["anonymous", "wrong", "unknown"],
)
def test_without_the_right_login_everything_is_401(
    address: dict[str, str], user: str | None, password: str | None
) -> None:
    for path in (query("up"), "/federate?match%5B%5D=up", "/api/v1/admin/tsdb/snapshot", "/"):
        status, _ = lkpp_request(address["monitor"], path, user, password)
        assert status == 401, path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/admin/tsdb/snapshot"),
        ("POST", "/api/v1/admin/tsdb/delete_series?match%5B%5D=up"),
        ("POST", "/-/reload"),
        ("POST", "/-/quit"),
        ("GET", "/api/v1/status/config"),
        ("GET", "/api/v1/targets"),
        ("GET", "/graph"),
        ("GET", "/api/v2/silences"),
        ("POST", "/api/v2/silences"),
        ("GET", "/metrics"),
        ("DELETE", "/api/v1/query?query=up"),
        ("POST", "/federate?match%5B%5D=up"),
    ],
)
def test_lkpp_reaches_nothing_else(address: dict[str, str], lkpp_password: str, method: str, path: str) -> None:
    status, _ = lkpp_request(address["monitor"], path, "lkpp", lkpp_password, method=method)
    assert status == 403, (method, path)


@pytest.mark.parametrize(
    ("host", "port"),
    [("monitor", 9090), ("monitor", 9093), ("monitor", 22), ("spse", 9120), ("spse", 22), ("spse", 5432)],
)
def test_lkpp_network_cannot_reach_services_directly(address: dict[str, str], host: str, port: int) -> None:
    code = f"import socket; socket.create_connection(({address[host]!r}, {port}), timeout=3)"
    res = from_lkpp("python3", "-c", code)
    assert res.returncode != 0, f"{host}:{port} answered LKPP's network"


def test_plain_http_is_refused(address: dict[str, str]) -> None:
    res = from_lkpp(
        "curl",
        "-sS",
        "--max-time",
        "5",
        "-w",
        "\n%{http_code}",
        f"http://{address['monitor']}:{PORT}/",
    )
    # The door answered (not "000", no connection), and refused: nginx's answer to plain HTTP on TLS.
    body, _, code = res.stdout.rpartition("\n")
    assert code == "400" and "The plain HTTP request was sent to HTTPS port" in body, res.stdout[-500:]


def test_requests_are_logged_with_the_login(
    monitor: testinfra.host.Host, address: dict[str, str], lkpp_password: str
) -> None:
    lkpp_request(address["monitor"], query("vector(1)"), "lkpp", lkpp_password)
    log = monitor.check_output("sudo tail -n 20 /var/log/nginx/lkpp-access.log")
    assert "- lkpp [" in log and "/api/v1/query?query=vector" in log


def test_one_inventory_change_revokes_lkpp(address: dict[str, str], lkpp_password: str) -> None:
    tags = ("--tags", "lkpp_access_preflight,lkpp_access_configure")
    revoke = run_playbook("servers.yml", "--limit", "monitoring_servers", *tags, "-e", '{"lkpp_access_accounts": []}')
    try:
        assert revoke.rc == 0, revoke.output[-3000:]
        status, _ = lkpp_request(address["monitor"], query("up"), "lkpp", lkpp_password)
        assert status == 401
    finally:
        restore = run_playbook("servers.yml", "--limit", "monitoring_servers", *tags)
    assert restore.rc == 0, restore.output[-3000:]
    status, _ = lkpp_request(address["monitor"], query("up"), "lkpp", lkpp_password)
    assert status == 200


def test_a_burst_of_wrong_passwords_is_slowed_then_banned(
    monitor: testinfra.host.Host, address: dict[str, str], lkpp_password: str
) -> None:
    """40 wrong passwords from LKPP's network as fast as curl goes: nginx slows the burst (429),
    fail2ban bans the address (its connections time out), while the right login from another
    address (the office, here the lab gateway) still works and the public page stays fast."""
    lkpp_ip = lab.load_config().lkpp.address
    url = f"https://monitor:{PORT}{query('up')}"
    # Stops at the first request that gets no answer at all: the ban.
    burst = (
        "for i in $(seq 40); do c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "
        f"--cacert {LAB_CA} --resolve monitor:{PORT}:{address['monitor']} -u lkpp:wrong-$i '{url}'); "
        'echo "$c"; [ "$c" = 000 ] && break; done; true'
    )
    try:
        codes = from_lkpp("sh", "-c", burst, timeout=240).stdout.split()
        assert "401" in codes, codes
        assert "429" in codes or "000" in codes, f"neither slowed nor banned: {codes}"
        deadline, banned = time.monotonic() + 30, False
        while not banned and time.monotonic() < deadline:
            banned = lkpp_ip in monitor.check_output("sudo fail2ban-client status lpse-logins")
            time.sleep(1)
        assert banned, monitor.check_output("sudo fail2ban-client status lpse-logins")
        refused = from_lkpp("curl", "-s", "-o", "/dev/null", "--max-time", "5", "--cacert", str(LAB_CA),
                            "--resolve", f"monitor:{PORT}:{address['monitor']}", url)  # fmt: skip
        assert refused.returncode != 0, "a banned address still reached the door"
        # From elsewhere: the right login works, the public page answers at once.
        cmd = ["curl", "-s", "--cacert", str(LAB_CA), "--resolve", f"monitor:{PORT}:{address['monitor']}",
               "-u", f"lkpp:{lkpp_password}", "-o", "/dev/null", "-w", "%{http_code}", url]  # fmt: skip
        assert subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout == "200"
        page = subprocess.run(
            ["curl", "-sf", "--max-time", "15", "--cacert", str(LAB_CA),
             "--resolve", f"monitor:443:{address['monitor']}", "-o", "/dev/null", "https://monitor/"],
            timeout=20,
        )  # fmt: skip
        # Answered, neither dropped by the ban (a banned client never connects) nor refused by the
        # rate limit (429 fails curl -f). No time bound: 7.8 s was seen with both labs busy.
        assert page.returncode == 0, page
    finally:
        monitor.run(f"sudo fail2ban-client set lpse-logins unbanip {lkpp_ip}")
    status, _ = lkpp_request(address["monitor"], query("up"), "lkpp", lkpp_password)
    assert status == 200, "unbanned, LKPP's address works again"
