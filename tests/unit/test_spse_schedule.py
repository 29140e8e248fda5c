"""SPSE's schedule read by the exporter (lpse_exporter.collectors.schedule) from a real PostgreSQL 15
holding the simulator's schema, through a role that may only read the schedule's two tables, as
roles/spse sets it up on the SPSE host."""

from __future__ import annotations

import json
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lpse_exporter.__main__ import main
from lpse_exporter.collectors.base import LpseCollector
from lpse_exporter.collectors.schedule import ScheduleConfig, ScheduleError, ScheduleSource, read_schedule
from prometheus_client import CollectorRegistry, generate_latest
from spse_simulator.app import SCHEMA

from tests.backup.conftest import Cluster, new_cluster, remove_cluster

NOW = time.time()
# (tender code, name, stage, opens, closes) relative to now
TENDERS = [
    ("A1", "Rehabilitasi Gedung Dinas", "Upload Dokumen Penawaran", NOW - 86400, NOW + 1800),
    ("B2", "Pengadaan Laptop", "Upload Dokumen Penawaran", NOW - 86400, NOW + 5 * 3600),
    ("C3", "Jalan Desa", "Masa Sanggah", NOW - 3600, NOW + 3 * 86400),
    ("D4", "Jembatan", "Upload Dokumen Penawaran", NOW - 3 * 86400, NOW - 86400),
]
READER = pwd.getpwuid(0).pw_name  # psql logs in as the OS user, as the exporter's does by peer


@pytest.fixture(scope="module")
def spse_db() -> Iterator[Cluster]:
    pg = new_cluster()
    pg.start()
    try:
        pg.sql("postgres", "CREATE DATABASE spse")
        pg.as_postgres("psql", "-h", str(pg.socket_dir), "-d", "spse", "-v", "ON_ERROR_STOP=1", "-f", "-",
                       stdin=SCHEMA.encode())  # fmt: skip
        for kode, nama, tahap, mulai, selesai in TENDERS:
            pg.sql("spse", f"WITH t AS (INSERT INTO lelang (kode, nama, satker, pagu, closes_at) VALUES ('{kode}', "
                           f"'{nama}', 'Uji', 1, to_timestamp({selesai})) RETURNING id) INSERT INTO jadwal "
                           f"(lelang_id, tahap, mulai, selesai) SELECT id, '{tahap}', to_timestamp({mulai}), "
                           f"to_timestamp({selesai}) FROM t")  # fmt: skip
        # What roles/spse gives the exporter: a login that reads the schedule and nothing else.
        pg.sql("spse", f'CREATE ROLE "{READER}" LOGIN; ALTER ROLE "{READER}" SET default_transaction_read_only = on; '
                       f'GRANT SELECT ON jadwal, lelang TO "{READER}"')  # fmt: skip
        yield pg
    finally:
        remove_cluster(pg)


def config(pg: Cluster, query: str | None = None) -> ScheduleConfig:
    cfg = ScheduleConfig("spse", socket_dir=str(pg.socket_dir))
    return cfg if query is None else ScheduleConfig("spse", query, str(pg.socket_dir))


def metrics(cfg: ScheduleConfig) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LpseCollector([ScheduleSource(cfg)]))
    return generate_latest(registry).decode()


def test_the_closings_ahead_are_counted_and_the_open_stages_named(spse_db: Cluster) -> None:
    text = metrics(config(spse_db))
    assert 'lpse_exporter_collector_success{collector="spse_schedule"} 1.0' in text
    for within, n in (("1h", 1), ("24h", 2), ("7d", 3)):
        assert f'lpse_spse_schedule_closings{{within="{within}"}} {n:.1f}' in text
    # Every stage open now or closing within a day, named: what Prometheus keeps of the schedule.
    named = [x for x in text.splitlines() if x.startswith("lpse_spse_schedule_stage_closes_timestamp_seconds{")]
    assert [x.split('tender="')[1].split('"')[0] for x in named] == ["A1", "B2", "C3"]
    assert 'name="Rehabilitasi Gedung Dinas"' in named[0] and "lpse_spse_schedule_stage_opens_timestamp" in text
    (line,) = [x for x in text.splitlines() if x.startswith("lpse_spse_schedule_next_closing_timestamp_seconds ")]
    assert float(line.split()[1]) == pytest.approx(NOW + 1800, abs=1)


def test_a_past_window_gives_the_stages_open_in_it(spse_db: Cluster, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (stage,) = read_schedule(config(spse_db), NOW - 2 * 86400, NOW - 86400 - 3600)
    assert (stage.tender, stage.stage, round(stage.closes)) == ("D4", "Upload Dokumen Penawaran", round(NOW - 86400))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[spse_schedule]\ndatabase = "spse"\nsocket_dir = "{spse_db.socket_dir}"\n')
    assert main(["--config", str(cfg), "--spse-schedule", "--from", str(NOW), "--to", str(NOW + 6 * 3600)]) == 0
    assert [s["tender"] for s in json.loads(capsys.readouterr().out)] == ["A1", "B2", "C3"]  # C3 is open now


def test_a_wrong_query_is_named_and_the_role_cannot_write(spse_db: Cluster) -> None:
    wrong = "SELECT kode FROM lelang WHERE :window_start < :window_end"
    with pytest.raises(ScheduleError, match="must return 5 columns"):
        read_schedule(config(spse_db, wrong), NOW, NOW + 60)
    with pytest.raises(
        ScheduleError, match=r"permission denied for table penawaran.*lpse_exporter_spse_schedule_query"
    ):
        read_schedule(config(spse_db, "SELECT * FROM penawaran WHERE :window_start < :window_end"), NOW, NOW + 60)
    with pytest.raises(ScheduleError, match="read-only transaction"):
        read_schedule(config(spse_db, "DELETE FROM jadwal WHERE :window_start < :window_end"), NOW, NOW + 60)
    assert len(read_schedule(config(spse_db), NOW - 10 * 86400, NOW + 10 * 86400)) == 4, "nothing was deleted"
    broken = metrics(config(spse_db, "SELECT 1 FROM nowhere WHERE :window_start < :window_end"))
    assert 'lpse_exporter_collector_success{collector="spse_schedule"} 0.0' in broken
    assert "lpse_spse_schedule_closings" not in broken
