"""SPSE availability over a period, from the exporter's page probe (`lpse_spse_up`).

The rule, the same for the page, the bars, the report and the open-data files: the period holds
one step per scrape interval (`step`); each probe result that said up stands for one step; the
availability is the number of results that said up divided by the number of steps (at most 1).
A step without a result (exporter, host, network or Prometheus down) counts as down, from its
first second: no result is carried over from an earlier one (Prometheus's 5-minute lookback is
not used). The one exception is the time before the site's very first probe result: a period
that starts before it is measured from it, and says so ("diukur sejak"); time without results
after it is counted as down and said too (`missing_s`). Announced maintenance is reported
apart: availability "excluding maintenance" leaves the announced windows out of both the time
and the downtime.
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
    missing_s: float = 0.0  # time after the first probe result with no result at all (counted down)

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


def _over(fn: str, instance: str, width: float) -> str:
    """`fn` over the probe's raw results in the `width` seconds up to the evaluation time, the
    start left out: (t - width, t]. Prometheus 2 includes both ends, hence a millisecond less."""
    return f'max({fn}(lpse_spse_up{{instance="{instance}"}}[{max(1, round(width * 1000) - 1)}ms]))'


def results(prom: Prometheus, instance: str, start: float, end: float) -> tuple[float, float]:
    """Probe results in the period that said up, and all of them."""
    up = prom.value(_over("sum_over_time", instance, end - start), at=end) or 0.0
    return up, prom.value(_over("count_over_time", instance, end - start), at=end) or 0.0


def up_share(prom: Prometheus, instance: str, start: float, end: float, step: float) -> float | None:
    """Results that said up over the steps in (start, end], at most 1 (a late scrape then an early
    one puts two results in one step); None for a period shorter than a step."""
    if end - start < step:
        return None
    return min(1.0, results(prom, instance, start, end)[0] / ((end - start) / step))


def first_probe(prom: Prometheus, instance: str, start: float, end: float, step: float) -> float | None:
    """When the first probe result of the period was taken (None: there is none): the first step
    that sees one (a subquery over the probe's aggregate, fast), then that result's own time."""
    width = math.ceil((end - start) / step) * int(step)
    if width <= 0:
        return None
    probe = f'lpse_spse_up{{instance="{instance}"}}'
    seen = prom.value(f"min_over_time(timestamp(max({probe}))[{width}s:{int(step)}s])", at=end)
    if seen is None:
        return None
    return max(start, prom.value(f"min(timestamp({probe}))", at=seen) or seen)


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
    if end - begin < step:
        return None
    up, seen = results(prom, instance, begin, end)
    share = min(1.0, up / ((end - begin) / step))
    missing = max(0.0, (end - begin) - (seen * step))
    maint_s = up_maint = 0.0
    for m_start, m_end in maintenance or []:
        a, b = max(begin, m_start), min(end, m_end)
        if b - a >= step:
            maint_s += b - a
            up_maint += (b - a) * (up_share(prom, instance, a, b, step) or 0.0)
    return Availability(start, begin, end, share, maint_s, up_maint, missing)


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
        expr = _over("sum_over_time", instance, 86400)
        for series in prom.query_range(expr, bounds[0][1], bounds[-2][1], 86400):
            shares = {t: min(1.0, v / (86400 / step)) for t, v in series.points}
    out = []
    for d, (start, end) in zip(dates, bounds, strict=True):
        if first is None or end <= first:
            share = None
        elif start < first or end == now:  # the first day measured, or today: only what has been
            start = max(start, first)
            share = up_share(prom, instance, start, end, step)
        else:
            share = shares.get(end, 0.0)  # no result that whole day: down
        maint = sum(max(0.0, min(end, b) - max(start, a)) for a, b in maintenance or [])
        out.append(Day(d, start, end, share, maint))
    return out
