"""Lab fixtures: bring the nspawn lab up and provision it once per test session.

The first provisioning's recap is kept so tests can check it, and the lab stays up after
the run (`.venv/bin/lpse-lab down` stops it). Needs root, like the lab itself.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from lpse_backup.offroom import Offroom, client
from lpse_lab import lab, radosgw
from lpse_lab.cli import BOOTSTRAP_CMD, ansible_env, bootstrap_env, lab_secrets, playbook_cmd

REPO = lab.REPO
BIN = Path(sys.executable).parent
LAB_CA = lab.STATE_DIR / "pki" / "lab-ca.crt"
# What the first site.yml run restarts and reloads on the monitoring server.
MONITOR_SERVICES = ("prometheus", "prometheus-alertmanager", "lpse-status", "lpse-vmagent", "nginx", "fail2ban")

pytestmark = pytest.mark.lab


@functools.cache
def ops_login() -> tuple[str, str]:
    """The lab's operations login (the /ops logins also open /prometheus/ and /alertmanager/)."""
    return "ops", lab_secrets()["vault_status_ops_password"]


class _NamedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address, the certificate checked for a name (the lab has no DNS here)."""

    def __init__(self, address: str, name: str) -> None:
        super().__init__(address, 443, timeout=15, context=ssl.create_default_context(cafile=str(LAB_CA)))
        self.name = name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.name)  # type: ignore[attr-defined]


def front_door(
    address: str, path: str, body: object = None, method: str | None = None, login: tuple[str, str] | None = None
) -> tuple[int, bytes]:
    """A request to the monitoring server's HTTPS front door (the status board's site), as an
    operator in the office makes it: `path` like /prometheus/api/v1/query?…; JSON `body`."""
    headers = {"Host": "monitor"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    conn = _NamedHTTPS(address, "monitor")
    try:
        conn.request(
            method or ("GET" if body is None else "POST"), path, None if body is None else json.dumps(body), headers
        )
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def monitoring_api(address: str, service: str, path: str, body: object = None, method: str | None = None) -> Any:
    """JSON from Prometheus (`service` "prometheus") or Alertmanager through the front door with the
    operations login; fails the test on any status but 200."""
    status, data = front_door(address, f"/{service}/{path}", body, method, ops_login())
    assert status == 200, (service, path, status, data[:500])
    return json.loads(data) if data.strip() else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that power hosts off, then tests that replace a host, run after all the others, and
    tests that stop and start the whole lab run last: the lab's radosgw keeps objects in RAM, so a
    lab restart empties the off-room bucket that every backup test before it relies on."""
    order = {"lab_power": 1, "lab_rebuild": 2, "lab_national": 3, "lab_demo": 4, "lab_example": 5, "lab_lifecycle": 6}
    items.sort(key=lambda item: max((v for k, v in order.items() if item.get_closest_marker(k)), default=0))


@dataclass
class Run:
    rc: int
    output: str

    @property
    def text(self) -> str:
        """The output with Ansible's line wrapping undone, for matching messages."""
        return " ".join(self.output.split())

    @property
    def failures(self) -> str:
        """What a failed run says: each failed task with its message (they can be far from the
        end of a long run), then the end of the output."""
        failed_task = r"^TASK \[[^\n]*\n(?:(?!TASK \[).*\n)*?(?:fatal|failed): .*(?:\n(?!TASK \[|\S).*)*"
        blocks = re.findall(failed_task, self.output, re.M)
        return "\n".join(b[-1500:] for b in blocks[:5]) + "\n...\n" + self.output[-2500:]

    @property
    def changes(self) -> str:
        """Each task that reported a change, with its lines (a second run that should change
        nothing says what it changed, wherever that is in the output)."""
        changed_task = (
            r"^(?:TASK|RUNNING HANDLER) \[[^\n]*\n(?:(?!TASK \[|RUNNING HANDLER \[).*\n)*?changed: .*(?:\n(?!\S).*)*"
        )
        return "\n".join(b[-1500:] for b in re.findall(changed_task, self.output, re.M)[:10])

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host."""
        out: dict[str, dict[str, int]] = {}
        for m in re.finditer(r"^(\S+)\s+: ((?:\w+=\d+\s*)+)$", self.output, re.M):
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        return out


def run_playbook(name: str, *extra: str, inventory: Path | None = None) -> Run:
    env = ansible_env() | {"ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run(
        playbook_cmd(name, *extra, inventory=inventory), cwd=REPO, env=env, capture_output=True, text=True
    )
    return Run(res.returncode, res.stdout + res.stderr)


def overlay_inventory(tmp: Path, overlay: Path, vault: dict[str, Any], also: dict[str, Path] | None = None) -> Path:
    """An example inventory's lab overlay (tests/lab/*-overlay, plus `also`: destination inside it
    -> file), with the lab vault's secrets under the example's vault names (group_vars/all/vault.yml,
    0600, not in git). Paths name this lab's state (a second lab, `lpse-lab box`, keeps it elsewhere)."""
    out = tmp / overlay.name
    shutil.copytree(overlay, out)
    for dest, src in (also or {}).items():
        (out / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, out / dest)
    for yml in out.rglob("*.yml"):
        yml.write_text(yml.read_text().replace("/var/lib/lpse-lab/", f"{lab.STATE_DIR}/"))
    (out / "group_vars/all").mkdir(parents=True, exist_ok=True)
    fd = os.open(out / "group_vars/all/vault.yml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(vault, f)
    return out


def run_bootstrap() -> Run:
    env = bootstrap_env() | {"NO_COLOR": "1"}
    res = subprocess.run(BOOTSTRAP_CMD, cwd=REPO, env=env, capture_output=True, text=True)
    return Run(res.returncode, res.stdout + res.stderr)


@pytest.fixture(scope="session")
def lab_config() -> lab.LabConfig:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces, mounts, nspawn): run scripts/test as root")
    return lab.load_config()


