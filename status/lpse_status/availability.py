"""SPSE availability over a period, from the exporter's page probe (`lpse_spse_up`).

At every step (the scrape interval) SPSE counts as up only if a probe result says so: a step
with no result at all (exporter, host or Prometheus down) counts as down, because nobody could
show SPSE was up then. A period that starts before the first probe result is measured from that
result, and says so. Announced maintenance is reported apart: availability "excluding
maintenance" leaves the announced windows out of both the time and the downtime.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from lpse_status.prom import Prometheus


@dataclass(frozen=True)
class Availability:
    start: float  # what was asked for
    measured_from: float  # the first probe result in the period (>= start)
    end: float
    up_share: float  # 0..1 over [measured_from, end]
    maintenance_s: float = 0.0  # announced maintenance inside the period
    up_in_maintenance_s: float = 0.0

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.measured_from)

    @property
    def down_s(self) -> float:
        return self.seconds * (1 - self.up_share)

    @property
    def excluding_maintenance(self) -> float:
        """Up share with the announced maintenance windows left out."""
        rest = self.seconds - self.maintenance_s
        if rest <= 0:
            return 1.0
        up = self.seconds * self.up_share - self.up_in_maintenance_s
        return min(1.0, max(0.0, up / rest))


def _up(instance: str) -> str:
    return f'(max(lpse_spse_up{{instance="{instance}"}}) or vector(0))'


def up_share(prom: Prometheus, instance: str, start: float, end: float, step: float) -> float | None:
    """Share of steps in (start, end] at which the probe said up; None for an empty period."""
    width = math.ceil((end - start) / step) * int(step)
    if width <= 0:
        return None
    return prom.value(f"avg_over_time({_up(instance)}[{width}s:{int(step)}s])", at=end)


def first_probe(prom: Prometheus, instance: str, start: float, end: float, step: float) -> float | None:
    """When the first probe result of the period was taken (None: there is none)."""
    width = math.ceil((end - start) / step) * int(step)
    if width <= 0:
        return None
    expr = f'min_over_time(timestamp(max(lpse_spse_up{{instance="{instance}"}}))[{width}s:{int(step)}s])'
    return prom.value(expr, at=end)


def availability(
    prom: Prometheus,
    instance: str,
    start: float,
    end: float,
    step: float = 10,
    maintenance: list[tuple[float, float]] | None = None,
) -> Availability | None:
    """Availability of SPSE on `instance` over [start, end]; None when no probe ever ran in it."""
    first = first_probe(prom, instance, start, end, step)
    if first is None:
        return None
    begin = max(start, first)
    share = up_share(prom, instance, begin, end, step)
    if share is None:
        return None
    maint_s = up_maint = 0.0
    for m_start, m_end in maintenance or []:
        a, b = max(begin, m_start), min(end, m_end)
        if b - a >= step:
            maint_s += b - a
            up_maint += (b - a) * (up_share(prom, instance, a, b, step) or 0.0)
    return Availability(start, begin, end, share, maint_s, up_maint)


@dataclass(frozen=True)
class Day:
    """One calendar day in the site's zone, as the public page's bar shows it."""

    date: dt.date
    start: float  # measured from: the day's start, or the first probe result
    end: float  # the day's end, or now for today
    up_share: float | None  # None: no probe result at all that day
    maintenance_s: float = 0.0

    @property
    def down_s(self) -> float:
        return 0.0 if self.up_share is None else (self.end - self.start) * (1 - self.up_share)


def daily(prom: Prometheus, instance: str, tz: dt.tzinfo, now: float, step: float = 10, days: int = 90,
          maintenance: list[tuple[float, float]] | None = None) -> list[Day]:  # fmt: skip
    """The last `days` days (today last, up to now), each by the same rule as the figures: one
    range query for the whole days, one for today, one for the day the probe first ran."""
    today = dt.datetime.fromtimestamp(now, tz).date()
    dates = [today - dt.timedelta(days=k) for k in range(days - 1, -1, -1)]
    bounds = [(dt.datetime.combine(d, dt.time(), tz).timestamp(),
               dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tz).timestamp()) for d in dates]  # fmt: skip
    bounds[-1] = (bounds[-1][0], now)
    first = first_probe(prom, instance, bounds[0][0], now, step)
    shares: dict[float, float] = {}
    if first is not None and len(bounds) > 1:
        # A day at a time, evaluated at each day's end (days in the site's zone are 86,400 s).
        expr = f"avg_over_time({_up(instance)}[86400s:{int(step)}s])"
        for series in prom.query_range(expr, bounds[0][1], bounds[-2][1], 86400):
            shares = dict(series.points)
    out = []
    for d, (start, end) in zip(dates, bounds, strict=True):
        if first is None or end <= first:
            share = None
        elif start < first or end == now:  # the first day measured, or today: only what has been
            start = max(start, first)
            share = up_share(prom, instance, start, end, step)
        else:
            share = shares.get(end)
        maint = sum(max(0.0, min(end, b) - max(start, a)) for a, b in maintenance or [])
        out.append(Day(d, start, end, share, maint))
    return out
