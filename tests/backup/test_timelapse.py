"""Months of nights in minutes: the backup job's decisions follow its clock (`LPSE_BACKUP_NOW`,
lpse_backup.clock), while real PostgreSQL, pgBackRest, restic, age, a real radosgw bucket and two
loop-device drives do the real work of every night. Between nights "SPSE" adds bids and
documents; the drives swap as the rota says; a drill runs every other cycle.

The site's cycle is compressed to keep the suite short (a night is a full run of the job, ~20 s
here): a full every CYCLE days and a swap every CYCLE days instead of weekly, enough nights for
retention to expire fulls on every target at least twice.

Asserted: full backups on the nights the schedule says, incremental ones otherwise; retention
expires fulls (and their WAL) in the local repository, the bucket and on each drive, so each
stays within its bound; each drive holds its own generations; every drill passes and compares
non-empty data; the metrics and the drive ledger agree with what happened.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lpse_backup.database import PgBackRest
from lpse_backup.offroom import Offroom, client
from lpse_backup.portable import COPIES, LATEST, backup_labels, copies, full_of
from lpse_lab.radosgw import S3Server

from tests.backup.conftest import ROTA, Cluster, make_drive, plug, unplug
from tests.backup.test_run import job_config, lpse_backup, metric

WIB = dt.timezone(dt.timedelta(hours=7))
START = dt.datetime(2027, 1, 4, 1, 30, tzinfo=WIB)  # a Monday night; ahead of the real clock
CYCLE = 2  # days between fulls, between drive swaps; the defaults say 7
NIGHTS = 5 * CYCLE  # five fulls: with 2 kept, three expire from each repository
RETENTION_FULL = 2  # repo1/repo2-retention-full of the test's pgbackrest.conf
GENERATIONS = 2
DUMPS = 3


@dataclass
class Site:
    pg: Cluster
    br: PgBackRest
    o: Offroom
    conf: Path
    drives: dict[str, Path]
    env: dict[str, str] = field(default_factory=dict)

    def at(self, night: dt.datetime) -> dict[str, str]:
        return self.env | {"LPSE_BACKUP_NOW": night.isoformat()}


@pytest.fixture()
def site(archived: tuple[Cluster, PgBackRest, Offroom], s3_server: S3Server, tmp_path: Path) -> Iterator[Site]:
    pg, br, o = archived
    base = pg.base
    conf = job_config(
        pg,
        br,
        o,
        s3_server,
        {
            "portable": {"rotate_days": CYCLE, "generations": GENERATIONS},
            "database": {"full_every_days": CYCLE},
            "dump": {"identity_file": f"{base}/age.key"},
            "retention": {"s3": [7, 2, 1], "portable": [3, 2, 1], "dumps": DUMPS},
            "verify": {"restic_subset": "10%", "s3_database_days": 4 * CYCLE},
            "drill": {"dir": f"{base}/drill", "margin_mib": 8, "checks": [{"table": "penawaran", "time_column": "at"}]},
        },
    )
    drives = {label: make_drive(tmp_path, label, size_mb=384) for label in ROTA}
    # The drill reads the live database over its socket, as on the server (PGHOST for psql).
    s = Site(pg, br, o, conf, drives, {"PGHOST": str(pg.socket_dir)})
    plug(drives[ROTA[0]], base / "media")
    try:
        yield s
    finally:
        if os.path.ismount(base / "media"):
            unplug(base / "media")


def spse_day(s: Site, day: int, night: dt.datetime) -> None:
    """A day of SPSE: bids committed, bid documents uploaded (dated that day)."""
    s.pg.sql("postgres", f"INSERT INTO penawaran (nilai) SELECT {day} * 1000 + g FROM generate_series(1, 200) g")
    folder = s.pg.base / "docs" / f"lelang-{day + 2}"
    folder.mkdir(parents=True)
    for i in range(2):
        f = folder / f"penawaran-{i}.pdf"
        f.write_bytes(os.urandom(48 * 1024))
        when = (night - dt.timedelta(hours=12)).timestamp()
        os.utime(f, (when, when))


def fulls_in(repo: Path) -> list[str]:
    return [b for b in backup_labels(repo, "spse") if b.endswith("F")]


def wal_segments(names: list[str]) -> list[str]:
    return sorted({n[:24] for n in names if re.match(r"^[0-9A-F]{24}-", n)})


def oldest_backup_start(info: dict) -> str:
    return min(b["archive"]["start"] for b in info["backup"])


def repo_info(s: Site, repo: int, repo_path: Path | None = None) -> dict:
    where = [f"--repo{repo}-path={repo_path}"] if repo_path else []
    return json.loads(s.br.run(f"--repo={repo}", *where, "--output=json", "info"))[0]


def assert_bounded(s: Site, repo: int, wal_names: list[str], where: str) -> None:
    """At most RETENTION_FULL fulls, and no WAL older than the oldest backup kept."""
    info = repo_info(s, repo)
    fulls = [b for b in info["backup"] if b["type"] == "full"]
    assert len(fulls) <= RETENTION_FULL, f"{where}: {len(fulls)} fulls"
    if len(fulls) < RETENTION_FULL:
        return  # nothing expires before the retention is reached
    wal = wal_segments(wal_names)
    assert wal and wal[0] >= oldest_backup_start(info), f"{where}: WAL {wal[0]} older than the oldest backup"


def test_months_of_nights_stay_right(site: Site) -> None:
    s = site
    base = s.pg.base
    repo2 = Path(
        next(ln.split("=", 1)[1] for ln in s.br.config.read_text().splitlines() if ln.startswith("repo2-path"))
    )
    media = base / "media"
    plugged = ROTA[0]
    kinds: dict[int, str] = {}
    drills: list[str] = []
    held: dict[str, set[str]] = {label: set() for label in ROTA}
    nights_in: dict[str, int] = dict.fromkeys(ROTA, 0)
    for day in range(NIGHTS):
        night = START + dt.timedelta(days=day)
        if day and day % CYCLE == 0:  # the rota: the drive goes to the safe, the other one comes in
            out = lpse_backup(s.conf, "drive", "eject", env=s.at(night))
            assert out.returncode == 0 and f"Bring {ROTA[1] if plugged == ROTA[0] else ROTA[0]}" in out.stdout
            plugged = ROTA[1] if plugged == ROTA[0] else ROTA[0]
            plug(s.drives[plugged], media)
            assert lpse_backup(s.conf, "drive", "insert", env=s.at(night)).returncode == 0
        spse_day(s, day, night)
        nights_in[plugged] += 1
        res = lpse_backup(s.conf, "run", env=s.at(night))
        assert res.returncode == 0, f"night {day}:\n{res.stdout}{res.stderr}"
        if os.environ.get("LPSE_TIMELAPSE_VERBOSE"):
            print(f"--- night {day}\n{res.stdout}")
        line = next(ln for ln in res.stdout.splitlines() if ln.startswith("[database -> local] ok"))
        kinds[day] = "full" if "full backup" in line else "incr"
        assert "NOT a fresh copy" not in res.stdout
        held[plugged] |= {full_of(b) for b in backup_labels(media / LATEST, "spse")}
        if day % (2 * CYCLE) == 2 * CYCLE - 1:  # the drill, from the bucket and from the drive
            d = lpse_backup(s.conf, "drill", env=s.at(night + dt.timedelta(hours=2, minutes=30)))
            assert d.returncode == 0, f"drill after night {day}:\n{d.stdout}{d.stderr}"
            assert "5 of 5 restores passed the drill" in d.stdout, d.stdout
            counts = re.findall(r"rows compared: penawaran (\d+)", d.stdout)
            assert len(counts) == 2, d.stdout
            for count in counts:
                assert int(count) >= 200 * (day // 2), d.stdout  # far from empty
            assert all(int(n) > day for n in re.findall(r"(\d+) files identical", d.stdout)), d.stdout
            drills.append(d.stdout)

        # Bounded after every night: the local repository, the bucket, the drive in the server.
        local_wal = [p.name for p in (repo2 / "archive").rglob("*") if p.is_file()]
        assert_bounded(s, 2, local_wal, f"local repository, night {day}")
        s3 = client(s.o)
        keys = [
            obj["Key"].rsplit("/", 1)[-1]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s.o.bucket, Prefix="pgbackrest/archive/")
            for obj in page.get("Contents", [])
        ]
        assert_bounded(s, 1, keys, f"bucket, night {day}")
        on_drive = {full_of(b) for c in copies(media) for b in backup_labels(c, "spse")}
        # Each kept copy is the local repository of its night (at most RETENTION_FULL fulls).
        assert len(on_drive) <= GENERATIONS * RETENTION_FULL, f"drive {plugged}, night {day}: fulls {on_drive}"
        assert len(copies(media)) <= GENERATIONS + 1
        assert len(list((media / "dumps").iterdir())) <= DUMPS

    # Fulls exactly on the schedule's nights (every CYCLE days by the clock), incremental otherwise.
    assert [d for d, k in kinds.items() if k == "full"] == list(range(0, NIGHTS, CYCLE)), kinds
    # Retention expired fulls at least twice everywhere: 5 fulls taken, at most 2 kept.
    assert len(fulls_in(repo2)) == RETENTION_FULL
    assert len([b for b in repo_info(s, 1)["backup"] if b["type"] == "full"]) == RETENTION_FULL
    # Each drive holds its own generations: the fulls it saw while it was in, not the other's.
    unplug(media)
    for label in ROTA:
        plug(s.drives[label], media)
        try:
            mine = {full_of(b) for c in copies(media) for b in backup_labels(c, "spse")}
            assert mine and mine <= held[label], (label, mine, held[label])
            assert len(mine) >= GENERATIONS, (label, mine)  # it kept more than the server's newest
            assert (media / LATEST).is_symlink() and not list((media / COPIES).glob("*partial*"))
        finally:
            unplug(media)
    plug(s.drives[plugged], media)

    # The metrics say what happened, in the clock's time; the ledger knows both drives.
    last_night = (START + dt.timedelta(days=NIGHTS - 1)).timestamp()
    prom = base / "backup.prom"
    for dataset, target in (("database", "s3"), ("database", "portable"), ("dump", "portable"), ("documents", "s3")):
        assert metric(prom, "lpse_backup_last_success_timestamp_seconds", dataset, target) == last_night
    # The bucket's database is verified whole every 4 * CYCLE days from night 0: last on night 8.
    verified = metric(prom, "lpse_backup_last_verified_timestamp_seconds", "database", "s3")
    assert verified == (START + dt.timedelta(days=8)).timestamp()
    drill_prom = base / "drill.prom"
    assert metric(drill_prom, "lpse_backup_drill_last_run_success", "database", "portable") == 1
    ledger = json.loads((base / "state" / "drives.json").read_text())["drives"]
    assert set(ledger) == set(ROTA)
    nights_of = {label: {x["snapshot"] for x in ledger[label]["snapshots"]} for label in ROTA}
    assert {label: len(nights_of[label]) for label in ROTA} == nights_in  # each night on the drive that was in
    assert len(drills) == NIGHTS // (2 * CYCLE)


def test_faults_in_the_middle_of_the_months_lose_nothing_and_say_so(site: Site, tmp_path: Path) -> None:
    """The same harness, one night at a time: a drill with the drive at the safe, a drill without
    room, a night whose local database backup fails, a damaged drive ledger."""
    s = site
    base, media = s.pg.base, s.pg.base / "media"
    prom, drill_prom = base / "backup.prom", base / "drill.prom"
    night = START + dt.timedelta(days=100)
    spse_day(s, 100, night)
    assert lpse_backup(s.conf, "run", env=s.at(night)).returncode == 0

    # The drive is at the safe on drill day: one line, its drill skipped, the bucket's recorded.
    unplug(media)
    d = lpse_backup(s.conf, "drill", env=s.at(night + dt.timedelta(hours=3)))
    assert d.returncode == 0, d.stdout + d.stderr
    assert "portable drive absent: its drill is skipped" in d.stdout
    assert (
        "3 of 3 restores passed the drill; skipped (target absent): database->portable, documents->portable" in d.stdout
    )
    assert metric(drill_prom, "lpse_backup_drill_last_run_skipped", "database", "portable") == 1
    assert metric(drill_prom, "lpse_backup_drill_last_run_success", "database", "s3") == 1
    plug(s.drives[ROTA[0]], media)

    # A scratch filesystem too small for the restore: refused before anything is restored.
    small = tmp_path / "scratch.img"
    subprocess.run(["truncate", "-s", "16M", str(small)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(small)], check=True)
    scratch = base / "drill"
    scratch.mkdir(exist_ok=True)
    subprocess.run(["mount", "-o", "loop", str(small), str(scratch)], check=True)
    try:
        d = lpse_backup(s.conf, "drill", "--target", "s3", env=s.at(night + dt.timedelta(hours=4)))
        assert d.returncode == 1
        assert "not enough room for the drill of the database" in d.stdout, d.stdout
        assert metric(drill_prom, "lpse_backup_drill_last_run_success", "database", "s3") == 0
        assert sorted(p.name for p in scratch.iterdir()) == ["lost+found"]
    finally:
        subprocess.run(["umount", str(scratch)], check=True)

    # Tonight the local database backup fails (its repository not writable): the drive still
    # gets tonight's WAL, but the copy is not called fresh and its metric keeps the age of the
    # newest backup it holds.
    repo2 = Path(
        next(ln.split("=", 1)[1] for ln in s.br.config.read_text().splitlines() if ln.startswith("repo2-path"))
    )
    night2 = night + dt.timedelta(days=1)
    spse_day(s, 101, night2)
    (repo2 / "backup" / "spse").chmod(0o500)
    try:
        res = lpse_backup(s.conf, "run", env=s.at(night2))
    finally:
        (repo2 / "backup" / "spse").chmod(0o750)
    assert res.returncode == 1
    assert "[database -> local] FAILED" in res.stdout
    assert "NOT a fresh copy: tonight's database backup to the local repository failed" in res.stdout, res.stdout
    assert metric(prom, "lpse_backup_last_success_timestamp_seconds", "database", "portable") == night.timestamp()
    assert metric(prom, "lpse_backup_last_success_timestamp_seconds", "database", "s3") == night2.timestamp()

    # A damaged ledger: the drive's steps fail and say how to fix it; the rest is done and the
    # metrics are written.
    ledger = base / "state" / "drives.json"
    ledger.write_text('{"drives": {"LPSE-BACKUP-A": [')
    night3 = night2 + dt.timedelta(days=1)
    res = lpse_backup(s.conf, "run", env=s.at(night3))
    assert res.returncode == 1
    assert f"the drive ledger {ledger} is damaged" in res.stdout and f"mv {ledger} {ledger}.damaged" in res.stdout
    assert "FAILED: database->portable, dump->portable, documents->portable" in res.stdout
    assert metric(prom, "lpse_backup_last_success_timestamp_seconds", "documents", "s3") == night3.timestamp()
    ledger.rename(ledger.with_name("drives.json.damaged"))
    assert lpse_backup(s.conf, "run", env=s.at(night3 + dt.timedelta(hours=1))).returncode == 0
