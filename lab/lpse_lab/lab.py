"""The local lab: Debian 12 hosts as systemd-nspawn containers in network namespaces.

For tests and the demo only. Each host boots systemd as PID 1 on an overlayfs over one
cached Debian rootfs, sits in its own network namespace with a veth on a bridge, and
reaches Debian packages through an apt-cacher-ng proxy on the bridge address. Hosts have
no default route: traffic only ever goes to the lab hosts and this machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from lpse_lab import faultydrive, ups
from lpse_lab.oncall import RelaySettings

log = logging.getLogger("lpse_lab")

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"
STATE_DIR = Path(os.environ.get("LPSE_LAB_DIR", "/var/lib/lpse-lab"))
CACHE_DIR = Path(os.environ.get("LPSE_LAB_CACHE", "/var/cache/lpse-lab"))
BRIDGE = "lpselab0"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What every lab host's apt reads (the template's sources.list), and what the proxy is warmed with.
HOST_SOURCES = (
    f"deb {DEBIAN_MIRROR} bookworm main\n"
    f"deb {DEBIAN_MIRROR} bookworm-updates main\n"
    "deb http://deb.debian.org/debian-security bookworm-security main\n"
)
# Bump when the template's contents change, so that a stale cache is rebuilt.
TEMPLATE_VERSION = "bookworm-v1"
# No python3 and no sudo on purpose: every lab host starts as the bare server an
# operator gets from a provider, and playbooks/bootstrap.py must make it Ansible-ready.
TEMPLATE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,iproute2,ca-certificates"


class LabError(RuntimeError):
    """A problem the operator can fix; the message says how."""


@dataclass(frozen=True)
class LabDisk:
    """A disk of its own for one directory of a host: an ext4 image, loop-mounted, bound in."""

    mountpoint: str
    label: str
    size_mb: int


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    disks: tuple[LabDisk, ...] = ()
    # Where the host's "USB port" appears inside it (e.g. /media): drives plugged in with
    # `lpse-lab drive plug` are mounted below it, as an operator's automounter would.
    usb: str = ""
    # Where the host's simulated UPS's data file appears inside it (lpse_lab.ups): its NUT
    # dummy-ups driver reads `<lab_ups>/ups.dev`, which `lpse-lab ups` changes.
    ups: str = ""

    @property
    def netns(self) -> str:
        return f"lab-{self.name}"

    @property
    def veth(self) -> str:
        return f"vl-{self.name}"[:15]

    @property
    def dir(self) -> Path:
        return STATE_DIR / "hosts" / self.name

    @property
    def root(self) -> Path:
        return self.dir / "merged"


@dataclass(frozen=True)
class LabConfig:
    hosts: tuple[LabHost, ...]
    bridge_address: ipaddress.IPv4Interface
    apt_proxy_port: int
    smtp_port: int
    https_port: int
    lkpp: LabHost
    offroom_name: str
    offroom_s3_port: int
    offroom_s3_tls_port: int

    @property
    def offroom(self) -> LabHost:
        """The off-room host, whose network namespace runs the lab's S3 server (radosgw)."""
        return next(h for h in self.hosts if h.name == self.offroom_name)

    @property
    def gateway(self) -> str:
        return str(self.bridge_address.ip)


DISK_SIZES_ENV = "LPSE_LAB_DISK_MB"


def disk_sizes() -> dict[str, int]:
    """Disk sizes that replace the inventory's, by label: LPSE_LAB_DISK_MB="spse-docs=4096" (the
    backup benchmark's grown SPSE; set it before the disks are made, at `lpse-lab up`)."""
    value = os.environ.get(DISK_SIZES_ENV, "")
    try:
        return {label: int(mb) for label, mb in (item.split("=") for item in value.split(",") if item)}
    except ValueError as e:
        raise LabError(f'{DISK_SIZES_ENV}={value!r}: write label=MiB[,label=MiB], e.g. "spse-docs=4096"') from e


