"""Interface traffic (/proc/net/dev), link state and speed, contracted uplink bandwidth (R7, R8).

Link state comes from the kernel for this process's network namespace (SIOCGIFFLAGS), not
from /sys, which in a container can show another namespace's interfaces.

Only the interfaces that matter are reported: a container runtime adds a veth per container and
a bridge per network, each worth nine series, none of them the LPSE's link. Interfaces with a
contracted bandwidth (the uplinks) are always kept.
"""

from __future__ import annotations

import fcntl
import fnmatch
import socket
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lpse_exporter.collectors.base import read_text

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40  # carrier present: a cable pulled or a peer down clears it

# /proc/net/dev columns (after the name) -> (metric, help)
RX = {
    0: ("receive_bytes", "Bytes received"),
    1: ("receive_packets", "Packets received"),
    2: ("receive_errors", "Receive errors"),
    3: ("receive_drop", "Received packets dropped"),
}
TX = {
    8: ("transmit_bytes", "Bytes sent"),
    9: ("transmit_packets", "Packets sent"),
    10: ("transmit_errors", "Transmit errors"),
    11: ("transmit_drop", "Sent packets dropped"),
}


# Virtual interfaces of the host itself, of containers and of VMs: dropped unless configured.
VIRTUAL_INTERFACES = ("lo", "veth*", "docker*", "br-*", "virbr*", "vnet*", "cni*", "flannel*", "cali*", "kube-*")


def parse_net_dev(text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        out[name.strip()] = [int(x) for x in rest.split()]
    return out


def kernel_link_flags(interface: str) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return int(struct.unpack("16sH", res[:18])[1])


class NetworkSource:
    name = "network"

    def __init__(
        self,
        root: Path = Path("/"),
        contracted_bps: Mapping[str, float] | None = None,
        link_flags: Callable[[str], int | None] = kernel_link_flags,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = VIRTUAL_INTERFACES,
    ) -> None:
        self.root = root
        self.contracted = dict(contracted_bps or {})  # interface -> bits per second bought
        self.link_flags = link_flags
        self.include, self.exclude = tuple(include), tuple(exclude)

    def reported(self, interface: str) -> bool:
        if interface in self.contracted:
            return True

        def matches(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(interface, p) for p in patterns)

        return matches(self.include) and not matches(self.exclude)

    def speed_bytes(self, interface: str) -> float | None:
        """Link speed from /sys, only when /sys really describes this interface (same ifindex)."""
        base = self.root / "sys/class/net" / interface
        try:
            if self.root == Path("/") and int(read_text(base / "ifindex")) != socket.if_nametoindex(interface):
                return None
            mbps = int(read_text(base / "speed"))
        except (OSError, ValueError):
            return None
        return mbps * 125_000.0 if mbps > 0 else None

    def read(self) -> Iterable[Metric]:
        stats = {k: v for k, v in parse_net_dev(read_text(self.root / "proc/net/dev")).items() if self.reported(k)}
        lab = ["interface"]
        for columns in (RX, TX):
            for idx, (suffix, help_) in columns.items():
                c = CounterMetricFamily(f"lpse_network_{suffix}", help_, labels=lab)
                for iface, values in stats.items():
                    c.add_metric([iface], values[idx])
                yield c
        up = GaugeMetricFamily("lpse_network_up", "1 if the interface is up with carrier", labels=lab)
        speed = GaugeMetricFamily("lpse_network_speed_bytes", "Link speed in bytes per second", labels=lab)
        for iface in stats:
            flags = self.link_flags(iface)
            if flags is not None:
                up.add_metric([iface], 1.0 if flags & IFF_UP and flags & IFF_RUNNING else 0.0)
            bps = self.speed_bytes(iface)
            if bps is not None:
                speed.add_metric([iface], bps)
        yield up
        yield speed
        contracted = GaugeMetricFamily(
            "lpse_network_contracted_bandwidth_bytes",
            "Internet bandwidth the LPSE pays for on this uplink, bytes per second",
            labels=lab,
        )
        for iface, bits in self.contracted.items():
            contracted.add_metric([iface], bits / 8)
        yield contracted
