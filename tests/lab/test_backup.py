"""Backups on the lab: the backup role on the SPSE host, radosgw on the off-room host as the
bucket, labelled drive images plugged into the SPSE host's USB port.

Every fault of issue 5 is made for real: the drive pulled out, a drive full, a stranger's
drive, the S3 endpoint dead (radosgw stopped), a wrong key, the job SIGKILLed midway, a
tampered pack. Each time the test checks what an operator would: the job's exit and message,
the metrics, that the previous copy still restores, and that WAL archiving was not stalled.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from conftest import monitoring_api, offroom_s3, run_playbook
from lpse_lab import lab, radosgw
from lpse_lab.cli import DRIVE_NAME, LPSE_BACKUP, lab_secrets

pytestmark = pytest.mark.lab

TEXTFILES = "/var/lib/lpse-exporter/textfile"
DRIVE = f"/media/{DRIVE_NAME}"


@pytest.fixture(scope="module")
def spse_host(lab_config: lab.LabConfig) -> lab.LabHost:
    return next(h for h in lab_config.hosts if h.name == "spse")


def backup_run_ended(spse: testinfra.host.Host, within: float) -> str:
    """The backup unit's state once its run has ended (failed, inactive), waiting up to `within` s."""
    deadline = time.monotonic() + within
    while (state := spse.run("systemctl is-active lpse-backup.service").stdout.strip()) in (
        "activating",
        "active",
        "deactivating",
    ):
        assert time.monotonic() < deadline, f"the backup run has not ended: {state}"
        time.sleep(0.5)
    return state


def fresh_drive(host: lab.LabHost, label: str, size_mb: int = 1024) -> Path:
    """A newly formatted drive of the rota, plugged in; returns where this machine sees it."""
    lab.unplug(host, DRIVE_NAME)
    lab.drive_image(label).unlink(missing_ok=True)
    lab.plug(host, lab.make_drive(label, size_mb), DRIVE_NAME)
    return lab.usb_port(host) / DRIVE_NAME


@pytest.fixture(scope="module")
def drive(provisioned: object, spse_host: lab.LabHost, spse: testinfra.host.Host) -> Iterator[Path]:
    """Drive lpse-backup-1 in the server, with one good run on it, for the module (tests that
    pull it out put it back)."""
    plugged = fresh_drive(spse_host, "lpse-backup-1")
    # Bids and their documents, so that the drill has rows and files to compare.
    spse.check_output(
        "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz "
        f"generate --tenders 2 --bids-per-tender 3 --documents-size 10M --seed {time.time_ns() % 2**31}"
    )
    res = run_backup(spse)
    assert res.rc == 0, res.stdout + res.stderr
    yield plugged
    lab.unplug(spse_host, DRIVE_NAME)


def run_backup(spse: testinfra.host.Host) -> testinfra.backend.base.CommandResult:
    return spse.run(f"{LPSE_BACKUP} run")


def prom(spse: testinfra.host.Host, name: str, file: str = "backup.prom") -> dict[tuple[str, ...], float]:
    """A metric of a textfile the job wrote, by its label values."""
    text = spse.file(f"{TEXTFILES}/{file}").content_string
    out = {}
    for m in re.finditer(rf"^{name}(?:{{(.*?)}})? (\S+)$", text, re.M):
        labels = tuple(re.findall(r'="([^"]*)"', m[1] or ""))
        out[labels] = float(m[2])
    return out


def psql(spse: testinfra.host.Host, query: str, db: str = "spse") -> str:
    res = spse.run("runuser -u postgres -- psql -X -A -t -v ON_ERROR_STOP=1 -d %s -c %s", db, query)
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def archiver(spse: testinfra.host.Host) -> tuple[str, int]:
    """(last archived WAL segment, failed attempts) from pg_stat_archiver."""
    last, failed = psql(spse, "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver").split("|")
    return last, int(failed)


def write_and_switch(spse: testinfra.host.Host, detail: str) -> str:
    """Commit a row, close the WAL segment; returns the segment that must be archived."""
    psql(spse, f"INSERT INTO audit_log (actor, action, detail) VALUES ('lab-test', 'marker', '{detail}')")
    return psql(spse, "SELECT pg_walfile_name(pg_switch_wal())")