def load_config(inventory: Path = INVENTORY) -> LabConfig:
    """Read lab host names/addresses from the lab inventory (the one source of truth)."""
    sizes = disk_sizes()
    hosts_file = inventory / "hosts.yml"
    lab_vars = inventory / "group_vars" / "all" / "lab.yml"
    data = yaml.safe_load(hosts_file.read_text())
    lab_settings = yaml.safe_load(lab_vars.read_text())
    bridge = ipaddress.IPv4Interface(lab_settings["lab_bridge_address"])
    hosts: dict[str, LabHost] = {}

    def walk(group: dict) -> None:
        for name, hvars in (group.get("hosts") or {}).items():
            hvars = hvars or {}
            disks = tuple(
                LabDisk(d["mountpoint"], d["label"], sizes.get(d["label"], int(d["size_mb"])))
                for d in hvars.get("lab_disks", [])
            )
            hosts[name] = LabHost(
                name, hvars["ansible_host"], disks, hvars.get("lab_usb", ""), hvars.get("lab_ups", "")
            )
        for child in (group.get("children") or {}).values():
            walk(child or {})

    walk(data["all"])
    for host in hosts.values():
        if ipaddress.IPv4Address(host.address) not in bridge.network:
            raise LabError(f"lab host {host.name} address {host.address} is outside {bridge.network} ({lab_vars})")
    return LabConfig(
        tuple(hosts.values()),
        bridge,
        int(lab_settings["lab_apt_proxy_port"]),
        int(lab_settings["lab_oncall_smtp_port"]),
        int(lab_settings["lab_oncall_https_port"]),
        hosts[lab_settings["lab_lkpp_host"]],
        lab_settings["lab_offroom_host"],
        int(lab_settings["lab_offroom_s3_port"]),
        int(lab_settings["lab_offroom_s3_tls_port"]),
    )


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    log.debug("+ %s", " ".join(cmd))
    res = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if check and res.returncode != 0:
        raise LabError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr.strip()}")
    return res


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, nspawn): run as root")
    for tool in ("debootstrap", "systemd-nspawn", "apt-cacher-ng", "ip", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: run scripts/setup (installs the lab's Debian packages)")


# --- template ---------------------------------------------------------------------


def template_dir() -> Path:
    return CACHE_DIR / f"template-{TEMPLATE_VERSION}"


def build_template(force: bool = False) -> Path:
    """Debootstrap a Debian 12 rootfs once; later calls reuse it. Kill-safe (tmp + rename)."""
    final = template_dir()
    if (final / ".lpse-lab-complete").exists() and not force:
        return final
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = CACHE_DIR / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    log.info("building the Debian 12 template rootfs (once, about a minute)…")
    t0 = time.monotonic()
    run(["debootstrap", "--variant=minbase", f"--include={TEMPLATE_PACKAGES}", "bookworm", str(tmp), DEBIAN_MIRROR])
    (tmp / "etc/apt/sources.list").write_text(HOST_SOURCES)
    # Per-host identity is made at host creation; the template must carry none.
    for key in (tmp / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (tmp / "etc/machine-id").write_text("")
    run(["chroot", str(tmp), "apt-get", "clean"])
    (tmp / ".lpse-lab-complete").write_text(TEMPLATE_VERSION + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    log.info("template ready in %.0f s: %s", time.monotonic() - t0, final)
    return final


# --- lab keys ---------------------------------------------------------------------


def lab_key() -> Path:
    key = STATE_DIR / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lpse-lab", "-f", str(key)])
    return key


def known_hosts() -> Path:
    return STATE_DIR / "ssh" / "known_hosts"


def ssh_command(address: str, command: str = "true", user: str = "lpseops", options: tuple[str, ...] = ()) -> list[str]:
    """ssh to a lab host with the lab key, checking its recorded host key."""
    return [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", f"UserKnownHostsFile={known_hosts()}",
        "-o", "StrictHostKeyChecking=yes", "-i", str(lab_key()), "-o", "IdentitiesOnly=yes", *options,
        f"{user}@{address}", command,
    ]  # fmt: skip


def ssh(
    address: str, command: str = "true", user: str = "lpseops", options: tuple[str, ...] = (), timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command on a lab host."""
    return subprocess.run(ssh_command(address, command, user, options), capture_output=True, text=True, timeout=timeout)


# --- network ----------------------------------------------------------------------


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    return run(cmd, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


# The gateway's own MAC address, set once: a bridge left to itself takes the lowest MAC of its
# ports, so powering a host off or on (its veth leaving or joining) could change the gateway's
# MAC under every other host, whose ARP entry then points nowhere for up to a minute (seen: the
# monitoring server could not reach the mail relay for 60 s after the SPSE host went off).
BRIDGE_MAC = "02:4c:50:53:45:01"


def ensure_bridge(cfg: LabConfig) -> None:
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    # Read through ip, which asks this process's network namespace (a box has its own bridge).
    if BRIDGE_MAC not in run(["ip", "-br", "link", "show", "dev", BRIDGE]).stdout:
        run(["ip", "link", "set", BRIDGE, "address", BRIDGE_MAC])
    addrs = run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if str(cfg.bridge_address) not in addrs:
        run(["ip", "addr", "add", str(cfg.bridge_address), "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_netns(cfg: LabConfig, host: LabHost) -> None:
    if not netns_exists(host.netns):
        run(["ip", "netns", "add", host.netns])
    if not link_exists("host0", host.netns):
        if link_exists(host.veth):  # a peer left behind by a killed run
            run(["ip", "link", "del", host.veth])
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "host0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
    prefix = cfg.bridge_address.network.prefixlen
    addrs = run(["ip", "-n", host.netns, "-o", "-4", "addr", "show", "dev", "host0"]).stdout
    if f"{host.address}/{prefix}" not in addrs:
        run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/{prefix}", "dev", "host0"])
    run(["ip", "-n", host.netns, "link", "set", "host0", "up"])
    run(["ip", "-n", host.netns, "link", "set", "lo", "up"])


def remove_netns(host: LabHost) -> None:
    if netns_exists(host.netns):
        run(["ip", "netns", "del", host.netns])
    deadline = time.monotonic() + 10
    while link_exists(host.veth) and time.monotonic() < deadline:
        time.sleep(0.1)
    if link_exists(host.veth):
        run(["ip", "link", "del", host.veth], check=False)


# --- lab services on the gateway ------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (dead, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _spawn(base: Path, cmd: list[str], ready: Callable[[], bool], where: str, seconds: float) -> None:
    """Run `cmd` in the background (pid in base/pid, output in base/out.log) and wait until
    `ready()`; a service that exits or is not ready in time is an error naming its log."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=(base / "out.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (base / "pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise LabError(f"{Path(cmd[0]).name} did not start on {where}: see {base / 'out.log'}")
        time.sleep(0.2)


def start_service(base: Path, cmd: list[str], address: str, port: int) -> None:
    """Start a lab service in the background unless it already runs; wait until it listens on
    address:port."""
    if read_pid(base / "pid") and port_open(address, port):
        return
    stop_service(base)
    _spawn(base, cmd, lambda: port_open(address, port), f"{address}:{port}", 15)


def stop_service(base: Path) -> None:
    pid = read_pid(base / "pid")
    if pid:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid, 10)
    (base / "pid").unlink(missing_ok=True)


APT_PROXY_DIR = STATE_DIR / "apt-cacher-ng"
# A second lab (`lpse-lab box`) has no way out of its own network namespace: its hosts' apt
# proxy is a relay to this Unix socket, behind which the first lab's proxy serves both.
APT_UPLINK_ENV = "LPSE_LAB_APT_UPLINK"


def ensure_apt_proxy(cfg: LabConfig) -> None:
    base = APT_PROXY_DIR
    if read_pid(base / "pid") and port_open(cfg.gateway, cfg.apt_proxy_port):
        return
    base.mkdir(parents=True, exist_ok=True)
    uplink = os.environ.get(APT_UPLINK_ENV)
    if uplink:
        listen = f"TCP-LISTEN:{cfg.apt_proxy_port},bind={cfg.gateway},fork,reuseaddr"
        start_service(base, ["socat", listen, f"UNIX-CONNECT:{uplink}"], cfg.gateway, cfg.apt_proxy_port)
        return
    conf = base / "conf"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree("/etc/apt-cacher-ng", conf)
    # The stock remap list is empty here; point the Debian backend at the machine's mirror.
    (conf / "backends_debian").write_text(DEBIAN_MIRROR + "/\n")
    cache = CACHE_DIR / "apt-cacher-ng"
    logs = base / "log"
    for d in (cache, logs):
        d.mkdir(parents=True, exist_ok=True)
    start_service(
        base,
        [
            "apt-cacher-ng",
            "-c",
            str(conf),
            "ForeGround=1",
            f"CacheDir={cache}",
            f"LogDir={logs}",
            f"Port={cfg.apt_proxy_port}",
            f"BindAddress={cfg.gateway}",
            f"PidFile={base / 'acng.pid'}",
            # Index files stay fresh for a whole test run and are fetched once, by warm_apt_proxy,
            # before any host asks: several hosts fetching or revalidating the same index at once
            # were seen to get a cut transfer, which hangs apt-get for good. (Passing them through
            # uncached with DontCache sends the Host header twice: strict mirrors answer 400.)
            "FreshIndexMaxAge=14400",
        ],
        cfg.gateway,
        cfg.apt_proxy_port,
    )

    warm_apt_proxy(cfg)


def warm_apt_proxy(cfg: LabConfig) -> None:
    """Fetch the hosts' index files through the proxy once, from the gateway, so that the hosts'
    concurrent `apt-get update` are all served from the cache."""
    base = APT_PROXY_DIR / "warm"
    (base / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (base / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (base / "sources.list").write_text(HOST_SOURCES)
    opts = {
        "Dir::Etc::SourceList": base / "sources.list",
        "Dir::Etc::SourceParts": base / "none",
        "Dir::State::Lists": base / "lists",
        "Dir::Cache": base / "cache",
        "Acquire::http::Proxy": f"http://{cfg.gateway}:{cfg.apt_proxy_port}",
        "Acquire::http::Timeout": 60,
        "Acquire::Retries": 3,
        "Debug::NoLocking": 1,
    }
    argv = ["apt-get", "-q", "update"] + [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise LabError(f"the lab's apt proxy could not fetch Debian's index files: {res.stderr.strip()[-500:]}")


ONCALL_DIR = STATE_DIR / "oncall"


def ensure_oncall(settings: RelaySettings) -> None:
    """The SMTP relay and Telegram stand-in the lab's Alertmanager notifies (lpse_lab.oncall)."""
    ONCALL_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.save(ONCALL_DIR / "relay.json")
    cmd = [sys.executable, "-m", "lpse_lab.oncall", "serve", "--state", str(ONCALL_DIR)]
    start_service(ONCALL_DIR, cmd, settings.address, settings.smtp_port)
    if not wait_port(settings.address, settings.https_port, 10):
        raise LabError(f"the Telegram stand-in did not start: see {ONCALL_DIR / 'out.log'}")


# --- hosts ------------------------------------------------------------------------


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if port == 22:  # a listening socket is not enough: wait for sshd's banner
                s.settimeout(2)
                return s.recv(4).startswith(b"SSH")
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.2)
    return False


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def is_mounted(path: Path) -> bool:
    """A mount point in the mount table (os.path.ismount misses a bind mount within one filesystem)."""
    target = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4].encode().decode("unicode_escape") == target:
            return True
    return False


def nspawn_pids(host: LabHost) -> list[int]:
    """nspawn processes for this host, found by command line (survives a lost pid file). By its
    root folder, which is under this lab's state folder: a second lab (`lpse-lab box`) has hosts
    of the same machine names, and from here its processes are visible too (finding them by
    name, a power cut of this lab's SPSE host also shut down the second lab's)."""
    want = f"--directory={host.root}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if argv[0].endswith(b"systemd-nspawn") and want in argv:
            pids.append(int(proc.name))
    return pids


def host_running(host: LabHost) -> bool:
    return bool(nspawn_pids(host))


def init_host_root(cfg: LabConfig, host: LabHost) -> None:
    """Give a fresh host its identity: name, hosts file, machine-id, SSH host key, lab key."""
    root = host.root
    stamp = host.dir / "initialised"
    if stamp.exists():
        return
    (root / "etc/hostname").write_text(f"{host.name}\n")
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{h.address} {h.name}" for h in cfg.hosts]
    lines.append(f"{cfg.gateway} lab-gateway")
    (root / "etc/hosts").write_text("\n".join(lines) + "\n")
    # No nameserver: every lookup is answered from /etc/hosts instead of hanging.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("# lpse lab: no DNS, names come from /etc/hosts\n")
    (root / "etc/machine-id").write_text(os.urandom(16).hex() + "\n")
    (root / "etc/apt/apt.conf.d/01lpse-proxy").write_text(
        f'Acquire::http::Proxy "http://{cfg.gateway}:{cfg.apt_proxy_port}";\n'
    )
    # Bounded waits: an apt run through the proxy was once seen to hang forever after the
    # proxy closed a pipelined connection; no pipelining, and time out and retry instead.
    (root / "etc/apt/apt.conf.d/02lpse-lab-network").write_text(
        'Acquire::http::Pipeline-Depth "0";\nAcquire::http::Timeout "30";\nAcquire::Retries "3";\n'
    )
    hostkey = root / "etc/ssh/ssh_host_ed25519_key"
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(hostkey)])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(lab_key().with_suffix(".pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    record_host_key(host, hostkey.with_suffix(".pub").read_text().split()[:2])
    stamp.write_text("")


def record_host_key(host: LabHost, key: list[str]) -> None:
    kh = known_hosts()
    entries = [
        line
        for line in (kh.read_text().splitlines() if kh.exists() else [])
        if line.split(" ", 1)[0] not in (host.address, host.name, f"{host.name},{host.address}")
    ]
    entries.append(f"{host.name},{host.address} {key[0]} {key[1]}")
    tmp = kh.with_suffix(".tmp")
    tmp.write_text("\n".join(entries) + "\n")
    tmp.replace(kh)


def mount_host(host: LabHost) -> None:
    for d in ("upper", "work", "merged"):
        (host.dir / d).mkdir(parents=True, exist_ok=True)
    if not is_mounted(host.root):
        # A host made from a snapshot (`box --from`) has the snapshot's layer between its own and
        # the template's, read-only and shared by every lab made from it.
        base = host.dir / SNAPSHOT_LAYER
        lower = f"{base.read_text().strip()}:{template_dir()}" if base.exists() else str(template_dir())
        # redirect_dir: a folder of a lower layer can be renamed (otherwise EXDEV), as on a real
        # disk; a restore moves PostgreSQL's data directory aside that way.
        opts = f"lowerdir={lower},upperdir={host.dir / 'upper'},workdir={host.dir / 'work'},redirect_dir=on"
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(host.root)])


def disk_mount(host: LabHost, disk: LabDisk) -> Path:
    return host.dir / "disks" / disk.label


def mount_disks(host: LabHost) -> list[str]:
    """Create (once) and loop-mount each disk image of the host; nspawn --bind options."""
    binds = []
    for disk in host.disks:
        image = host.dir / "disks" / f"{disk.label}.img"
        mnt = disk_mount(host, disk)
        mnt.mkdir(parents=True, exist_ok=True)
        if not image.exists():
            tmp = image.with_suffix(".tmp")
            run(["truncate", "-s", f"{disk.size_mb}M", str(tmp)])
            run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", disk.label, str(tmp)])
            tmp.replace(image)
        if not is_mounted(mnt):
            run(["mount", "-o", "loop", str(image), str(mnt)])
        binds.append(f"--bind={mnt}:{disk.mountpoint}")
    return binds


def unmount_disks(host: LabHost) -> None:
    for disk in host.disks:
        if is_mounted(disk_mount(host, disk)):
            run(["umount", str(disk_mount(host, disk))])


# --- portable drives: labelled ext4 images plugged into a host's USB port ---------------

DRIVES_DIR = STATE_DIR / "drives"


def usb_port(host: LabHost) -> Path:
    return host.dir / "usb"


def mount_usb_port(host: LabHost) -> list[str]:
    """The USB port is a shared mount on this machine, bound into the host: a drive mounted
    below it here later shows up inside the running host (mount propagation)."""
    if not host.usb:
        return []
    port = usb_port(host)
    port.mkdir(parents=True, exist_ok=True)
    if not is_mounted(port):
        run(["mount", "--bind", str(port), str(port)])
        run(["mount", "--make-shared", str(port)])
    return [f"--bind={port}:{host.usb}"]


def ups_cable(host: LabHost) -> list[str]:
    """The simulated UPS's data file, in a directory of this machine bound into the host; it
    starts on mains, as a UPS plugged in before the server was."""
    if not host.ups:
        return []
    cable = host.dir / "ups"
    cable.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not (cable / ups.DEVICE_FILE).exists():
        ups.write_device(cable / ups.DEVICE_FILE, ups.ON_MAINS)
    return [f"--bind-ro={cable}:{host.ups}"]


def set_ups(host: LabHost, state: str) -> None:
    """What the host's simulated UPS reports from now on: one of lpse_lab.ups.STATES."""
    if not host.ups:
        raise LabError(f"lab host {host.name} has no UPS (lab_ups in inventories/lab/hosts.yml)")
    if state not in ups.STATES:
        raise LabError(f"no UPS state {state!r}: one of {', '.join(ups.STATES)}")
    (host.dir / "ups").mkdir(mode=0o755, parents=True, exist_ok=True)
    ups.write_device(host.dir / "ups" / ups.DEVICE_FILE, ups.STATES[state])


def drive_image(label: str) -> Path:
    return DRIVES_DIR / f"{label}.img"


def make_drive(label: str, size_mb: int, allocated: bool = False) -> Path:
    """A labelled ext4 drive, made once; what `lpse-backup prepare-drive` does to a real one.
    A sparse image unless `allocated`: a sparse one takes blocks from this machine's disk on
    first write, which slows whichever copy writes first (benchmarks compare copies)."""
    image = drive_image(label)
    if not image.exists():
        DRIVES_DIR.mkdir(parents=True, exist_ok=True)
        tmp = image.with_suffix(".tmp")
        run(["fallocate" if allocated else "truncate", "-l" if allocated else "-s", f"{size_mb}M", str(tmp)])
        run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", label, str(tmp)])
        tmp.replace(image)
    return image


def plugged(host: LabHost) -> dict[str, str]:
    """Drive label by its mount point (inside the host) for the drives plugged into `host`."""
    port = usb_port(host)
    out = {}
    for line in run(["findmnt", "-rn", "-o", "TARGET,SOURCE"]).stdout.splitlines():
        target, _, source = line.partition(" ")
        if target.startswith(f"{port}/"):
            back = Path(run(["losetup", "-n", "-O", "BACK-FILE", source], check=False).stdout.strip())
            out[host.usb + target[len(str(port)) :]] = back.parent.stem if back.name == faultydrive.NAME else back.stem
    return out


def _device_dir(image: Path) -> Path:
    """Where the drive's device (lpse_lab.faultydrive) serves the image as one file."""
    return image.with_name(image.stem + ".device")


def _loop_holds(path: Path) -> bool:
    return bool(run(["losetup", "-n", "-O", "NAME", "-j", str(path)], check=False).stdout.strip())


def _release_device(image: Path, wait_s: float) -> bool:
    """Stop the device of a pulled drive once nothing holds it any more (a job still writing to
    the pulled filesystem keeps it); True when it is gone."""
    dev = _device_dir(image)
    deadline = time.monotonic() + wait_s
    while is_mounted(dev):
        if not _loop_holds(dev / faultydrive.NAME):
            run(["umount", str(dev)], check=False)
            if not is_mounted(dev):
                break
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    faultydrive.pulled_flag(image).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        dev.rmdir()
    return True


def plug(host: LabHost, image: Path, name: str) -> str:
    """Plug a drive image in: its device (lpse_lab.faultydrive, so that a pull can make it fail)
    loop-mounted at <usb>/<name> inside `host`; returns that path."""
    if not host.usb:
        raise LabError(f"lab host {host.name} has no USB port (lab_usb in inventories/lab/hosts.yml)")
    mnt = usb_port(host) / name
    if is_mounted(mnt):
        raise LabError(f"a drive is already plugged in at {host.usb}/{name} on {host.name}: unplug it first")
    if not _release_device(image, 60):
        raise LabError(f"drive {image.stem} was pulled while in use and something still holds it: end that first")
    dev = _device_dir(image)
    dev.mkdir(exist_ok=True)
    log_path = image.parent / f"{image.stem}.device.log"
    with log_path.open("ab") as log_file:  # the device keeps its own copy of the descriptor
        subprocess.Popen(
            [sys.executable, "-m", "lpse_lab.faultydrive", str(image), str(dev)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `lpse-lab drive plug`
        )
    deadline = time.monotonic() + 10
    while not (dev / faultydrive.NAME).exists():
        if time.monotonic() > deadline:
            raise LabError(f"the device of drive {image.stem} did not start: see {log_path}")
        time.sleep(0.1)
    mnt.mkdir(parents=True, exist_ok=True)
    run(["mount", "-o", "loop", str(dev / faultydrive.NAME), str(mnt)])
    return f"{host.usb}/{name}"


def drive_speed(image: Path, kib_s: float | None) -> None:
    """Make a drive write at `kib_s` KiB/s (None: as fast as this machine's disk)."""
    rate = faultydrive.rate_file(image)
    if kib_s is None:
        rate.unlink(missing_ok=True)
    else:
        rate.write_text(f"{kib_s}\n")


def unplug(host: LabHost, name: str) -> None:
    """Pull the drive at <usb>/<name> out: its device fails at once (a copy under way gets EIO,
    as from a vanished disk), then the mount goes, the way an automounter drops it. A job that
    still has files open keeps the failing filesystem until it lets go."""
    mnt = usb_port(host) / name
    if not is_mounted(mnt):
        return
    label = plugged(host).get(f"{host.usb}/{name}", "")
    image = drive_image(label) if label else None
    if image is not None and is_mounted(_device_dir(image)):
        faultydrive.pulled_flag(image).touch()
    run(["umount", "--lazy", str(mnt)])
    if image is not None:
        _release_device(image, 5)


def unmount_usb_port(host: LabHost) -> None:
    port = usb_port(host)
    for target in plugged(host):
        unplug(host, Path(target).name)
    for dev in DRIVES_DIR.glob("*.device") if DRIVES_DIR.is_dir() else ():
        _release_device(DRIVES_DIR / f"{dev.stem}.img", 30)
    for _ in range(8):  # the shared bind may be stacked (propagated back from the host's mount)
        if not is_mounted(port):
            break
        run(["umount", str(port)])


# Hierarchies that systemd inside a host writes to. Without a cgroup of its own per host,
# every host's systemd shares /system.slice/<unit> and they remove each other's cgroups
# (seen as "status=219/CGROUP" on a reload).
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


def host_cgroups(host: LabHost) -> list[Path]:
    # Named after the state folder: a second lab (`lpse-lab box`) has hosts of the same names.
    return [h / STATE_DIR.name / host.name for h in CGROUP_HIERARCHIES if (h / "cgroup.procs").exists()]


def enter_cgroups(cgroups: list[Path]) -> None:
    """Runs in the child before exec: nspawn then takes this cgroup as the host's root."""
    for cg in cgroups:
        (cg / "cgroup.procs").write_text(f"{os.getpid()}\n")


def cgroup_pids(host: LabHost) -> set[int]:
    """Every process in the host's cgroups. The host's systemd may remove a group while this walks
    the tree (a unit that just stopped): a group gone meanwhile holds no process."""
    pids: set[int] = set()
    for cg in host_cgroups(host):
        for folder, _, files in os.walk(cg):  # os.walk skips what vanished; rglob raises
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):  # ENOENT or ENODEV: removed meanwhile
                    pids.update(int(p) for p in (Path(folder) / "cgroup.procs").read_text().split())
    return pids


def remove_cgroups(host: LabHost) -> None:
    # Processes of a host whose nspawn was SIGKILLed can outlive it; nothing of theirs may stay.
    for pid in cgroup_pids(host):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while cgroup_pids(host) and time.monotonic() < deadline:
        time.sleep(0.1)
    for cg in host_cgroups(host):
        if cg.exists():
            for sub in sorted((d for d in cg.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
                sub.rmdir()
            cg.rmdir()


def start_host(cfg: LabConfig, host: LabHost) -> None:
    # A running host is left alone, even when its sshd is slow to answer (a busy machine): `up`
    # waits for it. Only one whose nspawn is gone is cleared and started again.
    if host_running(host):
        return
    stop_host(host)  # leftovers of a killed run: half-started nspawn, mount, netns
    ensure_netns(cfg, host)
    mount_host(host)
    binds = mount_disks(host) + mount_usb_port(host) + ups_cable(host)
    init_host_root(cfg, host)
    console = (host.dir / "console.log").open("ab")
    cgroups = host_cgroups(host)
    for cg in cgroups:
        cg.mkdir(parents=True, exist_ok=True)
    subprocess.Popen(
        [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            f"--directory={host.root}",
            f"--machine={host.netns}",
            f"--hostname={host.name}",
            "--register=no",
            "--keep-unit",
            "--resolv-conf=off",
            "--link-journal=no",
            "--console=read-only",
            "--timezone=off",
            # nftables inside the host's own network namespace needs CAP_NET_ADMIN.
            "--capability=CAP_NET_ADMIN",
            f"--network-namespace-path=/run/netns/{host.netns}",
            *binds,
        ],
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: enter_cgroups(cgroups),
    )


def stop_host(host: LabHost, power_cut: bool = False) -> None:
    """Clean poweroff (SIGTERM to nspawn), then unmount and remove the namespace. `power_cut`:
    the plug pulled instead, every process of the host killed at once, nothing shut down."""
    if power_cut:
        remove_cgroups(host)
    pids = nspawn_pids(host)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        if not wait_gone(pid, 20):
            log.warning("%s did not power off in 20 s: killing it", host.name)
            os.killpg(pid, signal.SIGKILL)
            wait_gone(pid, 5)
    remove_cgroups(host)
    if is_mounted(host.root):
        run(["umount", str(host.root)])
    unmount_disks(host)
    unmount_usb_port(host)
    remove_netns(host)


# --- commands ---------------------------------------------------------------------


def up(cfg: LabConfig) -> None:
    require_root()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    build_template()
    lab_key()
    ensure_bridge(cfg)
    ensure_apt_proxy(cfg)
    for host in cfg.hosts:
        start_host(cfg, host)
    for host in cfg.hosts:
        if not wait_port(host.address, 22, 60):
            raise LabError(
                f"lab host {host.name} ({host.address}) did not start sshd in 60 s: see {host.dir / 'console.log'}"
            )


def down(cfg: LabConfig) -> None:
    require_root()
    # Every host is told to power off first: they shut down side by side, not one after another.
    for host in cfg.hosts:
        for pid in nspawn_pids(host):
            os.kill(pid, signal.SIGTERM)
    for host in cfg.hosts:
        stop_host(host)
    stop_service(ONCALL_DIR)
    stop_service(APT_PROXY_DIR)
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])


def rebuild(cfg: LabConfig, host: LabHost) -> None:
    """Replace one host by a fresh one (same name and address, empty disks): the new server an
    LPSE gets after losing the old one. Drives plugged into it stay plugged in."""
    require_root()
    drives = plugged(host) if host.usb else {}
    stop_host(host)
    if host.dir.exists():
        shutil.rmtree(host.dir)
    start_host(cfg, host)
    for where, label in drives.items():
        plug(host, drive_image(label), Path(where).name)
    if not wait_port(host.address, 22, 60):
        raise LabError(f"the rebuilt {host.name} did not start sshd in 60 s: see {host.dir / 'console.log'}")


def destroy(cfg: LabConfig) -> None:
    """down, then forget every host's disk and the portable drives (the cached template and
    apt cache stay)."""
    down(cfg)
    for host in cfg.hosts:
        if host.dir.exists():
            shutil.rmtree(host.dir)
    if DRIVES_DIR.exists():
        shutil.rmtree(DRIVES_DIR)
    (STATE_DIR / MADE_FROM).unlink(missing_ok=True)
    kh = known_hosts()
    if kh.exists():
        kh.unlink()


# --- snapshots: more labs from one provisioning ----------------------------------------

# In a host's folder: the path of the snapshot layer its root is mounted over.
SNAPSHOT_LAYER = "snapshot-layer"
# What a snapshot carries besides the hosts: the lab key and host keys (the hosts keep theirs),
# the lab CA and certificates the hosts were given, the SPSE release they run.
SNAPSHOT_STATE = ("ssh", "pki", "artifacts")


def snapshot_dir() -> Path:
    return STATE_DIR.with_name(STATE_DIR.name + "-snapshot")


@contextlib.contextmanager
def frozen(cfg: LabConfig) -> Iterator[None]:
    """Every process of every host stopped at once (cgroup v2 freezer) and their disks' file
    systems flushed and held (fsfreeze): a copy taken meanwhile is what a power cut of the
    whole lab at that instant would leave, consistent across hosts."""
    groups = [Path("/sys/fs/cgroup/unified") / STATE_DIR.name / h.name for h in cfg.hosts]
    disks = [disk_mount(h, d) for h in cfg.hosts for d in h.disks]
    held: list[Path] = []
    try:
        for group in groups:
            (group / "cgroup.freeze").write_text("1\n")
        deadline = time.monotonic() + 30
        while not all("frozen 1" in (g / "cgroup.events").read_text() for g in groups):
            if time.monotonic() > deadline:
                raise LabError("the lab hosts did not freeze in 30 s (a process stuck in the kernel?)")
            time.sleep(0.05)
        for mnt in disks:
            run(["fsfreeze", "--freeze", str(mnt)])
            held.append(mnt)
        yield
    finally:
        for mnt in held:
            run(["fsfreeze", "--unfreeze", str(mnt)], check=False)
        for group in groups:
            with contextlib.suppress(OSError):
                (group / "cgroup.freeze").write_text("0\n")


def snapshot(cfg: LabConfig, dest: Path) -> float:
    """Copy the running, provisioned lab into `dest` (replaced): each host's own layer, disks and
    UPS cable, with SNAPSHOT_STATE; the hosts are frozen for the copy and go on afterwards.
    Plugged drives and the off-room bucket (radosgw keeps it in RAM) are not part of it: a lab
    made from the snapshot starts with no drive in and an empty bucket, which site.yml makes
    again. Returns the seconds the hosts were frozen."""
    require_root()
    for host in cfg.hosts:
        if not host_running(host):
            raise LabError(f"lab host {host.name} is not running: a snapshot is taken of a running lab (lpse-lab up)")
        if host.usb and plugged(host):
            raise LabError(f"a drive is plugged into {host.name}: unplug it before a snapshot (drives are not copied)")
    tmp = dest.with_name(dest.name + ".tmp")
    for old in (tmp, dest):
        if old.exists():
            shutil.rmtree(old)
    tmp.mkdir(parents=True)
    for name in SNAPSHOT_STATE:
        if (STATE_DIR / name).exists():
            shutil.copytree(STATE_DIR / name, tmp / name, symlinks=True)
    t0 = time.monotonic()
    with frozen(cfg):
        for host in cfg.hosts:
            into = tmp / "hosts" / host.name
            into.mkdir(parents=True)
            # cp -a keeps what overlayfs marks in its upper layer (whiteouts, opaque folders).
            run(["cp", "-a", str(host.dir / "upper"), str(into / "upper")])
            for disk in host.disks:
                (into / "disks").mkdir(exist_ok=True)
                image = host.dir / "disks" / f"{disk.label}.img"
                run(["cp", "--sparse=always", str(image), str(into / "disks" / image.name)])
            for name in ("ups", "initialised"):
                if (host.dir / name).exists():
                    run(["cp", "-a", str(host.dir / name), str(into / name)])
        took = time.monotonic() - t0
    tmp.rename(dest)
    return took


# In a lab's state folder: the snapshot its hosts were made from (`box --from`).
MADE_FROM = "made-from-snapshot"


def made_from_snapshot() -> bool:
    """Whether this lab's hosts were made from a snapshot of a provisioned lab."""
    return (STATE_DIR / MADE_FROM).exists()


def from_snapshot(snap: Path, state: Path) -> None:
    """Make the hosts of the lab in `state` (none running) from the snapshot `snap`: each host's
    root is the snapshot's layer under a fresh layer of its own; disks and state are copied."""
    if not (snap / "hosts").is_dir():
        raise LabError(f"no lab snapshot in {snap}: take one with `lpse-lab snapshot` on a provisioned lab")
    (state / MADE_FROM).unlink(missing_ok=True)
    for name in (*SNAPSHOT_STATE, "hosts", DRIVES_DIR.name):
        if (state / name).exists():
            shutil.rmtree(state / name)
    for name in SNAPSHOT_STATE:
        if (snap / name).exists():
            shutil.copytree(snap / name, state / name, symlinks=True)
    for src in (snap / "hosts").iterdir():
        into = state / "hosts" / src.name
        into.mkdir(parents=True)
        (into / SNAPSHOT_LAYER).write_text(f"{src / 'upper'}\n")
        for name in ("disks", "ups", "initialised"):
            if (src / name).exists():
                run(["cp", "-a", "--sparse=always", str(src / name), str(into / name)])
    (state / MADE_FROM).write_text(f"{snap}\n")


# What a second lab's box gives its own copy of: the named network namespaces, and nspawn's
# per-machine state (the hosts have the same names in both labs).
BOX_PRIVATE_RUN = ("/run/netns", "/run/systemd/nspawn")


def box_dir() -> Path:
    """Where a second lab started from this one keeps its state."""
    return STATE_DIR.with_name(STATE_DIR.name + "-2")


# Inside the box: the local port of the controller's HTTPS proxy to PyPI (lpse_lab.uplink), which
# the lab inventory hands to the wheel builds (python_package_build_environment).
BOX_PIP_PROXY_PORT = 3128


def _start_socket_service(base: Path, cmd: list[str], sock: Path) -> None:
    """A lab service on this machine that listens on the Unix socket `sock` (started afresh)."""
    base.mkdir(parents=True, exist_ok=True)
    stop_service(base)
    sock.unlink(missing_ok=True)
    _spawn(base, cmd, sock.exists, str(sock), 10)


def box(cfg: LabConfig, state: Path, vault_password: Path, argv: list[str], snapshot: Path | None = None) -> int:
    """Run `argv` with a second lab of its own: the same hosts, names and addresses, inside their
    own network, mount and process namespaces, with state in `state`; the two labs run side by
    side without seeing each other. Two Unix sockets are its only ways out: its hosts' apt proxy
    relays to this lab's (started here if it is not running), and its controller reaches PyPI
    through an HTTPS proxy (lpse_lab.uplink) to build the wheels. It uses this lab's vault.
    With `snapshot`, its hosts are made from that snapshot of a lab (see `snapshot`) instead of
    the ones it had. Everything of the second lab (hosts, mounts, namespaces, processes) ends
    when `argv` does."""
    require_root()
    build_template()
    ensure_bridge(cfg)
    ensure_apt_proxy(cfg)
    state.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        from_snapshot(snapshot, state)
    shutil.copy2(vault_password, state / vault_password.name)
    apt, pip = state / "apt-uplink", state / "pip-uplink"
    try:
        _start_socket_service(
            apt,
            ["socat", f"UNIX-LISTEN:{apt / 'apt.sock'},fork,mode=600", f"TCP:{cfg.gateway}:{cfg.apt_proxy_port}"],
            apt / "apt.sock",
        )
        _start_socket_service(pip, [sys.executable, "-m", "lpse_lab.uplink", str(pip / "pip.sock")], pip / "pip.sock")
        listen = f"TCP-LISTEN:{BOX_PIP_PROXY_PORT},bind=127.0.0.1,fork,reuseaddr"
        inside = " && ".join(
            [f"mkdir -p {d} && mount -t tmpfs lpse-lab-box {d}" for d in BOX_PRIVATE_RUN]
            + [
                # The box starts with a copy of this machine's mounts, the first lab's among them
                # (host roots, disks, plugged drives): its copy would keep their loop devices busy.
                f"{{ findmnt -rn -o TARGET | grep '^{STATE_DIR}/' | sort -r | xargs -r -n1 umount -l || true; }}",
                "ip link set lo up",
                f"{{ socat {listen} UNIX-CONNECT:{pip / 'pip.sock'} & }}",
            ]
        )
        env = os.environ | {
            "LPSE_LAB_DIR": str(state),
            APT_UPLINK_ENV: str(apt / "apt.sock"),
            "LPSE_LAB_PIP_PROXY": f"http://127.0.0.1:{BOX_PIP_PROXY_PORT}",
        }
        unshare = ["unshare", "--mount", "--propagation=private", "--net", "--pid", "--fork", "--mount-proc"]
        # The second lab's hosts are shut down cleanly when the command ends, however it ends.
        down = shlex.join([sys.executable, "-m", "lpse_lab.cli", "down"])
        script = f'{inside} || exit 125; "$@"; rc=$?; {down} >/dev/null 2>&1; exit $rc'
        return subprocess.run([*unshare, "--kill-child", "sh", "-c", script, "lpse-lab-box", *argv], env=env).returncode
    finally:
        for base, sock in ((apt, apt / "apt.sock"), (pip, pip / "pip.sock")):
            stop_service(base)
            sock.unlink(missing_ok=True)


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    running: bool
    ssh: bool


def status(cfg: LabConfig) -> list[HostStatus]:
    return [HostStatus(h.name, h.address, host_running(h), port_open(h.address, 22)) for h in cfg.hosts]
