"""LKPP's national page: what every LPSE site's telemetry contract (docs/national-telemetry.md)
says now, one row per site, and a site's last 90 days, day by day. Read from the national store
(VictoriaMetrics speaks Prometheus' query API) on each request; the queries are listed here, once,
for the page and for benchmarks/national.py.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lpse_status.maintenance import site_zone
from lpse_status.prom import Prometheus

# The figures are a site's word of the last FRESH (the national LpseSiteSilent alert's window):
# a site silent for longer shows none, and when it was last heard from (within SEEN_WITHIN).
FRESH, SEEN_WITHIN = "15m", "30d"

# Every instant query of the table: one vector each, by lpse_site.
TABLE_QUERIES: dict[str, str] = {
    "spse_up": f"max by (lpse_site) (last_over_time(lpse_national:spse_up[{FRESH}]))",
    "maintenance": f"max by (lpse_site) (last_over_time(lpse_national:maintenance_active[{FRESH}]))",
    # MetricsQL: the time of the newest sample (timestamp() would give the evaluation's).
    "last_seen": f"max by (lpse_site) (tlast_over_time(lpse_national:contract_info[{SEEN_WITHIN}]))",
    "availability_30d": (
        f"max by (lpse_site) (last_over_time(lpse_national:spse_availability_excluding_maintenance_30d:ratio[{FRESH}]))"
    ),
    # The oldest of the newest verified copies (what the national BackupStale alert reads).
    "backup_age": f"max by (lpse_site) (last_over_time(lpse_national:backup_verified_age_seconds[{FRESH}]))",
    "drill_success": f"min by (lpse_site) (last_over_time(lpse_national:drill_success[{FRESH}]))",
    "drill_rto": f"max by (lpse_site) (last_over_time(lpse_national:drill_rto_seconds[{FRESH}]))",
    "disk_days": f"min by (lpse_site) (last_over_time(lpse_national:disk_days_until_full[{FRESH}]))",
    "critical": f"max by (lpse_site) (last_over_time(lpse_national:critical_alerts_firing[{FRESH}]))",
}
# The contract's identity of each site (labels, not values): release and configuration fingerprint.
INFO_QUERY = f"last_over_time(lpse_national:contract_info[{FRESH}])"

# A site's day (the page's zone) as the site itself computed it: the 24-hour figures it sent
# last in the day, and the share of the day's minutes LKPP holds a sample for.
HISTORY_QUERIES: dict[str, str] = {
    "availability": (
        'last_over_time(lpse_national:spse_availability_excluding_maintenance_1d:ratio{{lpse_site="{site}"}}[1d])'
    ),
    "availability_all": 'last_over_time(lpse_national:spse_availability_1d:ratio{{lpse_site="{site}"}}[1d])',
    "reported": 'count_over_time(lpse_national:spse_up{{lpse_site="{site}"}}[1d])',
    "maintenance": 'avg_over_time(lpse_national:maintenance_active{{lpse_site="{site}"}}[1d])',
    "backup_age": 'max(max_over_time(lpse_national:backup_verified_age_seconds{{lpse_site="{site}"}}[1d]))',
    "drill_success": 'min(min_over_time(lpse_national:drill_success{{lpse_site="{site}"}}[1d]))',
    "disk_days": 'min(min_over_time(lpse_national:disk_days_until_full{{lpse_site="{site}"}}[1d]))',
    "critical": 'max(max_over_time(lpse_national:critical_alerts_firing{{lpse_site="{site}"}}[1d]))',
}
HISTORY_DAYS = 90
STATES = ("down", "silent", "maintenance", "up")  # worst first: the table's default order


@dataclass(frozen=True)
class Site:
    name: str  # its lpse_site (the login it sends with)
    title: str  # e.g. "LPSE Kabupaten Bogor"
    province: str


@dataclass(frozen=True)
class Settings:
    store_url: str
    sites: tuple[Site, ...]
    availability_target: float  # e.g. 0.995
    backup_max_age_s: float  # older: stale (the national alert's threshold)
    disk_days_warning: float
    contract_interval_s: float  # the sites' send interval: a day holds 86400 / it samples
    timezone: dt.tzinfo
    listen: str  # host:port (localhost; nginx in front)

    @staticmethod
    def load(path: Path) -> Settings:
        raw = tomllib.loads(path.read_text())
        sites = tuple(Site(s["name"], s.get("title") or s["name"], s.get("province", "")) for s in raw["sites"])
        return Settings(
            store_url=raw["store_url"],
            sites=sites,
            availability_target=float(raw["availability_target"]),
            backup_max_age_s=float(raw["backup_max_age_hours"]) * 3600,
            disk_days_warning=float(raw["disk_days_warning"]),
            contract_interval_s=float(raw.get("contract_interval_seconds", 60)),
            timezone=site_zone(float(raw.get("utc_offset_hours", 7))),
            listen=raw.get("listen", "127.0.0.1:8431"),
        )


@dataclass(frozen=True)
class Row:
    site: Site
    state: str  # one of STATES
    last_seen: float | None  # epoch seconds of its newest contract sample; None: never sent
    availability_30d: float | None
    backup_age_s: float | None
    drill_success: bool | None
    drill_rto_s: float | None
    disk_days: float | None
    critical: float | None
    version: str
    fingerprint: str
    drift: bool  # its configuration differs from most sites on the same release


def _by_site(store: Prometheus, expr: str, at: float) -> dict[str, float]:
    return {s.labels.get("lpse_site", ""): s.points[0][1] for s in store.query(expr, at)}


def table(store: Prometheus, s: Settings, at: float) -> list[Row]:
    """One row per expected site (and per site that sent without being expected), as at `at`."""
    got = {name: _by_site(store, expr, at) for name, expr in TABLE_QUERIES.items()}
    info = {x.labels.get("lpse_site", ""): x.labels for x in store.query(INFO_QUERY, at)}
    common: dict[str, str] = {}
    for version in {i.get("lpse_ops_version", "") for i in info.values()}:
        prints = Counter(i.get("config_fingerprint", "") for i in info.values() if i.get("lpse_ops_version") == version)
        common[version] = prints.most_common(1)[0][0]
    known = {x.name for x in s.sites}
    strangers = sorted(set(got["last_seen"]) - known - {""})
    rows = []
    for site in (*s.sites, *(Site(n, n, "") for n in strangers)):
        n = site.name
        up, maint = got["spse_up"].get(n), got["maintenance"].get(n)
        state = "silent" if up is None else "maintenance" if maint == 1 else "up" if up == 1 else "down"
        labels = info.get(n, {})
        version, fingerprint = labels.get("lpse_ops_version", ""), labels.get("config_fingerprint", "")
        drill = got["drill_success"].get(n)
        rows.append(
            Row(
                site=site,
                state=state,
                last_seen=got["last_seen"].get(n),
                availability_30d=got["availability_30d"].get(n),
                backup_age_s=got["backup_age"].get(n),
                drill_success=None if drill is None else drill == 1,
                drill_rto_s=got["drill_rto"].get(n),
                disk_days=got["disk_days"].get(n),
                critical=got["critical"].get(n),
                version=version,
                fingerprint=fingerprint,
                drift=bool(fingerprint) and fingerprint != common.get(version),
            )
        )
    return rows


SORT_KEYS = ("state", "site", "province", "availability", "backup", "drill", "disk", "version")


def sort_rows(rows: list[Row], key: str, descending: bool) -> list[Row]:
    """Rows by a column; sites without the figure last whichever the direction."""
    big = float("inf")

    def value(r: Row) -> tuple:
        match key:
            case "site":
                return (r.site.title.lower(),)
            case "province":
                return (r.site.province.lower(), r.site.title.lower())
            case "availability":
                return (r.availability_30d is None, r.availability_30d if r.availability_30d is not None else big)
            case "backup":
                return (r.backup_age_s is None, r.backup_age_s if r.backup_age_s is not None else big)
            case "drill":
                return (r.drill_success is None, r.drill_success if r.drill_success is not None else True)
            case "disk":
                return (r.disk_days is None, r.disk_days if r.disk_days is not None else big)
            case "version":
                return (r.version == "", r.version, r.drift)
            case _:
                return (STATES.index(r.state), r.site.title.lower())

    present = [r for r in rows if value(r)[0] is not True]
    absent = [r for r in rows if value(r)[0] is True]
    return sorted(present, key=value, reverse=descending) + sorted(absent, key=lambda r: r.site.title.lower())


@dataclass(frozen=True)
class Day:
    start: dt.datetime  # midnight in the page's zone
    availability: float | None  # excluding announced maintenance, as the site computed it
    availability_all: float | None
    reported: float  # share of the day's contract samples that reached LKPP (0..1)
    maintenance: float | None  # share of the day under announced maintenance
    backup_age_s: float | None
    drill_success: bool | None
    disk_days: float | None
    critical: float | None


def history(store: Prometheus, s: Settings, site: str, now: float, days: int = HISTORY_DAYS) -> list[Day]:
    """The site's last `days` days, oldest first, each read at its end (today: so far)."""
    today = dt.datetime.fromtimestamp(now, s.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - dt.timedelta(days=d) for d in range(days - 1, -1, -1)]
    # Each day is read at its end (the day's [1d] window); today's at `now`.
    ends = [min((d + dt.timedelta(days=1)).timestamp(), now) for d in starts]
    series: dict[str, dict[float, float]] = {}
    for name, template in HISTORY_QUERIES.items():
        expr = template.format(site=site)
        points: dict[float, float] = {}
        # Whole days at a one-day step (VictoriaMetrics shifts the start of a range query to a
        # multiple of its step for its cache unless told not to: nocache), then today so far.
        for x in store.query_range(expr, ends[0], ends[-2], 86400, nocache=True) if days > 1 else []:
            points.update(x.points)
        for x in store.query(expr, ends[-1]):
            points.update(x.points)
        series[name] = points
    per_day = 86400 / s.contract_interval_s
    out = []
    for start, end in zip(starts, ends, strict=True):

        def get(name: str, at: float = end) -> float | None:
            return next((v for t, v in series[name].items() if abs(t - at) < 1), None)

        elapsed = (end - start.timestamp()) / 86400
        drill = get("drill_success")
        out.append(
            Day(
                start=start,
                availability=get("availability"),
                availability_all=get("availability_all"),
                reported=min(1.0, (get("reported") or 0) / (per_day * elapsed)) if elapsed > 0 else 0.0,
                maintenance=get("maintenance"),
                backup_age_s=get("backup_age"),
                drill_success=None if drill is None else drill == 1,
                disk_days=get("disk_days"),
                critical=get("critical"),
            )
        )
    return out
