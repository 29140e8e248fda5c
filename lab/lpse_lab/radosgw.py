"""A throwaway single-node Ceph cluster with radosgw: the off-room S3 server for tests.

Debian's ceph-mon, ceph-osd and radosgw: one monitor, one OSD on `memstore` (objects in RAM,
gone when it stops), pool size 1, no cephx (`auth_* = none`, with the crc messenger modes
that avoid a hang at AUTH_CONNECTING), and radosgw's beast frontend, over HTTPS when given a
certificate. Versioning and object lock are enforced like on a production Ceph: a
COMPLIANCE-locked version cannot be deleted. Starts in about 15 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "LPSELABOFFROOM000001"


class RadosgwError(RuntimeError):
    pass


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "default"
    tls_endpoint: str = ""  # https://, when started with a certificate (pgBackRest speaks only HTTPS)


def _conf(state: Path, address: str, port: int, tls: tuple[int, Path, Path] | None) -> str:
    frontend = f"beast endpoint={address}:{port}"
    if tls:
        frontend += f" ssl_endpoint={address}:{tls[0]} ssl_certificate={tls[1]} ssl_private_key={tls[2]}"
    return f"""[global]
fsid = {uuid.uuid4()}
run dir = {state}/run
pid file = {state}/run/$name.pid
osd crush chooseleaf type = 0
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
mon host = 127.0.0.1
[mon.a]
log file = {state}/log/mon.log
chdir = ""
mon data = {state}/mon
mon data avail crit = 0
mon allow pool delete = true
[osd.0]
log file = {state}/log/osd.log
chdir = ""
osd data = {state}/osd
osd journal = {state}/osd.journal
osd journal size = 100
osd objectstore = memstore
memstore device bytes = {8 << 30}
osd class load list = *
osd class default list = *
[client.rgw.lab]
log file = {state}/log/rgw.log
rgw data = {state}/rgw
rgw frontends = {frontend}
"""


def _run(state: Path, *cmd: str) -> str:
    # Inside a network namespace when the state dir says so (the lab's off-room host).
    netns = (state / "netns").read_text().strip() if (state / "netns").exists() else ""
    argv = (["ip", "netns", "exec", netns] if netns else []) + list(cmd)
    res = subprocess.run(argv, capture_output=True, text=True, env={"CEPH_CONF": str(state / "ceph.conf")})
    if res.returncode != 0:
        raise RadosgwError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]} (logs in {state / 'log'})")
    return res.stdout


def start(
    state: Path,
    address: str = "127.0.0.1",
    port: int = 7480,
    tls: tuple[int, Path, Path] | None = None,
    netns: str = "",
    secret_key: str = "",
) -> S3Server:
    """A fresh cluster in `state` (wiped first) with one S3 user; daemons run in the background.
    `tls` = (port, certificate, key) adds an HTTPS endpoint beside the plain one; `netns` runs
    the daemons in that network namespace (the monitor on its own 127.0.0.1, radosgw on `address`)."""
    for tool in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin"):
        if not shutil.which(tool):
            raise RadosgwError(f"{tool} is missing: apt-get install ceph-mon ceph-osd radosgw ceph-common")
    stop(state)
    if state.exists():
        shutil.rmtree(state)
    for d in ("log", "mon", "osd", "rgw", "run"):
        (state / d).mkdir(parents=True)
    if netns:
        (state / "netns").write_text(netns + "\n")
    (state / "ceph.conf").write_text(_conf(state, address, port, tls))
    _run(state, "ceph-mon", "--id", "a", "--mkfs", "--keyring", "/dev/null")
    (state / "mon" / "keyring").touch()
    _run(state, "ceph-mon", "--id", "a")  # daemonises; pid files in run/
    osd = _run(state, "ceph", "osd", "create").strip()
    _run(state, "ceph", "osd", "crush", "add", f"osd.{osd}", "1", "root=default")
    _run(state, "ceph-osd", "--id", osd, "--mkjournal", "--mkfs")
    _run(state, "ceph-osd", "--id", osd)
    _run(state, "radosgw", "-n", "client.rgw.lab")
    if not _wait_listening(state, port, 60):
        raise RadosgwError(f"radosgw did not listen on {address}:{port} in 60 s: see {state / 'log' / 'rgw.log'}")
    secret = secret_key or uuid.uuid4().hex + uuid.uuid4().hex[:8]
    _run(
        state, "radosgw-admin", "user", "create", "--uid", "lpse-offroom", "--display-name", "LPSE off-room backups",
        "--access-key", ACCESS_KEY, "--secret-key", secret,
    )  # fmt: skip
    if tls and not _wait_listening(state, tls[0], 10):
        raise RadosgwError(f"radosgw did not listen for HTTPS on {address}:{tls[0]}: see {state / 'log' / 'rgw.log'}")
    tls_endpoint = f"https://{address}:{tls[0]}" if tls else ""
    return S3Server(f"http://{address}:{port}", ACCESS_KEY, secret, tls_endpoint=tls_endpoint)


def _listening(state: Path, port: int) -> bool:
    # Asked of the socket table (in the namespace), not by connecting: a host firewall may drop us.
    try:
        return bool(_run(state, "ss", "-Hltn", f"sport = :{port}").strip())
    except RadosgwError:
        return False


def _wait_listening(state: Path, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _listening(state, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def running(state: Path, port: int) -> bool:
    return bool(pids(state)) and _listening(state, port)


def stop_gateway(state: Path) -> None:
    """Stop radosgw alone: the S3 endpoint goes dead, the objects stay (mon and OSD keep running)."""
    pidfile = state / "run" / "client.rgw.lab.pid"
    pid = int(pidfile.read_text()) if pidfile.exists() else 0
    if pid and Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    port = _http_port(state)
    if _listening(state, port):
        raise RadosgwError(f"radosgw still listens on {port} after SIGTERM")


def start_gateway(state: Path) -> None:
    """Start radosgw again on the running cluster (after stop_gateway)."""
    _run(state, "radosgw", "-n", "client.rgw.lab")
    port = _http_port(state)
    if not _wait_listening(state, port, 60):
        raise RadosgwError(f"radosgw did not come back on port {port}: see {state / 'log' / 'rgw.log'}")


def _http_port(state: Path) -> int:
    """The plain endpoint's port, from `rgw frontends = beast endpoint=<address>:<port> ...`."""
    line = next(ln for ln in (state / "ceph.conf").read_text().splitlines() if "beast endpoint=" in ln)
    return int(line.split("beast endpoint=", 1)[1].split()[0].rsplit(":", 1)[1])


def pids(state: Path) -> list[int]:
    """Pids of the cluster's daemons (their pid files are in run/)."""
    out = []
    for pidfile in (state / "run").glob("*.pid") if (state / "run").exists() else []:
        try:
            out.append(int(pidfile.read_text().strip()))
        except (ValueError, FileNotFoundError):  # half-written, or removed by its exiting daemon since the glob
            continue
    return [p for p in out if Path(f"/proc/{p}").exists()]


def stop(state: Path) -> None:
    """Stop the daemons of the cluster in `state`: SIGTERM, then SIGKILL after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        for pid in pids(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids(state) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids(state):
            return
