"""The server room's UPS (roles/ups) on the lab. The UPS is simulated (NUT's dummy-ups driver
reading a file the lab writes, `lpse-lab ups`: no UPS is plugged into this machine); everything
that acts on it is real: NUT's driver, upsd and upsmon on the SPSE server (the UPS's cable is
there) and upsmon on the monitoring server over the network, the exporter, the alerts, nginx,
PostgreSQL and the WAL archive, and the hosts' own power-off."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import testinfra
from conftest import Provisioned
from lpse_lab import lab
from lpse_status import power
from test_alerting import mail_about
from test_spse_host import https_get

pytestmark = [pytest.mark.lab, pytest.mark.lab_power]


@pytest.fixture()
def mains_back(lab_config: lab.LabConfig) -> Iterator[None]:
    """However the test ends: mains restored and the hosts on the UPS running again, so that a
    failure here does not power the lab off under the tests after it."""
    yield
    hosts = [h for h in lab_config.hosts if h.name in ("spse", "monitor")]
    lab.set_ups(hosts[0] if hosts[0].ups else hosts[1], "on-mains")
    time.sleep(10)  # a shutdown already under way ends first
    for host in hosts:
        if not (lab.host_running(host) and lab.port_open(host.address, 22)):
            lab.start_host(lab_config, host)
        assert lab.wait_port(host.address, 22, 120), f"{host.name} did not come back"


def test_the_ups_is_read_by_upsd_upsmon_on_both_hosts_and_the_exporter(
    spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str], provisioned: Provisioned
) -> None:
    assert spse.check_output("upsc ups@localhost ups.status 2>/dev/null") == "OL"
    # upsmon logged in from the SPSE server itself (primary) and from the monitoring server.
    assert set(spse.check_output("upsc -c ups@localhost 2>/dev/null").split()) == {"127.0.0.1", address["monitor"]}
    for host in (spse, monitor):
        conf = host.file("/etc/nut/upsmon.conf")
        assert (conf.user, conf.group, conf.mode) == ("root", "nut", 0o640), "upsmon.conf holds the UPS password"
        assert host.service("nut-monitor").is_running
    metrics = spse.check_output("curl -sf --max-time 5 http://127.0.0.1:9120/metrics")
    assert 'lpse_ups_up{ups="ups"} 1.0' in metrics
    assert 'lpse_ups_status{flag="OL",ups="ups"} 1.0' in metrics
    assert 'lpse_ups_battery_runtime_low_seconds{ups="ups"} 600.0' in metrics  # the site's policy, not the UPS's


def test_the_self_test_is_scheduled_and_a_refusal_reaches_oncall(
    spse: testinfra.host.Host, provisioned: Provisioned
) -> None:
    """The role schedules the UPS's self-test with a login of its own and records since when; the
    lab's dummy-ups has no self-test command, so asking for one is refused: that is recorded, put in
    the UPS's timeline and mailed to on-call (UpsSelfTestRefused). The timer's login may run the
    self-test command and nothing else."""
    prom = "/var/lib/lpse-exporter/textfile/ups-self-test.prom"
    assert spse.service("lpse-ups-self-test.timer").is_enabled
    assert spse.service("lpse-ups-self-test.timer").is_running
    password = spse.file("/etc/nut/lpse-selftest.password")
    assert (password.user, password.mode) == ("root", 0o600)
    assert "lpse_ups_self_test_scheduled_timestamp_seconds" in spse.file(prom).content_string
    since = time.time()
    try:
        asked = spse.run("systemctl start lpse-ups-self-test.service")
        assert asked.rc != 0, "dummy-ups took a self-test command it does not have"
        record = spse.file(prom).content_string
        assert 'lpse_ups_self_test_request_success{ups="ups"} 0' in record, record
        assert "lpse_ups_self_test_requested_timestamp_seconds" in record
        refused = [e for e in events(spse) if e["event"] == "SELFTEST_REFUSED"]
        assert refused and "CMD-NOT-SUPPORTED" in refused[-1]["message"], refused
        # The timer's login cannot do what upsmon's can (shut the UPS's load off).
        login = spse.run(
            "sudo python3 -c \"import socket; s=socket.create_connection(('127.0.0.1', 3493)); f=s.makefile('rw'); "
            "[(f.write(l + chr(10)), f.flush(), print(f.readline().strip())) for l in "
            "('USERNAME lpse-selftest', 'PASSWORD ' + open('/etc/nut/lpse-selftest.password').read().strip(), "
            "'INSTCMD ups load.off')]\""
        )
        assert login.stdout.split("\n")[2].startswith("ERR ACCESS-DENIED"), login.stdout
        assert mail_about("UpsSelfTestRefused", since), "no mail about the refused self-test"
    finally:
        spse.run(f"rm -f {prom} && /usr/local/sbin/lpse-ups-self-test --schedule-only")
        spse.run("systemctl reset-failed lpse-ups-self-test.service")


def spse_answer(address: str) -> tuple[int, str]:
    """SPSE's status and page, 0 when the host does not answer at all."""
    try:
        status, body, _ = https_get(address)
    except OSError:
        return 0, ""
    return status, body


