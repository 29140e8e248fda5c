"""lpse_exporter collectors on captured /proc and /sys trees, and its probes against real servers."""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from lpse_exporter.__main__ import build
from lpse_exporter.collectors.base import LpseCollector
from lpse_exporter.collectors.disk import DiskSource, parse_mounts
from lpse_exporter.collectors.memory import MemorySource
from lpse_exporter.collectors.network import IFF_RUNNING, IFF_UP, NetworkSource
from lpse_exporter.collectors.textfile import TextfileSource
from lpse_exporter.collectors.uptime import BootSource, ProbeSource, SpseCheck, TlsTarget, probe_spse
from lpse_exporter.config import ConfigError, WebConfig, parse
from lpse_exporter.server import serve
from lpse_exporter.smart import main as smart_main
from lpse_lab.pki import ensure_server_cert
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

FIXTURE = Path(__file__).parent / "fixtures" / "spse-lab"


def samples(source: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, from a source's read() (exposition names, _total included)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LpseCollector([source]))  # type: ignore[list-item]
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(data: dict, name: str, **labels: str) -> float:
    return data[(name, tuple(sorted(labels.items())))]


def test_memory_from_captured_meminfo() -> None:
    data = samples(MemorySource(FIXTURE))
    meminfo = dict(line.split(":") for line in (FIXTURE / "proc/meminfo").read_text().splitlines())
    kib = {k: int(v.split()[0]) * 1024 for k, v in meminfo.items()}
    assert value(data, "lpse_memory_total_bytes") == kib["MemTotal"]
    assert value(data, "lpse_memory_available_bytes") == kib["MemAvailable"]
    assert value(data, "lpse_memory_used_bytes") == kib["MemTotal"] - kib["MemAvailable"]
    assert value(data, "lpse_memory_swap_total_bytes") == kib["SwapTotal"]
    assert value(data, "lpse_memory_pressure_stall_seconds_total", kind="some") == 0.0
    assert value(data, "lpse_exporter_collector_success", collector="memory") == 1.0


def test_memory_pressure_is_absent_without_psi(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text((FIXTURE / "proc/meminfo").read_text())
    data = samples(MemorySource(tmp_path))
    assert not any(name.startswith("lpse_memory_pressure") for name, _ in data)
    assert value(data, "lpse_exporter_collector_success", collector="memory") == 1.0


def test_filesystems_have_roles_and_pseudo_filesystems_are_left_out(tmp_path: Path) -> None:
    mounts = parse_mounts((FIXTURE / "proc/mounts").read_text())
    assert [m.mountpoint for m in mounts] == ["/"]  # overlay root; tmpfs, proc, /run/host binds left out
    src = DiskSource(FIXTURE, roles={"/": "system"}, statvfs=lambda mp: os.statvfs(tmp_path))
    data = samples(src)
    st = os.statvfs(tmp_path)
    labels = {"mountpoint": "/", "device": "overlay", "fstype": "overlay", "role": "system"}
    assert value(data, "lpse_filesystem_size_bytes", **labels) == st.f_blocks * st.f_frsize
    assert value(data, "lpse_filesystem_files", **labels) == st.f_files
    assert value(data, "lpse_filesystem_readonly", **labels) == 0.0
    assert value(data, "lpse_disk_written_bytes_total", device="vda") == 41921840 * 512
    assert value(data, "lpse_disk_io_time_seconds_total", device="vda") == pytest.approx(63.024)
    assert not any(dict(lbl).get("device", "").startswith("loop") for _, lbl in data)


def test_a_watched_disk_that_cannot_be_measured_fails_the_collector(tmp_path: Path) -> None:
    def denied(mp: str) -> os.statvfs_result:
        raise PermissionError(13, "Permission denied", mp)

    data = samples(DiskSource(FIXTURE, roles={"/": "system"}, statvfs=denied))
    assert value(data, "lpse_exporter_collector_success", collector="disk") == 0.0
    # A mount nobody asked to watch is skipped quietly.
    data = samples(DiskSource(FIXTURE, roles={}, statvfs=denied))
    assert value(data, "lpse_exporter_collector_success", collector="disk") == 1.0


@pytest.fixture()
def own_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A filesystem only this test writes to (this machine's disk is shared with the lab tests that
    run beside the unit tests, whose writes would move its free space under the test)."""
    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "lpse-test", str(fs)], check=True)
    try:
        yield fs
    finally:
        subprocess.run(["umount", str(fs)], check=True)


def test_disk_free_drops_by_what_is_written(own_filesystem: Path) -> None:
    tmp_path = own_filesystem
    src = DiskSource(Path("/"), statvfs=lambda mp: os.statvfs(tmp_path))
    (tmp_path / "proc").mkdir()

    def avail() -> float:
        st = os.statvfs(tmp_path)
        return st.f_bavail * st.f_frsize

    before = avail()
    blob = tmp_path / "blob"
    with blob.open("wb") as f:
        f.write(os.urandom(8 * 1024 * 1024))
        f.flush()
        os.fsync(f.fileno())
    data = samples(src)
    after = [v for (n, lbl), v in data.items() if n == "lpse_filesystem_avail_bytes" and dict(lbl)["mountpoint"] == "/"]
    assert after and before - after[0] == pytest.approx(8 * 1024 * 1024, abs=64 * 1024)


def test_network_counters_link_state_and_contracted_bandwidth() -> None:
    flags = {"host0": IFF_UP | IFF_RUNNING, "lo": IFF_UP}
    src = NetworkSource(FIXTURE, contracted_bps={"host0": 100_000_000}, link_flags=flags.get, exclude=())
    data = samples(src)
    assert value(data, "lpse_network_receive_bytes_total", interface="host0") == 27178907
    assert value(data, "lpse_network_transmit_packets_total", interface="host0") == 3211
    assert value(data, "lpse_network_up", interface="host0") == 1.0
    assert value(data, "lpse_network_up", interface="lo") == 0.0  # up but no carrier
    assert value(data, "lpse_network_contracted_bandwidth_bytes", interface="host0") == 12_500_000
    assert ("lpse_network_speed_bytes", (("interface", "host0"),)) not in data  # /sys has no host0


def test_link_state_of_the_real_loopback() -> None:
    data = samples(NetworkSource(Path("/"), exclude=()))
    assert value(data, "lpse_network_up", interface="lo") == 1.0


def test_virtual_interfaces_are_dropped_and_the_uplink_kept(tmp_path: Path) -> None:
    """40 veths and a container bridge (what a container runtime adds) cost no series; an uplink
    with a contract is kept whatever the patterns say; include narrows to what is named."""
    names = ["lo", "eth0", "br-3f2a", "docker0", "enp1s0", "veth-uplink"] + [f"veth{i:02d}" for i in range(40)]
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/dev").write_text(
        "Inter-|   Receive\n face |bytes\n" + "".join(f"{n}: {' '.join(['7'] * 16)}\n" for n in names)
    )

    def interfaces(src: NetworkSource) -> set[str]:
        received = (lbl for (n, lbl), _ in samples(src).items() if n == "lpse_network_receive_bytes_total")
        return {dict(lbl)["interface"] for lbl in received}

    assert interfaces(NetworkSource(tmp_path, link_flags=lambda _: None)) == {"eth0", "enp1s0"}
    kept = NetworkSource(tmp_path, {"veth-uplink": 1e8}, lambda _: None)
    assert interfaces(kept) == {"eth0", "enp1s0", "veth-uplink"}
    assert interfaces(NetworkSource(tmp_path, link_flags=lambda _: None, include=["en*"])) == {"enp1s0"}
    assert len(interfaces(NetworkSource(tmp_path, link_flags=lambda _: None, exclude=()))) == len(names)


def test_boot_time() -> None:
    # The kernel's btime (proc/stat) plus init's start in clock ticks (proc/1/stat, captured from
    # a lab host's systemd: 3036273 ticks of 1/100 s after this machine's boot).
    assert value(samples(BootSource(FIXTURE)), "lpse_boot_time_timestamp_seconds") == pytest.approx(1795512698.73)


def test_a_failing_source_does_not_break_the_others(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def read(self) -> list[GaugeMetricFamily]:
            raise OSError("source gone")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LpseCollector([Broken(), MemorySource(FIXTURE)]))
    text = generate_latest(registry).decode()
    assert 'lpse_exporter_collector_success{collector="broken"} 0.0' in text
    assert 'lpse_exporter_collector_success{collector="memory"} 1.0' in text
    assert "lpse_memory_total_bytes" in text


def test_textfiles_served_and_a_malformed_one_reported(tmp_path: Path) -> None:
    (tmp_path / "backup.prom").write_text(
        "# HELP lpse_backup_last_success_timestamp_seconds Last good backup\n"
        "# TYPE lpse_backup_last_success_timestamp_seconds gauge\n"
        'lpse_backup_last_success_timestamp_seconds{dataset="database",target="s3"} 1.7e9\n'
    )
    (tmp_path / "broken.prom").write_text("this is { not metrics\n")
    (tmp_path / "ignored.txt").write_text("x 1\n")
    data = samples(TextfileSource(tmp_path))
    assert value(data, "lpse_backup_last_success_timestamp_seconds", dataset="database", target="s3") == 1.7e9
    assert value(data, "lpse_textfile_error", file="backup.prom") == 0.0
    assert value(data, "lpse_textfile_error", file="broken.prom") == 1.0
    assert value(data, "lpse_exporter_collector_success", collector="textfile") == 1.0


class SpseStandIn(http.server.BaseHTTPRequestHandler):
    """A local web server answering like SPSE (named as such: a stand-in for the probe's tests)."""

    body = b"<footer>SPSE v4.5</footer>"
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def spse_standin() -> Iterator[tuple[str, type[SpseStandIn]]]:
    handler = type("H", (SpseStandIn,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/eproc4/", handler
    httpd.shutdown()


def test_spse_probe_up_error_page_and_down(spse_standin: tuple[str, type[SpseStandIn]]) -> None:
    url, handler = spse_standin
    assert probe_spse(SpseCheck(url), 2).up
    handler.body = b"<p>Maaf, terjadi error pada aplikasi SPSE.</p><footer>SPSE v4.5</footer>"
    r = probe_spse(SpseCheck(url), 2)
    assert not r.up and r.status == 200
    handler.status = 502
    assert not probe_spse(SpseCheck(url), 2).up
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = probe_spse(SpseCheck(f"http://127.0.0.1:{closed}/eproc4/"), 2)
    assert not r.up and r.status == 0


def test_tls_expiry_is_read_from_the_certificate(tmp_path: Path) -> None:
    from cryptography import x509

    crt, key = ensure_server_cert(tmp_path, "localhost", "127.0.0.1")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def accept() -> None:
        conn, _ = srv.accept()
        try:
            ctx.wrap_socket(conn, server_side=True).close()
        except ssl.SSLError:
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    src = ProbeSource(None, tls=[TlsTarget("127.0.0.1", port, "localhost", str(tmp_path / "lab-ca.crt"))], timeout=3)
    src.run_once()
    srv.close()
    data = samples(src)
    expected = x509.load_pem_x509_certificate(crt.read_bytes()).not_valid_after_utc.timestamp()
    target = f"localhost:{port}"
    assert value(data, "lpse_tls_certificate_valid", target=target) == 1.0
    assert value(data, "lpse_tls_certificate_expiry_timestamp_seconds", target=target) == expected


def test_config_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"spse\.url is required"):
        parse({"spse": {}})
    with pytest.raises(ConfigError, match="uplinks_bps"):
        parse({"uplinks_bps": {"eth0": 0}})
    with pytest.raises(ConfigError, match="listen_port must be a int"):
        parse({"listen_port": "9120"})
    cfg = parse({"filesystem_roles": {"/var/lib/spse": "documents"}, "uplinks_bps": {"eth0": 50e6}})
    assert cfg.filesystem_roles["/var/lib/spse"] == "documents"


def test_server_requires_basic_auth_over_tls(tmp_path: Path) -> None:
    crt, key = ensure_server_cert(tmp_path, "localhost", "127.0.0.1")
    web = WebConfig(str(crt), str(key), {"prometheus": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()})
    registry, _ = build(parse({"root": str(FIXTURE), "textfile_dir": str(tmp_path)}))
    httpd = serve(registry, "127.0.0.1", 0, web)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://localhost:{httpd.server_address[1]}/metrics"
    ctx = ssl.create_default_context(cafile=str(tmp_path / "lab-ca.crt"))
    try:
        for auth in (None, "prometheus:wrong"):
            req = urllib.request.Request(url)
            if auth:
                req.add_header("Authorization", "Basic " + __import__("base64").b64encode(auth.encode()).decode())
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, context=ctx, timeout=5)
            assert e.value.code == 401
        req = urllib.request.Request(url, headers={"Authorization": "Basic cHJvbWV0aGV1czpzM2NyZXQ="})
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            body = r.read().decode()
        assert 'lpse_exporter_collector_success{collector="memory"} 1.0' in body
    finally:
        httpd.shutdown()


def test_smart_health_textfile(tmp_path: Path) -> None:
    out = tmp_path / "smart.prom"
    assert (
        smart_main(["--output", str(out), "--smartctl", str(Path(__file__).parent / "fixtures/smartctl-standin")]) == 0
    )
    data = samples(TextfileSource(tmp_path))
    assert value(data, "lpse_disk_smart_available") == 1.0
    assert value(data, "lpse_disk_smart_healthy", device="/dev/sda", model="WDC WD40EFRX") == 1.0
    assert value(data, "lpse_disk_smart_healthy", device="/dev/sdb", model="ST2000DM008") == 0.0
    assert not any(dict(lbl).get("device") == "/dev/vda" for _, lbl in data)


def test_smart_without_smartctl_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no smartctl anywhere
    assert smart_main(["--output", str(tmp_path / "smart.prom")]) == 0
    data = samples(TextfileSource(tmp_path))
    assert value(data, "lpse_disk_smart_available") == 0.0
    assert value(data, "lpse_textfile_error", file="smart.prom") == 0.0


def test_os_updates_from_apts_simulation(tmp_path: Path) -> None:
    """Captured `apt-get -s upgrade` (Debian 12): two security updates, two others, two packages
    kept back, one held with apt-mark; a reboot asked for."""
    from lpse_exporter.os_updates import collect, parse_simulation
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = (FIXTURE.parent / "apt-get-simulate-upgrade.txt").read_text()
    found = parse_simulation(text)
    assert (found.security, found.other, found.held_back) == (2, 2, 2)
    registry = CollectorRegistry()
    (tmp_path / "reboot-required").write_text("*** System restart required ***\n")
    collect(registry, text, ["openssl"], tmp_path / "reboot-required")
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    assert got[("lpse_os_upgrades_pending", (("kind", "security"),))] == 2
    assert got[("lpse_os_upgrades_pending", (("kind", "other"),))] == 2
    assert got[("lpse_os_packages_held_back", ())] == 3
    assert got[("lpse_os_reboot_required", ())] == 1
    assert got[("lpse_os_updates_check_success", ())] == 1
    # apt failed: said so, no counts that could read as "nothing pending".
    failed = CollectorRegistry()
    collect(failed, None, [], tmp_path / "absent")
    text_failed = generate_latest(failed).decode()
    assert "lpse_os_updates_check_success 0.0" in text_failed and 'kind="security"' not in text_failed
