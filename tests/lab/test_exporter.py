"""lpse-exporter on the lab, checked against ground truth (issue 3)."""

from __future__ import annotations

import subprocess
import time

import pytest
import testinfra
from prometheus_client.parser import text_string_to_metric_families
from test_spse_host import https_get_bytes

pytestmark = pytest.mark.lab


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def scrape_from(host: testinfra.host.Host, target: str) -> dict:
    return parse(host.check_output(f"curl -sf --max-time 5 http://{target}:9120/metrics"))


def scrape_inside(netns: str) -> dict:
    """Scrape over the host's loopback from this machine: works with the host's uplink down."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "curl", "-sf", "--max-time", "5", "http://127.0.0.1:9120/metrics"],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse(out.stdout)


def one(data: dict, name: str, **labels: str) -> float:
    return data[(name, tuple(sorted(labels.items())))]


def recovers(name: str, seconds: float = 30, **labels: str) -> bool:
    """Wait until the SPSE host's exporter reports `name` = 1 again (later tests rely on it)."""
    deadline = time.monotonic() + seconds
    while one(scrape_inside("lab-spse"), name, **labels) != 1.0:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def test_exporter_runs_unprivileged_on_every_host(spse: testinfra.host.Host, monitor: testinfra.host.Host) -> None:
    for host in (spse, monitor):
        svc = host.service("lpse-exporter")
        assert svc.is_running and svc.is_enabled
        assert {p.user for p in host.process.filter(comm="lpse-exporter")} | {
            p.user for p in host.process.filter(comm="python3") if "lpse-exporter" in p.args
        } == {"lpse-exporter"}


def test_only_the_monitoring_server_may_scrape(monitor: testinfra.host.Host, offroom: testinfra.host.Host) -> None:
    assert monitor.run("curl -sf --max-time 5 -o /dev/null http://spse:9120/metrics").rc == 0
    assert offroom.run("curl -sf --max-time 5 -o /dev/null http://spse:9120/metrics").rc != 0


def test_every_collector_succeeds(monitor: testinfra.host.Host) -> None:
    data = scrape_from(monitor, "spse")
    for collector in ("disk", "memory", "network", "uptime", "temperature", "probes", "textfile"):
        assert one(data, "lpse_exporter_collector_success", collector=collector) == 1.0, collector
    assert one(data, "lpse_temperature_sensors") == 0.0  # a container: "no sensors", not a failure
    assert one(data, "lpse_spse_up", url="https://spse/eproc4/") == 1.0
    assert one(data, "lpse_tls_certificate_valid", target="spse:443") == 1.0
    assert one(data, "lpse_network_contracted_bandwidth_bytes", interface="host0") == 12_500_000
    # The hourly root timer ran once at install; lab disks are virtual, so no health series.
    assert one(data, "lpse_disk_smart_available") == 1.0
    assert one(data, "lpse_textfile_error", file="smart.prom") == 0.0


def test_the_bmc_timer_runs_and_reads_nothing_without_a_bmc(spse: testinfra.host.Host) -> None:
    """The lab hosts are containers: no /dev/ipmi*, so the root timer's service finds no BMC and
    writes no table (the temperature collector then reads hwmon only, and succeeds: above)."""
    timer = spse.service("lpse-ipmi-sensors.timer")
    assert timer.is_enabled and timer.is_running
    assert spse.run("systemctl start lpse-ipmi-sensors.service").rc == 0
    assert spse.check_output("systemctl show -p ConditionResult --value lpse-ipmi-sensors.service") == "no"
    assert not spse.file("/var/lib/lpse-exporter/ipmi-sensors.txt").exists
    assert spse.package("ipmitool").is_installed


def test_disk_avail_drops_by_what_is_written(spse: testinfra.host.Host, monitor: testinfra.host.Host) -> None:
    """On the document store, a disk of the SPSE host's own: its root is an overlay on this
    machine's filesystem, which the other lab and the tests beside it write to as well."""
    size = 32 * 1024 * 1024
    documents = "/var/lib/spse/documents"
    test_file = f"{documents}/.lab-disk-test"

    def avail() -> float:
        found = [
            v
            for (name, labels), v in scrape_from(monitor, "spse").items()
            if name == "lpse_filesystem_avail_bytes" and ("mountpoint", documents) in labels
        ]
        assert len(found) == 1, found
        return found[0]

    try:
        before = avail()
        spse.check_output(f"head -c {size} /dev/urandom > {test_file} && sync")
        after = avail()
    finally:
        spse.run(f"rm -f {test_file}")
    # Allow 2 MiB besides the file itself for ext4's metadata and any other writer.
    assert before - after == pytest.approx(size, abs=2 * 1024 * 1024)


