"""The exporter's UPS collector against a real NUT: upsd from Debian's nut-server, with NUT's
dummy-ups driver playing the UPS from a file (a simulated device, the only part that is not real:
no UPS is plugged into this machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lpse_exporter.collectors.ups import UpsSource, UpsTarget, parse_list_var
from lpse_exporter.config import ConfigError, parse
from lpse_lab.ups import ON_MAINS, STATES, write_device
from prometheus_client.core import Metric

NUT = Path("/lib/nut")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Nut:
    dir: Path
    port: int
    driver: subprocess.Popen[bytes] | None = None
    upsd: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {"NUT_CONFPATH": str(self.dir), "NUT_STATEPATH": str(self.dir / "state")}

    def device(self, values: dict[str, str]) -> None:
        """What the simulated UPS reports; dummy-ups reads the file again when it changes."""
        write_device(self.dir / "lab.dev", values)

    def start_driver(self) -> None:
        self.driver = subprocess.Popen([str(NUT / "dummy-ups"), "-a", "lab", "-u", "root", "-F"], env=self.env)

    def stop_driver(self) -> None:
        assert self.driver is not None
        self.driver.terminate()
        self.driver.wait(10)


# The shutdown policy as roles/ups writes it into ups.conf (its defaults: 30 %, 600 s).
POLICY = "  ignorelb\n  override.battery.charge.low = 30\n  override.battery.runtime.low = 600\n"


@pytest.fixture
def nut(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Nut]:
    n = Nut(tmp_path, free_port())
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "nut.conf").write_text("MODE=standalone\n")
    policy = POLICY if getattr(request, "param", "") == "policy" else ""
    (tmp_path / "ups.conf").write_text(
        f'[lab]\n  driver = dummy-ups\n  port = lab.dev\n  desc = "simulated UPS"\n{policy}'
    )
    (tmp_path / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {n.port}\n")
    (tmp_path / "upsd.users").write_text("")
    for f in ("upsd.conf", "upsd.users"):
        (tmp_path / f).chmod(0o600)
    n.device(ON_MAINS)
    n.start_driver()
    time.sleep(0.5)
    n.upsd = subprocess.Popen([str(NUT / "upsd"), "-u", "root", "-F"], env=n.env)
    yield n
    for p in (n.upsd, n.driver):
        if p is not None and p.poll() is None:
            p.terminate()
            p.wait(10)


def samples(source: UpsSource) -> dict[tuple[str, tuple[str, ...]], float]:
    metrics: list[Metric] = list(source.read())
    return {(s.name, tuple(s.labels.values())): s.value for m in metrics for s in m.samples}


def until(source: UpsSource, ok: Callable[[dict[tuple[str, tuple[str, ...]], float]], bool]) -> dict:
    deadline = time.monotonic() + 15
    while True:
        got = samples(source)
        if ok(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_on_mains_then_on_battery_then_battery_low(nut: Nut) -> None:
    source = UpsSource([UpsTarget("lab", "127.0.0.1", nut.port)], timeout=2)
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "OL"))) == 1)
    assert got[("lpse_ups_up", ("lab",))] == 1
    assert got[("lpse_ups_status", ("lab", "OL"))] == 1 and got[("lpse_ups_status", ("lab", "OB"))] == 0
    assert got[("lpse_ups_battery_charge_ratio", ("lab",))] == 1.0
    assert got[("lpse_ups_battery_runtime_seconds", ("lab",))] == 1800
    assert got[("lpse_ups_battery_runtime_low_seconds", ("lab",))] == 300
    assert got[("lpse_ups_load_ratio", ("lab",))] == pytest.approx(0.23)
    assert got[("lpse_ups_input_voltage_volts", ("lab",))] == 221.5
    assert got[("lpse_ups_self_test_passed", ("lab",))] == 1
    assert got[("lpse_ups_info", ("lab", "Lab", "Simulated 1500", "dummy-ups", "Done and passed"))] == 1

    # Mains lost: on battery, discharging, runtime falling.
    nut.device(ON_MAINS | {"ups.status": "OB DISCHRG", "battery.charge": "64", "battery.runtime": "540"})
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "OB"))) == 1)
    assert got[("lpse_ups_status", ("lab", "OB"))] == 1 and got[("lpse_ups_status", ("lab", "OL"))] == 0
    assert got[("lpse_ups_status", ("lab", "DISCHRG"))] == 1
    assert got[("lpse_ups_battery_runtime_seconds", ("lab",))] == 540
    # Battery low, and a self-test that failed.
    nut.device(ON_MAINS | {"ups.status": "OB LB", "battery.charge": "9", "ups.test.result": "Done and error"})
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "LB"))) == 1)
    assert got[("lpse_ups_status", ("lab", "LB"))] == 1
    assert got[("lpse_ups_battery_charge_ratio", ("lab",))] == pytest.approx(0.09)
    assert got[("lpse_ups_self_test_passed", ("lab",))] == 0


@pytest.mark.parametrize("nut", ["policy"], indirect=True)
def test_the_sites_policy_says_battery_low_for_the_labs_low_battery(nut: Nut) -> None:
    """The lab's UPS states (`lpse-lab ups`) under the role's policy: on battery is not yet low;
    below 30 % or 600 s the driver raises LB although the UPS itself does not say it, and that
    flag is what makes upsmon shut the hosts down."""
    source = UpsSource([UpsTarget("lab", "127.0.0.1", nut.port)], timeout=2)
    assert until(source, lambda g: g.get(("lpse_ups_status", ("lab", "OL"))) == 1)[("lpse_ups_status", ("lab", "OL"))]
    nut.device(STATES["on-battery"])
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "OB"))) == 1)
    assert got[("lpse_ups_status", ("lab", "OB"))] == 1 and got[("lpse_ups_status", ("lab", "LB"))] == 0
    assert got[("lpse_ups_battery_runtime_low_seconds", ("lab",))] == 600  # the policy, not the UPS's 300
    nut.device(STATES["low-battery"])
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "LB"))) == 1)
    assert got[("lpse_ups_status", ("lab", "LB"))] == 1, "the driver did not judge the battery low by the policy"
    nut.device(STATES["on-mains"])
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "OL"))) == 1)
    assert got[("lpse_ups_status", ("lab", "LB"))] == 0


def test_a_lost_ups_and_a_dead_upsd_say_so(nut: Nut) -> None:
    lab, other = UpsTarget("lab", "127.0.0.1", nut.port), UpsTarget("no-such-ups", "127.0.0.1", nut.port)
    source = UpsSource([lab, other], timeout=2)
    got = until(source, lambda g: g.get(("lpse_ups_status", ("lab", "OL"))) == 1)
    assert got[("lpse_ups_up", ("lab",))] == 1
    assert got[("lpse_ups_up", ("no-such-ups",))] == 0
    assert not [k for k in got if k[1][:1] == ("no-such-ups",) and k[0] != "lpse_ups_up"]
    # The driver stops talking to the UPS: upsd says so, and the UPS has no figures any more.
    nut.stop_driver()
    got = until(source, lambda g: g.get(("lpse_ups_up", ("lab",))) == 0)
    assert got[("lpse_ups_up", ("lab",))] == 0
    assert ("lpse_ups_status", ("lab", "OL")) not in got
    # upsd gone: still an answer, not a crash.
    assert nut.upsd is not None
    nut.upsd.terminate()
    nut.upsd.wait(10)
    assert samples(source)[("lpse_ups_up", ("lab",))] == 0


def test_protocol_errors_and_quoting() -> None:
    text = 'BEGIN LIST VAR u\nVAR u ups.status "OL"\nVAR u ups.model "Smart \\"X\\" 1000"\nEND LIST VAR u'
    assert parse_list_var("u", text) == {"ups.status": "OL", "ups.model": 'Smart "X" 1000'}
    with pytest.raises(Exception, match="DATA-STALE"):
        parse_list_var("u", "ERR DATA-STALE")


def test_config_names_the_ups_and_its_login() -> None:
    cfg = parse({"ups": [{"name": "lab", "host": "nut.lpse", "port": 3493}]})
    assert cfg.ups == (UpsTarget("lab", "nut.lpse", 3493),)
    with pytest.raises(ConfigError, match=r"ups\[0\]\.name is required"):
        parse({"ups": [{"host": "nut.lpse"}]})
    with pytest.raises(ConfigError, match="username and ups"):
        parse({"ups": [{"name": "lab", "username": "monitor"}]})
