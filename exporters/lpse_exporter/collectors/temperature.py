"""Temperatures (R4: the server room): the host's own sensors from /sys/class/hwmon, the
server's BMC (IPMI) where it has one, and the room's where the inventory names a sensor file (a
1-wire probe's `temperature`, a USB thermometer's hwmon input: millidegrees Celsius as text).

The BMC needs root and can take seconds to answer, so it is never asked inside a scrape: a root
timer (lpse-ipmi-sensors) writes `ipmitool sensor`'s table to a file, read here; a table that has
not been renewed for IPMI_STALE_SECONDS fails the collector, naming the timer.

A host without sensors (a container, most VMs) reports lpse_temperature_sensors 0: "no sensors",
not a failed collector. One read of every file per scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric


@dataclass(frozen=True)
class Reading:
    chip: str  # hwmon's name (coretemp, nvme, acpitz) or "room"
    sensor: str  # the label (Package id 0, Composite) or tempN
    celsius: float
    max_celsius: float | None = None
    critical_celsius: float | None = None


def _milli(path: Path) -> float | None:
    try:
        return int(path.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None  # absent, or a sensor that cannot be read right now (EIO, ENODATA)


def read_hwmon(root: Path) -> list[Reading]:
    """Every temp*_input under <root>/sys/class/hwmon, with its label and limits."""
    base = root / "sys/class/hwmon"
    out: list[Reading] = []
    for chip_dir in sorted(base.iterdir()) if base.is_dir() else ():
        try:
            chip = (chip_dir / "name").read_text().strip()
        except OSError:
            chip = chip_dir.name
        for inp in sorted(chip_dir.glob("temp*_input")):
            stem = inp.name[: -len("_input")]
            celsius = _milli(inp)
            if celsius is None:
                continue
            try:
                label = (chip_dir / f"{stem}_label").read_text().strip()
            except OSError:
                label = stem
            out.append(
                Reading(
                    chip,
                    label,
                    celsius,
                    _milli(chip_dir / f"{stem}_max"),
                    _milli(chip_dir / f"{stem}_crit"),
                )
            )
    return out


IPMI_STALE_SECONDS = 300


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "na": no reading, or no such threshold


def read_ipmitool(table: str) -> list[Reading]:
    """The temperature rows of `ipmitool sensor`: name | reading | unit | status | lower
    non-recoverable, critical, non-critical | upper non-critical, critical, non-recoverable. The
    BMC's upper non-critical and critical thresholds are the sensor's own limits."""
    out: list[Reading] = []
    for line in table.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) < 10 or cols[2] != "degrees C":
            continue
        celsius = _number(cols[1])
        if celsius is not None:  # "na": an empty socket, a power supply not fitted
            out.append(Reading("ipmi", cols[0], celsius, _number(cols[7]), _number(cols[8])))
    return out


def read_ipmi_file(path: Path, now: float) -> list[Reading]:
    """The BMC's readings from the table the root timer writes; none when there is no table (no BMC)."""
    try:
        age = now - path.stat().st_mtime
        table = path.read_text()
    except FileNotFoundError:
        return []
    if age > IPMI_STALE_SECONDS:
        raise OSError(
            f"the BMC's readings in {path} are {age:.0f} s old: is lpse-ipmi-sensors.timer running? "
            "(systemctl status lpse-ipmi-sensors.service)"
        )
    return read_ipmitool(table)


class TemperatureSource:
    name = "temperature"

    def __init__(
        self,
        root: Path = Path("/"),
        room_sensor: Path | None = None,
        room_name: str = "room",
        ipmi_file: Path | None = None,
    ) -> None:
        self.root = root
        self.room_sensor = room_sensor
        self.room_name = room_name
        self.ipmi_file = ipmi_file

    def read(self) -> Iterable[Metric]:
        readings = read_hwmon(self.root)
        if self.ipmi_file is not None:
            readings += read_ipmi_file(self.ipmi_file, time.time())
        if self.room_sensor is not None:
            room = _milli(self.room_sensor)
            if room is None:
                raise OSError(f"the room sensor {self.room_sensor} cannot be read")
            readings.append(Reading("room", self.room_name, room))
        labels = ["chip", "sensor"]
        now = GaugeMetricFamily("lpse_temperature_celsius", "Temperature now", labels=labels)
        high = GaugeMetricFamily("lpse_temperature_max_celsius", "The sensor's own high limit", labels=labels)
        crit = GaugeMetricFamily("lpse_temperature_critical_celsius", "The sensor's own critical limit", labels=labels)
        seen: dict[tuple[str, str], int] = {}
        for r in readings:
            n = seen.get((r.chip, r.sensor), 0)
            seen[(r.chip, r.sensor)] = n + 1
            # Two chips of one name (each CPU's coretemp has a "Core 0"): tell them apart.
            key = (r.chip, f"{r.sensor} #{n}" if n else r.sensor)
            now.add_metric(list(key), r.celsius)
            if r.max_celsius is not None:
                high.add_metric(list(key), r.max_celsius)
            if r.critical_celsius is not None:
                crit.add_metric(list(key), r.critical_celsius)
        yield now
        yield high
        yield crit
        yield GaugeMetricFamily(
            "lpse_temperature_sensors", "Temperature sensors read (0: this host has none)", value=len(readings)
        )
