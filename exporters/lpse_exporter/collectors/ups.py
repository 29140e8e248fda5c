"""The UPS, read from NUT's upsd over its own network protocol (R4: backup power).

One `LIST VAR <ups>` per UPS and scrape gives every variable of that moment: status flags,
charge, runtime left, load, input voltage and the last self-test. lpse_ups_up{ups} says whether
that answer came: 0 when upsd does not answer, or answers `ERR DATA-STALE` /
`ERR DRIVER-NOT-CONNECTED` (it has lost the UPS itself), and then the UPS has no other series.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

# NUT's status flags (docs/new-drivers.txt, "Status data"); any other flag a driver reports is
# exported as well while it is present.
STATUS_FLAGS = ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER", "TRIM", "BOOST", "FSD")

# NUT variable -> (metric, help, scale)
NUMBERS = {
    "battery.charge": ("lpse_ups_battery_charge_ratio", "Battery charge (0-1)", 0.01),
    "battery.runtime": ("lpse_ups_battery_runtime_seconds", "Runtime left on battery at the present load", 1.0),
    "battery.runtime.low": (
        "lpse_ups_battery_runtime_low_seconds",
        "Runtime left at which the UPS reports low battery",
        1.0,
    ),
    "ups.load": ("lpse_ups_load_ratio", "Load on the UPS (0-1 of its capacity)", 0.01),
    "input.voltage": ("lpse_ups_input_voltage_volts", "Mains voltage at the UPS input", 1.0),
    "input.voltage.nominal": ("lpse_ups_input_voltage_nominal_volts", "Nominal mains voltage", 1.0),
    "output.voltage": ("lpse_ups_output_voltage_volts", "Voltage the UPS gives the servers", 1.0),
}


log = logging.getLogger("lpse_exporter")


class NutError(Exception):
    """upsd answered ERR, or the answer was not NUT's protocol."""


@dataclass(frozen=True)
class UpsTarget:
    name: str  # the UPS's name in upsd (ups.conf section)
    host: str = "127.0.0.1"
    port: int = 3493
    username: str | None = None
    password_file: Path | None = None


def _unquote(value: str) -> str:
    if value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return value.replace('\\"', '"').replace("\\\\", "\\")


def parse_list_var(ups: str, text: str) -> dict[str, str]:
    """The answer to LIST VAR <ups>: variable -> value."""
    lines = text.splitlines()
    if lines and lines[0].startswith("ERR "):
        raise NutError(f"upsd: {lines[0][4:]} (UPS {ups})")
    if not lines or lines[0] != f"BEGIN LIST VAR {ups}" or lines[-1] != f"END LIST VAR {ups}":
        raise NutError(f"not an answer to LIST VAR {ups}: {text[:200]!r}")
    out: dict[str, str] = {}
    prefix = f"VAR {ups} "
    for line in lines[1:-1]:
        if not line.startswith(prefix):
            raise NutError(f"unexpected line in LIST VAR {ups}: {line!r}")
        name, _, value = line[len(prefix) :].partition(" ")
        out[name] = _unquote(value)
    return out


def self_test_passed(result: str) -> float | None:
    """1 for a passed test, 0 for a failed or aborted one, None when no test result is known."""
    r = result.strip().lower()
    if r.startswith("done and passed"):
        return 1.0
    if r.startswith(("done and warning", "done and error", "aborted", "failed")):
        return 0.0
    return None  # "No test initiated", "In progress", unknown wording


class UpsSource:
    name = "ups"

    def __init__(self, targets: Iterable[UpsTarget], timeout: float = 5.0) -> None:
        self.targets = tuple(targets)
        self.timeout = timeout

    def _ask(self, t: UpsTarget) -> dict[str, str]:
        with (
            socket.create_connection((t.host, t.port), timeout=self.timeout) as s,
            s.makefile("rw", encoding="utf-8", newline="\n") as f,
        ):
            if t.username:
                password = t.password_file.read_text().strip() if t.password_file else ""
                for command in (f"USERNAME {t.username}", f"PASSWORD {password}"):
                    f.write(command + "\n")
                    f.flush()
                    answer = f.readline().strip()
                    if answer != "OK":
                        raise NutError(f"upsd refused the login {t.username}: {answer}")
            f.write(f"LIST VAR {t.name}\n")
            f.flush()
            lines = []
            while True:
                line = f.readline()
                if not line:
                    raise NutError(f"upsd at {t.host}:{t.port} closed the connection mid-answer")
                lines.append(line.rstrip("\n"))
                if line.startswith(("END LIST VAR", "ERR ")):
                    break
            f.write("LOGOUT\n")
            f.flush()
        return parse_list_var(t.name, "\n".join(lines))

    def read(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("lpse_ups_up", "1 if upsd gave this UPS's data on this scrape", labels=["ups"])
        status = GaugeMetricFamily(
            "lpse_ups_status",
            "1 while the UPS reports this status flag (OL on mains, OB on battery, LB battery low)",
            labels=["ups", "flag"],
        )
        numbers = {var: GaugeMetricFamily(m, h, labels=["ups"]) for var, (m, h, _) in NUMBERS.items()}
        test = GaugeMetricFamily("lpse_ups_self_test_passed", "1 if the UPS's last self-test passed", labels=["ups"])
        info = GaugeMetricFamily(
            "lpse_ups_info",
            "The UPS as upsd knows it",
            labels=["ups", "manufacturer", "model", "driver", "test_result"],
        )
        for t in self.targets:
            try:
                v = self._ask(t)
            except (OSError, NutError) as e:
                log.warning("UPS %s at %s:%d: %s", t.name, t.host, t.port, e)
                up.add_metric([t.name], 0.0)
                continue
            up.add_metric([t.name], 1.0)
            flags = v.get("ups.status", "").split()
            for flag in dict.fromkeys((*STATUS_FLAGS, *flags)):
                status.add_metric([t.name, flag], 1.0 if flag in flags else 0.0)
            for var, (_, _, scale) in NUMBERS.items():
                with contextlib.suppress(KeyError, ValueError):  # not reported: the series is absent
                    numbers[var].add_metric([t.name], float(v[var]) * scale)
            passed = self_test_passed(v.get("ups.test.result", ""))
            if passed is not None:
                test.add_metric([t.name], passed)
            model = (v.get("ups.mfr", v.get("device.mfr", "")), v.get("ups.model", v.get("device.model", "")))
            info.add_metric([t.name, *model, v.get("driver.name", ""), v.get("ups.test.result", "")], 1.0)
        yield up
        yield status
        yield from numbers.values()
        yield test
        yield info
