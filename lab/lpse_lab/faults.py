"""Faults the lab can inflict on the SPSE host, and how long the on-call rota waits to hear of it.

Each fault is undone the way an operator would undo it. `measure` times fault -> firing
e-mail and undo -> resolved e-mail at the lab relay (lpse_lab.oncall). Used by
tests/lab/test_alerting.py and benchmarks/alert_latency.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lpse_lab import lab, oncall

DOCUMENTS = "/var/lib/spse/documents"
FILLER = f"{DOCUMENTS}/.lab-disk-filler"


def _sudo(host: lab.LabHost, command: str) -> None:
    lab.ssh(host.address, f"sudo sh -c '{command}'", timeout=60)


@dataclass(frozen=True)
class Fault:
    name: str
    alertname: str
    inject: Callable[[lab.LabHost], None]
    undo: Callable[[lab.LabHost], None]
    # The host the alert names, when not the one at fault: the monitoring server for what only
    # it can see (the SPSE server cut off cannot report).
    seen_from: str = ""


def _fill_documents(host: lab.LabHost) -> None:
    # Leave 2% free: past the 5% critical threshold, as a flood of uploads would.
    _sudo(
        host,
        f"set -e; avail=$(df --output=avail -B1 {DOCUMENTS} | tail -1); "
        f"size=$(df --output=size -B1 {DOCUMENTS} | tail -1); "
        f"fallocate -l $((avail - size / 50)) {FILLER}",
    )


def _cut_uplink(host: lab.LabHost) -> None:
    lab.run(["ip", "-n", host.netns, "link", "set", "host0", "down"])


def _restore_uplink(host: lab.LabHost) -> None:
    lab.run(["ip", "-n", host.netns, "link", "set", "host0", "up"])
    if not lab.wait_port(host.address, 22, 30):
        raise lab.LabError(f"{host.name} did not come back after its link was restored")


def _power_off(host: lab.LabHost) -> None:
    lab.stop_host(host, power_cut=True)


def _power_on(host: lab.LabHost) -> None:
    lab.start_host(lab.load_config(), host)
    if not lab.wait_port(host.address, 22, 120):
        raise lab.LabError(f"{host.name} did not boot within 120 s of being powered on again")


FAULTS: tuple[Fault, ...] = (
    # SIGKILL, then stop, so that systemd's restart does not hide the crash.
    Fault(
        "SPSE process killed",
        "SpseDown",
        lambda h: _sudo(h, "systemctl kill --signal=SIGKILL spse; systemctl stop spse"),
        lambda h: _sudo(h, "systemctl start spse"),
    ),
    Fault(
        "SPSE answers with its error page",
        "SpseDown",
        lambda h: _sudo(h, "touch /var/lib/spse/simulator-error"),
        lambda h: _sudo(h, "rm -f /var/lib/spse/simulator-error"),
    ),
    Fault("document store filled past 95%", "DiskCritical", _fill_documents, lambda h: _sudo(h, f"rm -f {FILLER}")),
    # Bidders see SPSE down; the server cannot say so: the monitoring server's probe pages.
    Fault("uplink cut", "SpseUnreachable", _cut_uplink, _restore_uplink, seen_from="monitor"),
    Fault("host powered off", "SpseUnreachable", _power_off, _power_on, seen_from="monitor"),
    Fault(
        "exporter stopped",
        "HostDown",
        lambda h: _sudo(h, "systemctl stop lpse-exporter"),
        lambda h: _sudo(h, "systemctl start lpse-exporter"),
    ),
)


@dataclass(frozen=True)
class Latency:
    fault: str
    alertname: str
    firing_s: float | None  # None: no e-mail within the time allowed
    resolved_s: float | None
    # Subjects of the other SPSE alert's firing mails meanwhile: one outage should page once.
    also_paged: tuple[str, ...] = ()


FIRING, RESOLVED = "MENYALA/FIRING", "PULIH/RESOLVED"
SPSE_ALERTS = ("SpseDown", "SpseUnreachable")


def _mail_for(alertname: str, instance: str, status: str) -> Callable[[oncall.Mail], bool]:
    tag = FIRING if status == "firing" else RESOLVED
    return lambda m: tag in m.subject and f" {alertname} {instance}" in m.subject


def measure(fault: Fault, host: lab.LabHost, timeout: float = 120.0) -> Latency:
    """Inject, wait for the firing e-mail, undo, wait for the resolved e-mail."""
    t0 = time.time()
    named = fault.seen_from or host.name
    fault.inject(host)
    try:
        got = oncall.wait_for(
            lambda: oncall.mails(lab.ONCALL_DIR, since=t0), _mail_for(fault.alertname, named, "firing"), timeout
        )
        firing = got.received - t0 if got else None
    finally:
        t1 = time.time()
        fault.undo(host)
    got = oncall.wait_for(
        lambda: oncall.mails(lab.ONCALL_DIR, since=t1), _mail_for(fault.alertname, named, "resolved"), timeout
    )
    others = [a for a in SPSE_ALERTS if a != fault.alertname] if fault.alertname in SPSE_ALERTS else []
    also = tuple(
        m.subject
        for m in oncall.mails(lab.ONCALL_DIR, since=t0)
        if FIRING in m.subject and any(f" {a} " in m.subject for a in others)
    )
    return Latency(fault.name, fault.alertname, firing, got.received - t1 if got else None, also)