def events(host: testinfra.host.Host) -> list[dict]:
    text = host.check_output("cat /var/lib/lpse-power/events.jsonl 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Writer:
    """Commits one row after another on the SPSE server until PostgreSQL stops taking them; the
    ids psql printed are committed (psql prints only once the server has said COMMIT)."""

    def __init__(self, address: str) -> None:
        loop = (
            "sudo runuser -u postgres -- psql -X -q -d spse -c 'CREATE TABLE IF NOT EXISTS lab_power_cut "
            "(id bigserial PRIMARY KEY, at timestamptz DEFAULT now())'; while sudo runuser -u postgres -- "
            "psql -X -A -t -q -v ON_ERROR_STOP=1 -d spse -c 'INSERT INTO lab_power_cut DEFAULT VALUES RETURNING id'"
            " 2>/dev/null; do :; done"
        )
        self.proc = subprocess.Popen(lab.ssh_command(address, loop), stdout=subprocess.PIPE, text=True)
        self.committed: list[int] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.committed.append(int(line))

    def stop(self) -> None:
        self.proc.kill()
        self.reader.join(10)


def test_a_power_cut_warns_then_shuts_down_cleanly_and_loses_no_committed_row(
    lab_config: lab.LabConfig, spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str],
    provisioned: Provisioned, mains_back: None,
) -> None:  # fmt: skip
    spse_host = next(h for h in lab_config.hosts if h.name == "spse")
    monitor_host = next(h for h in lab_config.hosts if h.name == "monitor")
    before = len(events(spse))
    t0 = time.time()
    lab.set_ups(spse_host, "on-battery")
    # A ceiling with both labs busy on 2 cores, not a latency figure (benchmarks/alert_latency.py).
    mail = mail_about("UpsOnBattery", t0, timeout=120)
    assert mail is not None, "no on-battery mail within 120 s of mains lost"
    assert mail.recipients == ("ops@lab.lpse",) and "WARNING" in mail.subject
    assert any(e["event"] == "ONBATT" for e in events(spse)[before:])

    writer = Writer(address["spse"])
    notices: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(writer.committed) < 20:
            assert time.monotonic() < deadline, "the writer committed nothing"
            time.sleep(0.2)
        lab.set_ups(spse_host, "low-battery")  # below the policy's 30 % / 600 s
        deadline = time.monotonic() + 180
        while lab.host_running(spse_host) or lab.host_running(monitor_host):
            assert time.monotonic() < deadline, "the hosts did not power off within 180 s of the battery running low"
            status, body = spse_answer(address["spse"])
            if status == 503 and "listrik padam" in body:
                notices.append(status)
            time.sleep(0.5)
    finally:
        writer.stop()
    assert notices, "SPSE never showed the power-cut notice before the host went down"
    committed = list(writer.committed)

    # Mains returns; the servers start again (the UPS switches its output back on).
    lab.set_ups(spse_host, "on-mains")
    for host in (monitor_host, spse_host):
        lab.start_host(lab_config, host)
    for host in (monitor_host, spse_host):
        assert lab.wait_port(host.address, 22, 120), f"{host.name} did not boot"
    deadline = time.monotonic() + 120
    while spse_answer(address["spse"])[0] != 200:
        assert time.monotonic() < deadline, "SPSE did not come back within 120 s of the boot"
        time.sleep(1)

    rows = spse.check_output(
        "runuser -u postgres -- psql -X -A -t -d spse -c 'SELECT id FROM lab_power_cut'"
    ).split()  # fmt: skip
    assert set(committed) <= set(map(int, rows)), "a committed row is missing after the power cut"
    steps = [e["event"] for e in events(spse)[before:]]
    shutdown = ["SHUTDOWN_BEGIN", "SPSE_CLOSED", "SPSE_STOPPED", "CHECKPOINT", "WAL_PUSHED", "POSTGRESQL_STOPPED",
                "POWER_OFF"]  # fmt: skip
    assert [s for s in steps if s in shutdown] == shutdown, steps
    assert steps.index("ONBATT") < steps.index("SHUTDOWN_BEGIN")
    assert "POWER_OFF" in [e["event"] for e in events(monitor)], "the monitoring server did not shut down cleanly"

    # The status board writes the cut down from the UPS's timeline, once the SPSE server is back.
    deadline = time.monotonic() + 240
    while not (found := monitor.run("cat /var/lib/lpse-ops/incidents/*-PowerCut-spse.json 2>/dev/null").stdout):
        assert time.monotonic() < deadline, "no power-cut incident record 4 min after SPSE came back"
        time.sleep(5)
    record = json.loads(found)
    cut = [e for e in events(spse)[before:] if e["event"] in power.EVENTS]
    recorded = [line.rsplit("(", 1)[1].rstrip(")") for line in record["actions"][:-2]]
    assert recorded == [e["event"] for e in cut], record["actions"]
    assert record["actions"][0].startswith(cut[0]["time"][:19].replace("T", " ")), record["actions"][0]
    assert record["severity"] == "critical" and not record["published"]
    assert "the last WAL segment was pushed" in record["cause_en"]
