"""Power cuts (R4): an incident record from the UPS's own timeline, once the host is back.

On the host the UPS is cabled to, every upsmon event and every step of the clean shutdown is a
line of the UPS's timeline (roles/ups), and the exporter serves the newest time of each kind of
event (`lpse_power_event_timestamp_seconds{event}`). A power-off that the records do not hold yet
becomes an incident as soon as the host has booted again and Prometheus has read it: mains lost,
the battery at the site's threshold, SPSE closed, the last WAL pushed, the power-off, the boot and
SPSE back, each to the second. On-call adds what was done and publishes it, like any incident.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lpse_status.incidents import incident_id
from lpse_status.prom import Prometheus
from lpse_status.records import Incident

ALERTNAME = "PowerCut"
# How far before the power-off the events of the same cut are looked for (a long night on battery).
SEQUENCE_S = 24 * 3600
# What each event of the timeline says, in Bahasa Indonesia and English, in the order of a cut.
EVENTS = {
    "ONBATT": ("listrik PLN padam, UPS memakai baterai", "mains lost, the UPS runs on battery"),
    "LOWBATT": ("baterai UPS mencapai ambang pematian", "the UPS battery reached the shutdown threshold"),
    "SHUTDOWN_BEGIN": ("pematian aman dimulai", "clean shutdown begins"),
    "SPSE_CLOSED": ("SPSE menampilkan pemberitahuan listrik padam", "SPSE shows the power-cut notice"),
    "SPSE_STOPPED": ("SPSE dihentikan", "SPSE stopped"),
    "SPSE_STOP_FAILED": ("SPSE gagal dihentikan", "SPSE failed to stop"),
    "CHECKPOINT": ("checkpoint PostgreSQL selesai", "PostgreSQL checkpoint done"),
    "WAL_PUSHED": ("WAL terakhir terkirim ke luar ruangan", "the last WAL segment reached off-room storage"),
    "WAL_NOT_PUSHED": ("WAL terakhir TIDAK terkirim ke luar ruangan", "the last WAL segment did NOT reach off-room"),
    "POSTGRESQL_STOPPED": ("PostgreSQL berhenti dengan bersih", "PostgreSQL stopped cleanly"),
    "POWER_OFF": ("server dimatikan", "the server powered off"),
}  # fmt: skip


def order(event: tuple[str, float]) -> tuple[float, int]:
    """By time, then (the timeline has whole seconds) in the order a cut goes."""
    return event[1], list(EVENTS).index(event[0])


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}"


def power_cut(prom: Prometheus, instance: str, off: float, now: float) -> Incident | None:
    """The incident of the power-off at `off` on `instance`, or None while the host is not back."""
    boot = prom.value(f'max(lpse_boot_time_timestamp_seconds{{instance="{instance}"}})', now)
    if boot is None or boot <= off:
        return None
    seen = prom.query(f'lpse_power_event_timestamp_seconds{{instance="{instance}"}}', now)
    at = {s.labels.get("event", ""): s.points[0][1] for s in seen}
    cut = {e: t for e, t in at.items() if e in EVENTS and off - SEQUENCE_S <= t <= off}
    mains_lost = cut.get("ONBATT", cut.get("SHUTDOWN_BEGIN", off))
    stopped_serving = cut.get("SPSE_CLOSED", cut.get("SHUTDOWN_BEGIN", off))
    # SPSE back: the first good probe after the boot (the SPSE server), else the boot itself.
    back = prom.query_range(f'max(lpse_spse_up{{instance="{instance}"}}) == 1', boot, max(now, boot + 1), 10)
    recovered = back[0].points[0][0] if back and back[0].points else boot
    wal = (
        ("WAL terakhir terkirim sebelum server mati", "the last WAL segment was pushed before the power-off")
        if "WAL_PUSHED" in cut
        else ("WAL terakhir tidak terkirim: salinan luar ruangan kurang beberapa menit terakhir",
              "the last WAL segment was not pushed: the off-room copy lacks the last minutes")
        if "WAL_NOT_PUSHED" in cut
        else ("", "")
    )  # fmt: skip
    on_battery = off - mains_lost
    steps = [f"{_utc(t)}: {EVENTS[e][0]} / {EVENTS[e][1]} ({e})" for e, t in sorted(cut.items(), key=order)]
    steps += [
        f"{_utc(boot)}: server hidup kembali / the server booted again",
        f"{_utc(recovered)}: SPSE melayani kembali / SPSE serving again",
    ]
    return Incident(
        id=incident_id(ALERTNAME, instance, off),
        alertname=ALERTNAME,
        instance=instance,
        severity="critical",
        first_failure=stopped_serving,
        alert_start=mains_lost,
        notified=None,
        resolved=boot,
        recovered=recovered,
        summary_id="Listrik padam: server dimatikan dengan aman lalu hidup kembali",
        summary_en="Power cut: the server shut down cleanly and came back",
        cause_id=f"Listrik PLN padam pukul {_utc(mains_lost)}; UPS menahan {_minutes(on_battery)} menit sampai "
        f"ambang baterai, lalu server dimatikan dengan aman. {wal[0]}".strip(),
        cause_en=f"Mains power was lost at {_utc(mains_lost)}; the UPS carried the load for "
        f"{_minutes(on_battery)} min until the battery threshold, then the server shut down cleanly. {wal[1]}".strip(),
        actions=steps,
    )


def record_power_cuts(prom: Prometheus, folder: Path, now: float) -> list[str]:
    """An incident for every power-off Prometheus knows of that the records do not hold yet and
    whose host is back; returns their ids."""
    made = []
    for s in prom.query('max by (instance) (lpse_power_event_timestamp_seconds{event="POWER_OFF"})', now):
        instance, off = s.labels.get("instance", ""), s.points[0][1]
        if (folder / f"{incident_id(ALERTNAME, instance, off)}.json").exists():
            continue
        incident = power_cut(prom, instance, off, now)
        if incident is not None:
            folder.mkdir(parents=True, exist_ok=True)
            incident.save(folder)
            made.append(incident.id)
    return made