def spse_documents(spse: testinfra.host.Host) -> list[tuple[int, int]]:
    """Three new bid documents from the simulator: [(bid id, bytes)]."""
    seed = time.time_ns() % 2**31  # a new seed: tender codes from an old seed already exist
    spse.check_output(
        "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz "
        f"generate --tenders 1 --bids-per-tender 3 --documents-size 30M --seed {seed}"
    )
    rows = spse.check_output(
        "sudo -u postgres psql -AtF' ' -c 'SELECT id, dokumen_bytes FROM penawaran ORDER BY id DESC LIMIT 3' spse"
    )
    return [(int(i), int(n)) for i, n in (line.split() for line in rows.splitlines())]


def test_interface_counters_match_bytes_sent(spse: testinfra.host.Host, address: dict[str, str]) -> None:
    """Download SPSE documents of known size over HTTPS: host0's transmit counter grows by that much."""
    docs = spse_documents(spse)
    before = scrape_inside("lab-spse")
    received = sum(len(https_get_bytes(address["spse"], f"/eproc4/dokumen/{i}")) for i, _ in docs)
    after = scrape_inside("lab-spse")
    assert received == sum(n for _, n in docs)
    sent = one(after, "lpse_network_transmit_bytes_total", interface="host0") - one(
        before, "lpse_network_transmit_bytes_total", interface="host0"
    )
    assert sent == pytest.approx(received, rel=0.02)


def test_spse_down_is_seen_within_one_probe_round(spse: testinfra.host.Host) -> None:
    url = "https://spse/eproc4/"
    spse.check_output("systemctl stop spse")
    try:
        time.sleep(3)  # lab probe interval: 2 s
        down = scrape_inside("lab-spse")
        assert one(down, "lpse_spse_up", url=url) == 0.0
        assert one(down, "lpse_spse_http_status", url=url) == 502.0
    finally:
        spse.check_output("systemctl start spse")
    assert recovers("lpse_spse_up", url=url)


def test_spse_error_page_counts_as_down(spse: testinfra.host.Host) -> None:
    url = "https://spse/eproc4/"
    spse.check_output("touch /var/lib/spse/simulator-error")
    try:
        time.sleep(3)
        data = scrape_inside("lab-spse")
        assert one(data, "lpse_spse_http_status", url=url) == 200.0
        assert one(data, "lpse_spse_up", url=url) == 0.0
    finally:
        spse.run("rm -f /var/lib/spse/simulator-error")
    assert recovers("lpse_spse_up", url=url)


def test_link_down_is_reported() -> None:
    subprocess.run(["ip", "-n", "lab-spse", "link", "set", "host0", "down"], check=True)
    try:
        data = scrape_inside("lab-spse")
        assert one(data, "lpse_network_up", interface="host0") == 0.0
        time.sleep(3)
        assert one(scrape_inside("lab-spse"), "lpse_internet_probe_up", target="gateway") == 0.0
    finally:
        subprocess.run(["ip", "-n", "lab-spse", "link", "set", "host0", "up"], check=True)
    assert one(scrape_inside("lab-spse"), "lpse_network_up", interface="host0") == 1.0
    assert recovers("lpse_internet_probe_up", target="gateway")  # the probes see the link again


def test_a_container_runtimes_veths_add_no_series() -> None:
    """20 veth pairs (40 interfaces) and a bridge in the SPSE host's namespace, as a container
    runtime makes them: the network series stay those of the host's own link."""

    def network_series() -> set[tuple]:
        return {k for k in scrape_inside("lab-spse") if k[0].startswith("lpse_network_")}

    before = network_series()
    assert any(dict(labels).get("interface") == "host0" for _, labels in before)
    ns = ["ip", "-n", "lab-spse"]
    try:
        subprocess.run([*ns, "link", "add", "br-lpsetest", "type", "bridge"], check=True)
        for i in range(20):
            subprocess.run([*ns, "link", "add", f"veth{i}a", "type", "veth", "peer", "name", f"veth{i}b"], check=True)
            subprocess.run([*ns, "link", "set", f"veth{i}a", "up"], check=True)
        assert network_series() == before
    finally:
        subprocess.run([*ns, "link", "del", "br-lpsetest"], capture_output=True)
        for i in range(20):
            subprocess.run([*ns, "link", "del", f"veth{i}a"], capture_output=True)


def test_metrics_pass_promtool_lint(monitor: testinfra.host.Host) -> None:
    text = monitor.check_output("curl -sf http://spse:9120/metrics")
    res = subprocess.run(["promtool", "check", "metrics"], input=text + "\n", capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