def wait_archived(spse: testinfra.host.Host, segment: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while archiver(spse)[0] < segment:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def offroom_objects(lab_config: lab.LabConfig) -> list[bytes]:
    """Every object (every version) in the off-room bucket, as the storage holds it."""
    bucket = "spse-backup"
    s3 = offroom_s3(lab_config, bucket)
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.append(s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read())
    return out


def drive_files(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in root.rglob("*") if p.is_file()]


# --- the role ---------------------------------------------------------------------------


def test_role_keeps_keys_private_and_schedules_backups_drills_and_status(
    spse: testinfra.host.Host, provisioned: object
) -> None:
    for name in ("offroom-secret-key", "restic-password", "age-identity", "config.toml"):
        f = spse.file(f"/etc/lpse-backup/{name}")
        assert (f.mode, f.user, f.group) == (0o600, "root", "root"), name
    conf = spse.file("/etc/pgbackrest/pgbackrest.conf")
    assert (conf.mode, conf.user, conf.group) == (0o640, "root", "postgres")
    for timer in ("lpse-backup.timer", "lpse-backup-drill.timer", "lpse-backup-status.timer"):
        assert spse.service(timer).is_enabled and spse.service(timer).is_running, timer
    assert psql(spse, "SHOW archive_mode") == "on"
    assert "archive-push" in psql(spse, "SHOW archive_command")
    assert spse.run("runuser -u postgres -- pgbackrest --stanza=spse check").rc == 0


# --- a good run, what it stores, the drill ------------------------------------------------


def test_timer_unit_copies_every_dataset_to_every_target_and_prometheus_sees_it(
    spse: testinfra.host.Host, drive: Path, address: dict[str, str]
) -> None:
    since = spse.check_output("date '+%Y-%m-%d %H:%M:%S'")
    res = spse.run("systemctl start lpse-backup.service")
    journal = spse.check_output(f"journalctl -u lpse-backup.service -t lpse-backup --since '{since}' --no-pager")
    assert res.rc == 0, journal[-3000:]
    assert "10 of 10 copies made" in journal
    ok = prom(spse, "lpse_backup_last_run_success")
    assert len(ok) == 10 and set(ok.values()) == {1.0}, ok
    assert {t for _, t in ok} == {"s3", "local", "portable"}
    assert {d for d, _ in ok} == {"database", "dump", "documents", "system"}
    assert prom(spse, "lpse_backup_last_verify_success")[("documents", "portable")] == 1.0
    for sub in ("pgbackrest/backup/spse", "documents/snapshots", "dumps"):
        assert any((drive / sub).iterdir()), sub
    # The exporter serves the textfile and Prometheus has it (scraped every 2 s in the lab).
    deadline = time.monotonic() + 30
    while True:
        q = urllib.parse.urlencode({"query": "sum(lpse_backup_last_run_success)"})
        result = monitoring_api(address["monitor"], "prometheus", f"api/v1/query?{q}")["data"]["result"]
        if result and float(result[0]["value"][1]) == 10:
            break
        assert time.monotonic() < deadline, result
        time.sleep(1)


def test_nothing_stored_is_plaintext_and_no_key_travels_with_the_backups(
    spse: testinfra.host.Host, drive: Path, lab_config: lab.LabConfig
) -> None:
    marker = f"LPSE-PLAINTEXT-{uuid.uuid4().hex}"
    spse.run(f"printf '%s\\n' {marker} {marker} > /var/lib/spse/documents/penawaran-marker.txt")
    write_and_switch(spse, marker)
    res = run_backup(spse)
    assert res.rc == 0, res.stdout + res.stderr
    secrets = lab_secrets()
    needles = [marker.encode()] + [
        secrets[k].encode()
        for k in (
            "vault_backup_restic_password",
            "vault_backup_pgbackrest_cipher_pass",
            "vault_backup_offroom_secret_key",
            "vault_backup_age_identity",
        )
    ]
    stored = drive_files(drive) + offroom_objects(lab_config)
    assert len(stored) > 50
    for blob in stored:
        for needle in needles:
            assert needle not in blob, f"{needle[:12]!r}... found in a stored file"


def test_drill_restores_from_bucket_and_drive_and_measures_the_restore(spse: testinfra.host.Host, drive: Path) -> None:
    since = spse.check_output("date '+%Y-%m-%d %H:%M:%S'")
    res = spse.run("systemctl start lpse-backup-drill.service")
    # Only the job's own lines (runuser's PAM sessions log into the unit's journal too).
    journal = spse.check_output(f"journalctl -u lpse-backup-drill.service -t lpse-backup --since '{since}' --no-pager")
    assert res.rc == 0, journal
    assert "5 of 5 restores passed the drill" in journal
    m = re.search(r"\[drill database <- s3\] ok in [\d.]+ s: rows compared: lelang (\d+), penawaran (\d+)", journal)
    assert m and int(m[1]) >= 2 and int(m[2]) >= 1, journal
    assert re.search(r"\[drill documents <- portable\] ok in [\d.]+ s: \d+ files identical", journal)
    took = prom(spse, "lpse_backup_drill_last_run_duration_seconds", "drill.prom")
    assert set(took) == {
        ("database", "s3"),
        ("documents", "s3"),
        ("database", "portable"),
        ("documents", "portable"),
        ("dump", "local"),
    }
    assert all(v > 0 for v in took.values())
    assert set(prom(spse, "lpse_backup_drill_last_run_success", "drill.prom").values()) == {1.0}
    assert not spse.file("/var/tmp/lpse-backup-drill/pg").exists, "the throwaway cluster was left behind"


def test_status_reports_the_drive_and_the_wal_archive(
    spse: testinfra.host.Host, drive: Path, spse_host: lab.LabHost
) -> None:
    assert spse.run("systemctl start lpse-backup-status.service").rc == 0
    assert prom(spse, "lpse_backup_portable_media_present", "status.prom") == {("lpse-backup-1",): 1.0}
    assert prom(spse, "lpse_backup_portable_media_free_bytes", "status.prom")[("lpse-backup-1",)] > 100 * 2**20
    assert prom(spse, "lpse_backup_wal_ready_segments", "status.prom")[()] == 0
    assert prom(spse, "lpse_backup_wal_last_archived_timestamp_seconds", "status.prom")[()] > time.time() - 3600
    lab.unplug(spse_host, DRIVE_NAME)
    try:
        assert spse.run("systemctl start lpse-backup-status.service").rc == 0
        assert prom(spse, "lpse_backup_portable_media_present", "status.prom") == {("",): 0.0}
    finally:
        lab.plug(spse_host, lab.drive_image("lpse-backup-1"), DRIVE_NAME)


# --- faults -------------------------------------------------------------------------------


def test_unplugged_drive_fails_only_the_drive_and_never_stalls_wal_archiving(
    spse: testinfra.host.Host, drive: Path, spse_host: lab.LabHost
) -> None:
    lab.unplug(spse_host, DRIVE_NAME)
    try:
        _, failed_before = archiver(spse)
        res = run_backup(spse)
        assert res.rc == 1
        assert "Plug in the next drive of the rota" in res.stdout
        assert (
            "6 of 10 copies made; FAILED: database->portable, dump->portable, documents->portable, system->portable"
            in (res.stdout)
        )
        ok = prom(spse, "lpse_backup_last_run_success")
        assert all(v == (0.0 if t == "portable" else 1.0) for (_, t), v in ok.items()), ok
        assert spse.run(f"ls -A {DRIVE}").stdout == "", "something was written to the bare mount point"
        segment = write_and_switch(spse, "while the drive is out")
        assert wait_archived(spse, segment, 30), "WAL archiving stalled without the drive"
        assert archiver(spse)[1] == failed_before
    finally:
        lab.plug(spse_host, lab.drive_image("lpse-backup-1"), DRIVE_NAME)


def test_after_a_crash_commits_reach_the_archive_within_archive_timeout(
    spse: testinfra.host.Host, provisioned: object
) -> None:
    # The server loses power: PostgreSQL is killed, then started again. Without the role's
    # checkpoint after the start, the checkpointer slept until its next checkpoint (minutes) and
    # WAL segments were not closed on archive_timeout (30 s in the lab) in the meantime.
    assert spse.run("systemctl kill -s KILL postgresql@15-main").rc == 0
    time.sleep(1)
    assert spse.run("systemctl start postgresql@15-main").rc == 0
    psql(spse, "INSERT INTO audit_log (actor, action, detail) VALUES ('lab-test', 'marker', 'after a crash')")
    segment = psql(spse, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    assert wait_archived(spse, segment, 30 + 20), "the commit was not archived within archive_timeout"


def test_a_stranger_drive_is_refused_and_left_untouched(spse: testinfra.host.Host, spse_host: lab.LabHost) -> None:
    stranger = fresh_drive(spse_host, "usb-pribadi", size_mb=64)
    try:
        res = run_backup(spse)
        assert res.rc == 1
        assert "labelled 'usb-pribadi', not one of the rota" in res.stdout
        assert sorted(p.name for p in stranger.iterdir()) == ["lost+found"]
    finally:
        lab.unplug(spse_host, DRIVE_NAME)
        lab.drive_image("usb-pribadi").unlink(missing_ok=True)
        lab.plug(spse_host, lab.drive_image("lpse-backup-1"), DRIVE_NAME)


def test_a_full_drive_is_refused_and_what_it_holds_stays(spse: testinfra.host.Host, spse_host: lab.LabHost) -> None:
    full = fresh_drive(spse_host, "lpse-backup-2", size_mb=64)
    try:
        keep = full / "kept-from-earlier.bin"
        st = os.statvfs(full)
        size = st.f_bavail * st.f_frsize - 2**20  # leave 1 MiB: too little for any dataset
        with keep.open("wb") as f:
            f.write(b"\x5a" * size)
        res = run_backup(spse)
        assert res.rc == 1
        assert re.search(r"drive lpse-backup-2 has [\d.]+ GiB free", res.stdout), res.stdout
        # The dump (tens of KiB) still fits; nothing bigger is started.
        assert "FAILED: database->portable, documents->portable, system->portable" in res.stdout
        assert keep.read_bytes() == b"\x5a" * size
        assert not list(full.rglob("*.partial")), "a half-written file was left on the drive"
    finally:
        lab.unplug(spse_host, DRIVE_NAME)
        lab.drive_image("lpse-backup-2").unlink(missing_ok=True)
        lab.plug(spse_host, lab.drive_image("lpse-backup-1"), DRIVE_NAME)


@pytest.mark.lab_backup_faults
def test_dead_s3_endpoint_fails_clearly_and_the_wal_archive_catches_up(
    spse: testinfra.host.Host, drive: Path, lab_config: lab.LabConfig
) -> None:
    state = lab_config.offroom.dir / "radosgw"
    radosgw.stop_gateway(state)
    try:
        _, failed_before = archiver(spse)
        segment = write_and_switch(spse, "while the bucket is unreachable")
        res = run_backup(spse)
        assert res.rc == 1
        assert "does not answer" in res.stdout and "check the link to the off-room site" in res.stdout
        # pgBackRest finishes a backup only once its last WAL segment is archived, and a push
        # waits for every repository: the local database backup fails too (the drive keeps the
        # last one). Everything else reaches the drive.
        assert "FAILED: database->s3, database->local, dump->s3, documents->s3, system->s3" in res.stdout
        ok = prom(spse, "lpse_backup_last_run_success")
        assert ok[("documents", "portable")] == 1.0 and ok[("documents", "s3")] == 0.0
        assert archiver(spse)[1] > failed_before, "archiving into the dead bucket did not fail"
        assert spse.run("systemctl start lpse-backup-status.service").rc == 0
        assert prom(spse, "lpse_backup_wal_ready_segments", "status.prom")[()] >= 1
    finally:
        radosgw.start_gateway(state)
    # After three failures PostgreSQL retries the archive_command a minute later, or as soon as a
    # new segment is ready, as on a server with writes: the archive catches up from the oldest.
    write_and_switch(spse, "the bucket answers again")
    assert wait_archived(spse, segment, 150), "the WAL archive did not catch up"
    res = run_backup(spse)
    assert res.rc == 0, res.stdout + res.stderr


def test_wrong_restic_key_writes_nothing_and_says_so(spse: testinfra.host.Host, drive: Path) -> None:
    key = "/etc/lpse-backup/restic-password"
    assert spse.run(f"cp -p {key} {key}.good").rc == 0
    snapshots = sorted(p.name for p in (drive / "documents" / "snapshots").iterdir())
    spse.run(f"printf 'not-the-key\\n' > {key}")
    try:
        res = run_backup(spse)
        assert res.rc == 1
        assert "the restic key does not open" in res.stdout
        assert sorted(p.name for p in (drive / "documents" / "snapshots").iterdir()) == snapshots
    finally:
        spse.run(f"mv {key}.good {key}")


def test_a_repository_written_with_another_key_stops_the_role_and_is_left_as_it_is(
    spse: testinfra.host.Host, drive: Path
) -> None:
    # What a local repository encrypted with another cipher pass looks like to pgBackRest:
    # its info files are bytes it cannot decrypt (a vault from another machine, regenerated).
    info = "/var/lib/pgbackrest/backup/spse/backup.info"
    assert spse.run(f"cp -p {info} {info}.good && cp -p {info}.copy {info}.copy.good").rc == 0
    try:
        spse.check_output(f"head -c 4096 /dev/urandom | tee {info} > {info}.copy")
        stranger = spse.check_output(f"sha256sum {info} {info}.copy")
        res = run_playbook("servers.yml", "--limit", "spse_servers")
        assert res.rc != 0
        assert "pgBackRest cannot read repository 2 (/var/lib/pgbackrest)" in res.text, res.output[-3000:]
        assert "vault_backup_pgbackrest_cipher_pass" in res.text
        assert "Nothing was changed in the repositories" in res.text
        assert spse.check_output(f"sha256sum {info} {info}.copy") == stranger
    finally:
        spse.run(f"mv {info}.good {info} && mv {info}.copy.good {info}.copy")
    res = spse.run("runuser -u postgres -- pgbackrest --stanza=spse --repo=2 info")
    assert res.rc == 0 and "status: ok" in res.stdout, res.stdout + res.stderr


def test_sigkill_midway_keeps_the_last_good_copy_and_the_next_run_succeeds(
    spse: testinfra.host.Host, drive: Path
) -> None:
    # Make the document copy take a while: 150 MiB of new, incompressible bids.
    spse.run("head -c 150M /dev/urandom > /var/lib/spse/documents/penawaran-besar.bin")
    try:
        since = spse.check_output("date '+%Y-%m-%d %H:%M:%S'")
        spse.run("systemctl start --no-block lpse-backup.service")
        deadline = time.monotonic() + 120
        while (
            "[documents -> s3] ..."
            not in spse.run(f"journalctl -u lpse-backup.service --since '{since}' --no-pager").stdout
        ):
            assert time.monotonic() < deadline, "the run never reached the documents"
            time.sleep(0.2)
        spse.run("systemctl kill -s KILL lpse-backup.service")
        # systemctl kill returns before systemd has reaped the run: "activating" until then.
        assert backup_run_ended(spse, within=60) == "failed"
        # The copies made before stay good: the drill restores from both targets.
        res = spse.run(f"{LPSE_BACKUP} drill")
        assert res.rc == 0, res.stdout + res.stderr
        res = run_backup(spse)
        assert res.rc == 0, res.stdout + res.stderr
    finally:
        spse.run("rm -f /var/lib/spse/documents/penawaran-besar.bin")


def test_a_tampered_pack_is_caught_and_never_counted_as_good(spse: testinfra.host.Host, spse_host: lab.LabHost) -> None:
    other = fresh_drive(spse_host, "lpse-backup-2", size_mb=512)
    try:
        assert run_backup(spse).rc == 0
        good_at = prom(spse, "lpse_backup_last_success_timestamp_seconds")[("documents", "portable")]
        pack = max((other / "documents" / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
        data = bytearray(pack.read_bytes())
        data[len(data) // 2] ^= 0xFF
        pack.write_bytes(bytes(data))
        res = run_backup(spse)
        assert res.rc == 1
        assert "[documents -> portable] FAILED" in res.stdout
        assert prom(spse, "lpse_backup_last_run_success")[("documents", "portable")] == 0.0
        assert prom(spse, "lpse_backup_last_verify_success")[("documents", "portable")] == 0.0
        assert prom(spse, "lpse_backup_last_success_timestamp_seconds")[("documents", "portable")] == good_at
    finally:
        lab.unplug(spse_host, DRIVE_NAME)
        lab.drive_image("lpse-backup-2").unlink(missing_ok=True)
        lab.plug(spse_host, lab.drive_image("lpse-backup-1"), DRIVE_NAME)


# The drive's copies in the order a night makes them. The drive is pulled under each way of
# copying once: the database's repository generation, a dump file, a restic snapshot (the
# system copy is a restic snapshot too; pulled under the documents, it fails with them).
PORTABLE_COPIES = ("database", "dump", "documents", "system")
PULLED_UNDER = ("database", "dump", "documents")


def fresh_data(spse: testinfra.host.Host) -> None:
    """A few new MiB in the database and the documents, so that each copy to the slowed drive takes seconds."""
    psql(spse, "CREATE TABLE IF NOT EXISTS lab_pull (b text)")
    psql(spse, "TRUNCATE lab_pull")
    psql(spse, "COPY lab_pull FROM PROGRAM 'head -c 1M /dev/urandom | base64 -w0'")
    spse.check_output("head -c 2M /dev/urandom > /var/lib/spse/documents/lab-pull.bin")


@pytest.mark.lab_backup_faults
def test_drive_pulled_under_a_copy_counts_nothing_and_keeps_its_earlier_copy(
    spse: testinfra.host.Host, spse_host: lab.LabHost, drive: Path
) -> None:
    # The drive's device fails under the copy (lpse_lab.faultydrive), as a pulled USB drive does;
    # then the mount goes, as an automounter drops it. At 512 KiB/s each copy lasts seconds.
    image = lab.drive_image("lpse-backup-1")
    lab.drive_speed(image, 512)
    try:
        for dataset in PULLED_UNDER:
            fresh_data(spse)
            good = prom(spse, "lpse_backup_last_success_timestamp_seconds")
            since = spse.check_output("date '+%Y-%m-%d %H:%M:%S'")
            spse.check_output("systemctl start --no-block lpse-backup.service")
            journal = f"journalctl -u lpse-backup.service --since '{since}' --no-pager -o cat"
            deadline = time.monotonic() + 180
            while f"[{dataset} -> portable] ..." not in spse.run(journal).stdout:
                assert time.monotonic() < deadline, f"the run never reached {dataset} -> portable"
                time.sleep(0.1)
            lab.unplug(spse_host, DRIVE_NAME)
            state = backup_run_ended(spse, within=deadline + 300 - time.monotonic())
            out = spse.run(journal).stdout
            assert state == "failed", out
            ok = prom(spse, "lpse_backup_last_run_success")
            at = prom(spse, "lpse_backup_last_success_timestamp_seconds")
            for later in PORTABLE_COPIES[PORTABLE_COPIES.index(dataset) :]:
                assert f"[{later} -> portable] ok" not in out, f"pulled under {dataset}:\n{out}"
                assert ok[(later, "portable")] == 0.0, f"{later} counted ok after the pull under {dataset}"
                assert at[(later, "portable")] == good[(later, "portable")]
            stray = spse.run(f"find {DRIVE} -mindepth 1 -print -quit").stdout.strip()
            assert not stray, f"written to the server's own disk after the pull: {stray}"
            lab.plug(spse_host, image, DRIVE_NAME)
    finally:
        lab.drive_speed(image, None)
        if not lab.plugged(spse_host):
            lab.plug(spse_host, image, DRIVE_NAME)
        psql(spse, "DROP TABLE IF EXISTS lab_pull")
        spse.run("rm -f /var/lib/spse/documents/lab-pull.bin")
    # Plugged in again, the drive still restores what it held before the pulls.
    res = spse.run(f"{LPSE_BACKUP} drill --target portable")
    assert res.rc == 0, res.stdout + res.stderr
    drilled = res.stdout
    assert re.search(r"\[drill database <- portable\] ok in [\d.]+ s: rows compared: lelang [1-9]", drilled), drilled
    assert re.search(r"\[drill documents <- portable\] ok in [\d.]+ s: [1-9]\d* files identical", drilled), drilled


def test_key_escrow_sheet_holds_every_key_and_only_its_reader_can_open_it(provisioned: object, tmp_path: Path) -> None:
    sheet = tmp_path / "lpse-keys.txt"
    run = run_playbook("key-escrow.yml", "-e", f"escrow_sheet={sheet}")
    assert run.rc == 0, run.output[-2000:]
    assert sheet.stat().st_mode & 0o777 == 0o600
    text = sheet.read_text()
    secrets = lab_secrets()
    for key in (
        "vault_backup_restic_password",
        "vault_backup_pgbackrest_cipher_pass",
        "vault_backup_offroom_secret_key",
        "vault_backup_age_identity",
    ):
        assert secrets[key] in text, key
        assert secrets[key] not in run.output, f"{key} leaked into the playbook's output"
    assert "lpse-backup-1, lpse-backup-2" in text