@dataclass(frozen=True)
class Provisioned:
    """The runs of the `provisioned` fixture, and which of WATCHED_PACKAGES each host had
    before and after the check run (space-separated, per host name). `bootstrap`, `check` and
    `again` are None in a session without the provisioning tests (scripts/test's other labs).
    `national` waits for playbooks/national.yml, started beside the session's first tests when
    it has LKPP's (lab_national)."""

    bootstrap: Run | None
    check: Run | None
    site: Run
    again: Run | None
    before_check: dict[str, str]
    after_check: dict[str, str]
    national: Callable[[], Run] | None
    # The monitoring server's services right after the first run (before the second starts any).
    monitor_after_site: dict[str, str]


@pytest.fixture(scope="session")
def provisioned(request: pytest.FixtureRequest, lab_config: lab.LabConfig) -> Iterator[Provisioned]:
    """Lab up, bootstrapped, site.yml in check mode (on fresh hosts: before the first run), then
    applied, then applied again at once (the idempotence check: nothing else has touched the hosts
    in between). The check and the second run only when the session has the tests that read them.
    On a lab made from a snapshot of a provisioned one (scripts/test's other labs), the hosts are
    provisioned already: only what the snapshot cannot hold is made again, the off-room bucket
    (radosgw keeps it in RAM) with the backup repositories in it."""
    items = request.session.items  # type: ignore[attr-defined]
    judged = any(item.module.__name__ == "test_provisioning" for item in items)  # type: ignore[attr-defined]
    subprocess.run([str(BIN / "lpse-lab"), "up"], check=True)
    boot = check = again = None
    before = after = monitor_after_site = {}
    if lab.made_from_snapshot():
        site = run_playbook("site.yml", "--limit", "spse_servers", "--tags", "backup_configure")
        assert site.rc == 0, site.failures
    else:
        boot = run_bootstrap()
        assert boot.rc == 0, boot.output[-3000:]
        before = {h.name: installed(h.address, WATCHED_PACKAGES) for h in lab_config.hosts} if judged else {}
        check = run_playbook("site.yml", "--check") if judged else None
        after = {h.name: installed(h.address, WATCHED_PACKAGES) for h in lab_config.hosts} if judged else {}
        site = run_playbook("site.yml")
        assert site.rc == 0, site.failures
        monitor = next(h.address for h in lab_config.hosts if h.name == "monitor")
        states = lab.ssh(monitor, "systemctl is-active " + " ".join(MONITOR_SERVICES)).stdout.split()
        monitor_after_site = dict(zip(MONITOR_SERVICES, states, strict=False))
    # scripts/test makes its other labs from a snapshot of this one, once provisioned, and starts
    # them and the tests that need no lab once the busiest part, provisioning, is done. The
    # snapshot only pauses the hosts: the idempotence run after it still comes right after the
    # first, with nothing done to the hosts in between.
    if snap := os.environ.get("LPSE_TEST_SNAPSHOT"):
        subprocess.run([str(BIN / "lpse-lab"), "snapshot", "--dir", snap], check=True)
    if flag := os.environ.get("LPSE_TEST_PROVISIONED_FLAG"):
        Path(flag).touch()
    if not lab.made_from_snapshot() and judged:
        again = run_playbook("site.yml")
    # LKPP's host is provisioned beside the tests that come before LKPP's (minutes of waiting
    # on the lkpp host that those tests do not need).
    national = None
    if any(item.get_closest_marker("lab_national") for item in items):
        with tempfile.NamedTemporaryFile("w+", prefix="lpse-national-", suffix=".log", delete=False) as out:
            proc = subprocess.Popen(
                playbook_cmd("national.yml"), cwd=REPO, env=ansible_env() | {"ANSIBLE_NOCOLOR": "1"},
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def national_run() -> Run:
            rc = proc.wait()
            return Run(rc, Path(out.name).read_text())

        national = national_run
    yield Provisioned(boot, check, site, again, before, after, national, monitor_after_site)
    if national is not None and proc.poll() is None:
        proc.kill()


# Packages a first site.yml installs on the lab hosts (bootstrap does not).
WATCHED_PACKAGES = ("nftables", "nginx-light", "postgresql-15", "prometheus", "fail2ban", "pgbackrest")


def installed(address: str, packages: tuple[str, ...]) -> str:
    """Which of the packages are installed on a lab host, space-separated."""
    res = lab.ssh(
        address, "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' " + " ".join(packages) + " 2>/dev/null"
    )
    return " ".join(sorted(line.split()[1] for line in res.stdout.splitlines() if line.startswith("ii")))


@pytest.fixture(scope="session")
def ssh_config(tmp_path_factory: pytest.TempPathFactory, provisioned: Provisioned) -> Path:
    """ControlMaster keeps testinfra fast (one SSH handshake per host)."""
    d = tmp_path_factory.mktemp("ssh")
    cfg = d / "config"
    cfg.write_text(
        "Host *\n"
        "  User lpseops\n"
        f"  IdentityFile {lab.lab_key()}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {lab.known_hosts()}\n"
        "  StrictHostKeyChecking yes\n"
        "  ControlMaster auto\n"
        f"  ControlPath {d}/cm-%h\n"
        "  ControlPersist 120\n"
        "  ConnectTimeout 10\n"
    )
    return cfg


def _host(lab_config: lab.LabConfig, ssh_config: Path, name: str) -> testinfra.host.Host:
    address = next(h.address for h in lab_config.hosts if h.name == name)
    return testinfra.get_host(f"ssh://{address}", ssh_config=str(ssh_config), sudo=True)


@pytest.fixture(scope="session")
def spse(lab_config: lab.LabConfig, ssh_config: Path) -> testinfra.host.Host:
    return _host(lab_config, ssh_config, "spse")


@pytest.fixture(scope="session")
def monitor(lab_config: lab.LabConfig, ssh_config: Path) -> testinfra.host.Host:
    return _host(lab_config, ssh_config, "monitor")


@pytest.fixture(scope="session")
def offroom(lab_config: lab.LabConfig, ssh_config: Path) -> testinfra.host.Host:
    return _host(lab_config, ssh_config, "offroom")


def offroom_s3(lab_config: lab.LabConfig, bucket: str) -> Any:
    """An S3 client of `bucket` on the lab's off-room radosgw (plain HTTP, from this machine)."""
    return client(
        Offroom(
            f"http://{lab_config.offroom.address}:{lab_config.offroom_s3_port}",
            bucket,
            radosgw.ACCESS_KEY,
            lab_secrets()["vault_backup_offroom_secret_key"],
        )
    )


@pytest.fixture(scope="session")
def address(lab_config: lab.LabConfig) -> dict[str, str]:
    """The site's hosts by name (not LKPP's host, which site.yml leaves alone)."""
    return {h.name: h.address for h in lab_config.hosts if h != lab_config.lkpp}


@pytest.fixture()
def listener(spse: testinfra.host.Host) -> Iterator[int]:
    """A TCP listener on an unlisted port of the SPSE host, removed afterwards."""
    port = 8081
    spse.run(f"systemd-run --unit=lpse-test-listener python3 -m http.server {port} --bind 0.0.0.0")
    spse.run(
        f"for i in $(seq 50); do python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 1)\" "
        "2>/dev/null && break; sleep 0.1; done"
    )
    yield port
    spse.run("systemctl stop lpse-test-listener")
