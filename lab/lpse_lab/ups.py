"""The lab's UPS: a simulated device (no UPS is plugged into this machine), played by NUT's own
dummy-ups driver reading a file. On a lab host with `lab_ups` the file sits in a directory of
this machine bound into the host at that path (its "UPS cable"); `lpse-lab ups` changes what the
UPS reports, and the host's real driver, upsd and upsmon act on it."""

from __future__ import annotations

from pathlib import Path

DEVICE_FILE = "ups.dev"

ON_MAINS = {
    "ups.status": "OL",
    "battery.charge": "100",
    "battery.runtime": "1800",
    "battery.runtime.low": "300",
    "ups.load": "23",
    "input.voltage": "221.5",
    "input.voltage.nominal": "230",
    "ups.test.result": "Done and passed",
    "ups.mfr": "Lab",
    "ups.model": "Simulated 1500",
}

# What `lpse-lab ups STATE` makes the UPS report.
STATES = {
    "on-mains": ON_MAINS,
    # Mains lost: the battery carries the servers, well above a site's shutdown threshold.
    "on-battery": ON_MAINS | {"ups.status": "OB DISCHRG", "input.voltage": "0", "battery.charge": "80",
                              "battery.runtime": "1500"},
    # The battery has run down below the roles' default threshold (30 %, 600 s): a clean
    # shutdown is due; the UPS itself does not (yet) say LB, as many do not until too late.
    "low-battery": ON_MAINS | {"ups.status": "OB DISCHRG", "input.voltage": "0", "battery.charge": "25",
                               "battery.runtime": "420"},
}  # fmt: skip


def write_device(path: Path, values: dict[str, str]) -> None:
    """What the simulated UPS reports, in dummy-ups' `upsc` format; it reads the file again when
    it changes. Written whole (temp file + rename): the driver never reads half a state.
    `ups.status` goes last: dummy-ups commits the status (and, with `ignorelb`, judges "battery
    low" against the site's thresholds) when it reads that line, from the values read before it."""
    tmp = path.with_name(path.name + ".tmp")
    ordered = sorted(values.items(), key=lambda kv: kv[0] == "ups.status")
    tmp.write_text("".join(f"{k}: {v}\n" for k, v in ordered))
    tmp.chmod(0o644)
    tmp.replace(path)
