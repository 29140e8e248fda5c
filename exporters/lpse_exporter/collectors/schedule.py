"""SPSE's own schedule: when each tender stage opens and closes, read-only from SPSE's database.

A tender's closing is when bidders must reach SPSE: maintenance is refused over one
(playbooks/maintenance.yml reads them with `lpse-exporter --spse-schedule`), and an SPSE outage in
the hour before one pages at once, naming the tenders (SpseDownAtClosing). The query is the
site's to set for the real SPSE schema (`lpse_exporter_spse_schedule_query`); it gets the window as
psql variables `window_start` and `window_end` (epoch seconds) and returns, per stage, the tender's
code, its name, the stage, and when the stage opens and closes (epoch seconds). It runs through
`psql` over the local socket as the exporter's own database role (peer login, read-only, SELECT on
the schedule's tables only: roles/spse).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

# The simulator's schema (lab/spse_simulator): a site running LKPP's SPSE sets its own.
DEFAULT_QUERY = """SELECT l.kode, l.nama, j.tahap, extract(epoch FROM j.mulai), extract(epoch FROM j.selesai)
FROM jadwal j JOIN lelang l ON l.id = j.lelang_id
WHERE j.selesai > to_timestamp(:window_start) AND j.mulai < to_timestamp(:window_end)
ORDER BY j.selesai"""
UNIT, RECORD = "\x1f", "\x1e"  # separators no tender name holds
WITHIN = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
STAGES_NAMED = 500  # stages named one by one (a busy LPSE has a few hundred tenders running)


class ScheduleError(RuntimeError):
    """The schedule could not be read; the message says why and what to check."""


@dataclass(frozen=True)
class ScheduleConfig:
    database: str
    query: str = DEFAULT_QUERY
    socket_dir: str = "/var/run/postgresql"
    port: int = 5432
    timeout: float = 5.0


@dataclass(frozen=True)
class Stage:
    tender: str
    name: str
    stage: str
    opens: float
    closes: float


def read_schedule(cfg: ScheduleConfig, start: float, end: float) -> list[Stage]:
    """The stages open at any moment of [start, end], by their closing."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", UNIT, "-R", RECORD, "-v", "ON_ERROR_STOP=1",
           "-h", cfg.socket_dir, "-p", str(cfg.port), "-d", cfg.database,
           "-v", f"window_start={start:.0f}", "-v", f"window_end={end:.0f}", "-f", "-"]  # fmt: skip
    try:
        done = subprocess.run(cmd, input=cfg.query, capture_output=True, text=True, timeout=cfg.timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ScheduleError(f"SPSE's schedule (database {cfg.database}): {e}") from e
    if done.returncode != 0:
        raise ScheduleError(
            f"SPSE's schedule (database {cfg.database}): {done.stderr.strip() or f'psql exit {done.returncode}'}; "
            "check lpse_exporter_spse_schedule_query against SPSE's schema and the exporter's read-only role"
        )
    stages = []
    for record in done.stdout.split(RECORD):
        fields = record.strip("\n").split(UNIT)
        if fields == [""]:
            continue
        if len(fields) != 5:
            raise ScheduleError(f"the schedule query must return 5 columns (tender, name, stage, opens, closes), "
                                f"not {len(fields)}: {record[:200]!r}")  # fmt: skip
        try:
            stages.append(Stage(fields[0], fields[1], fields[2], float(fields[3]), float(fields[4])))
        except ValueError as e:
            raise ScheduleError(f"the schedule query's opens and closes must be epoch seconds: {e}") from e
    return stages


class ScheduleSource:
    """The closings ahead, per scrape (one indexed query; a few milliseconds)."""

    name = "spse_schedule"

    def __init__(self, cfg: ScheduleConfig) -> None:
        self.cfg = cfg

    def read(self) -> Iterable[Metric]:
        now = time.time()
        ahead = [s for s in read_schedule(self.cfg, now, now + WITHIN["7d"]) if now < s.closes <= now + WITHIN["7d"]]
        closings = GaugeMetricFamily(
            "lpse_spse_schedule_closings", "Tender stages that close within the window from now", labels=["within"]
        )
        for label, seconds in WITHIN.items():
            closings.add_metric([label], sum(1 for s in ahead if s.closes <= now + seconds))
        # Every stage open now or closing within 24 h, by its tender: the notification names them,
        # and Prometheus keeps what was open when (the Berita Acara Gangguan reads it back).
        current = [s for s in read_schedule(self.cfg, now, now + WITHIN["24h"]) if s.opens <= now or s.closes > now]
        opens = GaugeMetricFamily("lpse_spse_schedule_stage_opens_timestamp_seconds",
                                  "When a tender stage open now or closing within 24 h opens",
                                  labels=["tender", "name", "stage"])  # fmt: skip
        closes = GaugeMetricFamily("lpse_spse_schedule_stage_closes_timestamp_seconds",
                                   "When a tender stage open now or closing within 24 h closes",
                                   labels=["tender", "name", "stage"])  # fmt: skip
        for s in current[:STAGES_NAMED]:
            opens.add_metric([s.tender, s.name, s.stage], s.opens)
            closes.add_metric([s.tender, s.name, s.stage], s.closes)
        out: list[Metric] = [closings, opens, closes]
        if ahead:
            out.append(GaugeMetricFamily("lpse_spse_schedule_next_closing_timestamp_seconds",
                                         "When the next tender stage closes", value=ahead[0].closes))  # fmt: skip
        return out
