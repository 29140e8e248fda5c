"""A month's availability as open data (R17): anyone can recompute the published figure.

For each completed month (in the site's zone) the board writes to `<records_dir>/open-data/`:

- `ketersediaan-YYYY-MM.csv` — every probe result of the month as Prometheus stored it
  (`time_utc,epoch_seconds,up`);
- `ketersediaan-YYYY-MM.json` — the month's bounds, the probe step, the announced maintenance
  windows, the rule (lpse_status.availability) and the figures the page shows;
- `ketersediaan-YYYY-MM.sha256` — SHA-256 of both, as `sha256sum -c` reads it;
- `ketersediaan-YYYY-MM.sha256.sig` — an Ed25519 signature of that file by the site's key
  (`kunci-publik.pem` beside them: `openssl pkeyutl -verify -pubin -inkey kunci-publik.pem -rawin
  -in ketersediaan-YYYY-MM.sha256 -sigfile ketersediaan-YYYY-MM.sha256.sig`).

The figures in the JSON are worked out from the CSV's rows alone by `figures()`, the same rule as
the page's 24 h/30 d/90 d figures and the quarterly report, so the page shows what the file says.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lpse_status.maintenance import Maintenance
from lpse_status.prom import Prometheus
from lpse_status.records import write_text

NAME = re.compile(r"^(ketersediaan-\d{4}-\d\d\.(csv|json|sha256|sha256\.sig)|kunci-publik\.pem)$")
RULE_ID = (
    "Ketersediaan = jumlah hasil probe bernilai 1 pada (awal, akhir] dibagi jumlah langkah (akhir - awal) / "
    "step_seconds, paling besar 1. Awal = awal bulan, atau hasil probe pertama situs bila lebih kemudian. Langkah "
    "tanpa hasil dihitung terganggu. Di luar pemeliharaan: waktu dan hasil di dalam jendela pemeliharaan tidak "
    "dihitung."
)
RULE_EN = (
    "Availability = probe results equal to 1 in (start, end] over the steps (end - start) / step_seconds, at "
    "most 1. Start = the month's start, or the site's first probe result if later. A step without a result counts "
    "as down. Excluding maintenance: the time and the results inside the maintenance windows are left out."
)


@dataclass(frozen=True)
class Figures:
    availability: float | None
    excluding_maintenance: float | None
    measured_from: float | None
    results_up: int
    steps: float
    maintenance_seconds: float


def figures(rows: list[tuple[float, float]], start: float, end: float, step: float,
            windows: list[tuple[float, float]]) -> Figures:  # fmt: skip
    """The month's figures from its probe results alone (epoch seconds, value)."""
    first = min((t for t, _ in rows if start <= t <= end), default=None)
    if first is None or end - max(start, first) < step:
        return Figures(None, None, first, 0, 0.0, 0.0)
    begin = max(start, first)
    up = [t for t, v in rows if begin < t <= end and v == 1]
    steps = (end - begin) / step
    share = min(1.0, len(up) / steps)
    inside = [(max(begin, a), min(end, b)) for a, b in windows if min(end, b) > max(begin, a)]
    maint_s = sum(b - a for a, b in inside)
    up_inside = sum(1 for t in up if any(a < t <= b for a, b in inside))
    rest = (end - begin) - maint_s
    excl = 1.0 if rest <= 0 else min(1.0, (len(up) - up_inside) / (rest / step))
    return Figures(share, excl, begin, len(up), steps, maint_s)


def month_bounds(month: str, tz: dt.tzinfo) -> tuple[float, float]:
    """[first second, first second of the next month) of YYYY-MM in the site's zone."""
    if not re.fullmatch(r"\d{4}-\d\d", month):
        raise ValueError(f"month {month!r}: write it as 2026-11")
    year, number = int(month[:4]), int(month[5:])
    start = dt.datetime(year, number, 1, tzinfo=tz)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"the signing key {path} cannot be read ({e}): provisioning writes it (roles/status_board)"
        ) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"the signing key {path} is not an Ed25519 key")
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def export(prom: Prometheus, instance: str, step: float, tz: dt.tzinfo, site: str, windows: list[Maintenance],
           month: str, key: Ed25519PrivateKey, out: Path) -> Figures:  # fmt: skip
    """Write the month's four files (and the public key) to `out`; returns its figures. A month
    still running is written up to now."""
    start, end = month_bounds(month, tz)
    end = min(end, float(int(time.time())))
    width_ms = round((end - start) * 1000) - 1  # (start, end], as lpse_status.availability counts
    series = prom.query(f'lpse_spse_up{{instance="{instance}"}}[{width_ms}ms]', at=end)
    merged: dict[float, float] = {}
    for s in series:  # one probe scraped by two jobs: a step is up if either said so
        for t, v in s.points:
            merged[t] = max(v, merged.get(t, 0.0))
    rows = sorted(merged.items())
    spans = [(m.start, m.end) for m in windows if m.end > start and m.start < end]
    result = figures(rows, start, end, step, spans)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["time_utc", "epoch_seconds", "up"])
    for t, v in rows:
        writer.writerow([dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
                         f"{t:.3f}", int(v)])  # fmt: skip
    name = f"ketersediaan-{month}"
    meta = {
        "site": site,
        "instance": instance,
        "month": month,
        "zone": str(dt.datetime.fromtimestamp(start, tz).tzname()),
        "start_epoch_seconds": start,
        "end_epoch_seconds": end,
        "step_seconds": step,
        "rule_id": RULE_ID,
        "rule_en": RULE_EN,
        "maintenance_windows": [{"start_epoch_seconds": a, "end_epoch_seconds": b} for a, b in spans],
        "figures": asdict(result),
        "samples": f"{name}.csv",
    }
    out.mkdir(parents=True, exist_ok=True)
    body = {f"{name}.csv": table.getvalue(), f"{name}.json": json.dumps(meta, indent=1, ensure_ascii=False) + "\n"}
    digests = "".join(f"{hashlib.sha256(text.encode()).hexdigest()}  {file}\n" for file, text in body.items())
    for file, text in body.items():
        write_text(out / file, text)
    write_text(out / f"{name}.sha256", digests)
    (out / f".{name}.sha256.sig.tmp").write_bytes(key.sign(digests.encode()))
    (out / f".{name}.sha256.sig.tmp").replace(out / f"{name}.sha256.sig")
    write_text(out / "kunci-publik.pem", public_pem(key).decode())
    return result


def published(folder: Path) -> list[tuple[str, Figures]]:
    """The months with files, newest first, and their figures (read from their JSON)."""
    out = []
    for path in sorted(folder.glob("ketersediaan-*.json"), reverse=True) if folder.is_dir() else []:
        try:
            meta = json.loads(path.read_text())
            out.append((str(meta["month"]), Figures(**meta["figures"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def completed_months(first: float, now: float, tz: dt.tzinfo, keep: int = 12) -> list[str]:
    """The months since the first probe result that have ended, the newest `keep`."""
    months = []
    day = dt.datetime.fromtimestamp(first, tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    current = dt.datetime.fromtimestamp(now, tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while day < current:
        months.append(day.strftime("%Y-%m"))
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return months[-keep:]
