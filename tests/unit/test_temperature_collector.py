"""The exporter's temperature collector on a hwmon tree (tests/unit/fixtures/hwmon-server), on a
host without sensors, and with a room sensor file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from lpse_exporter.collectors.temperature import TemperatureSource
from lpse_exporter.config import parse

SERVER = Path(__file__).parent / "fixtures" / "hwmon-server"


def samples(source: TemperatureSource) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.name, tuple(s.labels.values())): s.value for m in source.read() for s in m.samples}


def test_every_hwmon_sensor_with_its_limits() -> None:
    got = samples(TemperatureSource(SERVER))
    assert got[("lpse_temperature_celsius", ("acpitz", "temp1"))] == 27.8
    assert got[("lpse_temperature_critical_celsius", ("acpitz", "temp1"))] == 105
    assert got[("lpse_temperature_celsius", ("coretemp", "Package id 0"))] == 48
    assert got[("lpse_temperature_max_celsius", ("coretemp", "Package id 0"))] == 84
    assert got[("lpse_temperature_critical_celsius", ("coretemp", "Package id 0"))] == 94
    # The second CPU's "Core 0" is told apart from the first's.
    assert got[("lpse_temperature_celsius", ("coretemp", "Core 0"))] == 46
    assert got[("lpse_temperature_celsius", ("coretemp", "Core 0 #1"))] == 49
    assert got[("lpse_temperature_celsius", ("nvme", "Composite"))] == pytest.approx(38.85)
    # A sensor that cannot be read is left out, not reported as 0 degrees.
    assert ("lpse_temperature_celsius", ("nvme", "Sensor 1")) not in got
    assert got[("lpse_temperature_sensors", ())] == 6


def test_no_sensors_is_said_not_failed(tmp_path: Path) -> None:
    got = samples(TemperatureSource(tmp_path))
    assert got == {("lpse_temperature_sensors", ()): 0}


def test_the_room_sensor_and_a_lost_one(tmp_path: Path) -> None:
    probe = tmp_path / "temperature"
    probe.write_text("24125\n")
    got = samples(TemperatureSource(tmp_path, probe, "ruang server"))
    assert got[("lpse_temperature_celsius", ("room", "ruang server"))] == pytest.approx(24.125)
    probe.unlink()  # the probe's cable pulled: the collector fails and says which file
    with pytest.raises(OSError, match="room sensor"):
        list(TemperatureSource(tmp_path, probe).read())


def test_config_names_the_room_sensor() -> None:
    cfg = parse({"room_temperature_file": "/sys/bus/w1/devices/28-01/temperature", "room_temperature_name": "rak"})
    assert cfg.room_temperature_file == Path("/sys/bus/w1/devices/28-01/temperature")
    assert cfg.room_temperature_name == "rak"
    assert parse({}).room_temperature_file is None


IPMITOOL = Path(__file__).parent / "fixtures" / "ipmitool-sensor.txt"


def test_the_bmc_temperatures_with_its_thresholds(tmp_path: Path) -> None:
    """`ipmitool sensor`'s table (tests/unit/fixtures/ipmitool-sensor.txt, in ipmitool's layout:
    fans, volts, discrete states and a socket without a CPU among the temperatures), as the root
    timer writes it: only the temperatures that have a reading, with the BMC's upper non-critical
    and critical thresholds as the sensor's limits."""
    table = tmp_path / "ipmi-sensors.txt"
    table.write_text(IPMITOOL.read_text())
    got = samples(TemperatureSource(tmp_path, ipmi_file=table))
    assert got[("lpse_temperature_celsius", ("ipmi", "Inlet Temp"))] == 27
    assert got[("lpse_temperature_max_celsius", ("ipmi", "Inlet Temp"))] == 42
    assert got[("lpse_temperature_critical_celsius", ("ipmi", "Inlet Temp"))] == 47
    assert got[("lpse_temperature_celsius", ("ipmi", "CPU1 Temp"))] == 52
    assert got[("lpse_temperature_critical_celsius", ("ipmi", "CPU1 Temp"))] == 95
    # No thresholds on the power supply: a reading without limits.
    assert got[("lpse_temperature_celsius", ("ipmi", "PS1 Temperature"))] == 31
    assert ("lpse_temperature_max_celsius", ("ipmi", "PS1 Temperature")) not in got
    # The empty socket is left out, not reported as 0 degrees; fans and volts are not temperatures.
    assert ("lpse_temperature_celsius", ("ipmi", "CPU2 Temp")) not in got
    assert {k[1][1] for k in got if k[0] == "lpse_temperature_celsius"} == {
        "Inlet Temp",
        "Exhaust Temp",
        "CPU1 Temp",
        "PS1 Temperature",
    }
    assert got[("lpse_temperature_sensors", ())] == 4


def test_no_bmc_is_no_failure_and_a_stale_table_names_the_timer(tmp_path: Path) -> None:
    table = tmp_path / "ipmi-sensors.txt"
    # No table: the host has no BMC (the timer's condition /dev/ipmi* did not hold).
    assert samples(TemperatureSource(tmp_path, ipmi_file=table)) == {("lpse_temperature_sensors", ()): 0}
    table.write_text(IPMITOOL.read_text())
    old = time.time() - 600
    os.utime(table, (old, old))
    with pytest.raises(OSError, match=r"600 s old: is lpse-ipmi-sensors.timer running"):
        list(TemperatureSource(tmp_path, ipmi_file=table).read())


def test_config_names_the_ipmi_table() -> None:
    assert parse({"ipmi_sensors_file": "/var/lib/lpse-exporter/ipmi-sensors.txt"}).ipmi_sensors_file == Path(
        "/var/lib/lpse-exporter/ipmi-sensors.txt"
    )
    assert parse({}).ipmi_sensors_file is None
