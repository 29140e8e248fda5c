"""Backup and restore on the lab with a grown SPSE: throughput per target, RPO, RTO by part and
whole (a bare server to SPSE serving the restored data), and the ratio of our encrypted, verified
backups to a plain `tar | zstd | age` of the same data.

Run as root on a lab provisioned with a document disk big enough (the tests' is 512 MiB); it
replaces the SPSE host twice, so the lab is for this run only afterwards (`lpse-lab destroy`):
    .venv/bin/lpse-lab destroy
    export LPSE_LAB_DISK_MB=spse-docs=3584     # what it asks for with --docs-gb 2
    .venv/bin/lpse-lab demo
    .venv/bin/python benchmarks/backup.py [--db-gb 1] [--docs-gb 2] [--skip-rpo] [--skip-disaster]

What it does, on the SPSE host:
1. Grows SPSE's data: bids and documents with the simulator itself, the database with bulk rows
   in its audit_log, to at least --db-gb and --docs-gb.
2. Runs `lpse-backup run --full` (full database backups, the first copy of the new documents), then
   `lpse-backup run` after 1 % more (incremental), on a fresh 16 GiB drive.
3. Baselines, side by side on the same data: `tar -cf - <database files> <documents> | zstd -T0
   | age -r <recipient>` into one file on the same drive, and streamed into a bucket of the same
   S3 server (no verification, no PITR, no deduplication). Each target's ratio divides by the
   baseline to that target.
4. RTO by part: `lpse-backup drill` per target (database into a throwaway cluster, documents into
   a scratch directory).
5. RPO: a writer commits a timestamped row every 100 ms; PostgreSQL is SIGKILLed (the server is
   lost); the newest copy in the bucket is restored to the end of its WAL; RPO = newest
   committed row minus newest restored row. Target: at most 60 s.
6. RTO whole, twice: the SPSE host is replaced by a bare one (`lpse-lab rebuild`, not counted:
   that is the new hardware), then bootstrap (pyinfra) and `playbooks/restore.yml`, which
   provisions it and restores, from the bucket to a point in time and then, on another bare host,
   from the drive to its newest copy; the clock stops when SPSE answers on the restored data.
   Target: 10 min each.
The figures also go to benchmarks/results/backup.json.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

import figures
from lpse_lab import lab
from lpse_lab.cli import DRIVE_NAME, LPSE_BACKUP, ansible_env, bootstrap, playbook_cmd

DOCS = "/var/lib/spse/documents"
DOCS_DISK = "spse-docs"  # its label in inventories/lab/hosts.yml
LAB_CA = lab.STATE_DIR / "pki" / "lab-ca.crt"
# What lpse_backup.steps prints for a copy: "[documents -> s3] ok in 12.3 s, 45.6 MiB, verified (3.2 s)".
PAIR = re.compile(r"^\[(\w+) -> (\w+)\] ok in ([\d.]+) s, ([\d.]+) MiB, [^(\n]*(?:\(([\d.]+) s\))?", re.M)
DRILL = re.compile(r"^\[drill (\w+) <- (\w+)\] (ok in ([\d.]+) s|FAILED: .*)", re.M)
RTO_TARGET_S = 600


@dataclass
class Host:
    address: str

    def sh(self, command: str, stdin: str = "", timeout: float = 7200, check: bool = True) -> str:
        res = subprocess.run(
            lab.ssh_command(self.address, f"sudo sh -c {shlex.quote(command)}"),
            input=stdin, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise SystemExit(f"on {self.address}: {command[:120]}\nexit {res.returncode}: {res.stderr[-1500:]}")
        return res.stdout

    def sql(self, query: str) -> str:
        return self.sh("runuser -u postgres -- psql -X -A -t -v ON_ERROR_STOP=1 -d spse", stdin=query).strip()


def docs_disk_mb(docs_gb: float) -> int:
    """Room for the documents, a night's growth and the restore's own work."""
    return int(docs_gb * 1024 * 1.25) + 1024


def generate(h: Host, tenders: int, documents_bytes: int) -> None:
    h.sh(
        "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz generate "
        f"--tenders {tenders} --bids-per-tender 10 --documents-size {documents_bytes} --seed {time.time_ns() % 2**31}"
    )


def grow(h: Host, db_gb: float, docs_gb: float) -> tuple[int, int]:
    """Bring the database and the document store up to the sizes; returns bytes of each."""
    have = int(h.sh(f"du -sb {DOCS} | cut -f1"))
    if have < docs_gb * 2**30:
        generate(h, 2000, int(docs_gb * 2**30) - have)
    while int(h.sql("SELECT pg_database_size('spse');")) < db_gb * 2**30:
        h.sql(
            "INSERT INTO audit_log (actor, action, detail) SELECT 'benchmark', 'bulk', "
            "md5(random()::text) || md5(random()::text) || repeat(md5(g::text), 3) FROM generate_series(1, 1000000) g;"
        )
    return int(h.sql("SELECT pg_database_size('spse');")), int(h.sh(f"du -sb {DOCS} | cut -f1"))


@dataclass(frozen=True)
class Copy:
    mib: float  # what the target took in
    seconds: float  # copy and its check
    verify_s: float  # the check alone (pgbackrest verify, restic check): the baseline has none

    @property
    def copy_s(self) -> float:
        return self.seconds - self.verify_s


def archive_caught_up(h: Host) -> None:
    """Wait until every WAL segment written so far is archived: growing the database writes GBs of
    WAL, which the asynchronous archiver would otherwise push to both repositories (compressing,
    encrypting, uploading) while the copies and the baseline are being timed."""
    segment = h.sql("SELECT pg_walfile_name(pg_switch_wal());")
    for _ in range(3600):
        if h.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver;") >= segment:
            return
        time.sleep(1)
    raise SystemExit(f"WAL segment {segment} was not archived within an hour: see /var/log/pgbackrest")


def timed_run(h: Host, *args: str) -> dict[tuple[str, str], Copy]:
    """What each dataset/target pair of one `lpse-backup run` took."""
    archive_caught_up(h)
    out = h.sh(shlex.join([LPSE_BACKUP, "run", *args]))
    return {(m[1], m[2]): Copy(float(m[4]), float(m[3]), float(m[5] or 0.0)) for m in PAIR.finditer(out)}


# The bucket baseline: one streamed upload, through the backup job's own S3 settings and client,
# into a bucket of its own without object lock (so that it can be removed afterwards).
TO_BUCKET = """
import sys
from pathlib import Path
from lpse_backup.offroom import client
from lpse_backup.settings import Settings
o = Settings.load(Path("/etc/lpse-backup/config.toml")).offroom
s3, bucket = client(o), "lpse-bench-baseline"
if sys.argv[1] == "put":
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.upload_fileobj(sys.stdin.buffer, bucket, "baseline.tar.zst.age")
else:
    s3.delete_object(Bucket=bucket, Key="baseline.tar.zst.age")
    s3.delete_bucket(Bucket=bucket)
"""


def baseline(h: Host, recipient: str, target: str) -> float:
    """Seconds for tar | zstd | age of the database files and the documents onto the drive
    ("portable") or into the off-room bucket ("s3")."""
    h.sh("apt-get -o DPkg::Lock::Timeout=600 install -y -q zstd >/dev/null")  # after unattended-upgrades
    h.sh("cat > /var/tmp/bench-to-bucket.py", stdin=TO_BUCKET)
    h.sh("runuser -u postgres -- psql -X -q -c CHECKPOINT")
    archive_caught_up(h)
    sink = {
        "portable": f"> /media/{DRIVE_NAME}/baseline.tar.zst.age && sync",
        "s3": "| /opt/lpse-backup/venv/bin/python /var/tmp/bench-to-bucket.py put",
    }[target]
    t0 = time.monotonic()
    h.sh(
        f"tar -C / -cf - var/lib/postgresql/15/main {DOCS.lstrip('/')} 2>/dev/null | zstd -q -T0 -3 "
        f"| age -r {recipient} {sink}"
    )
    took = time.monotonic() - t0
    if target == "portable":
        h.sh(f"rm -f /media/{DRIVE_NAME}/baseline.tar.zst.age")
    else:
        h.sh("/opt/lpse-backup/venv/bin/python /var/tmp/bench-to-bucket.py remove")
    return took


def rpo(h: Host, kill_after: float) -> float:
    """Seconds of committed rows missing after restoring the bucket's copy to its end, when the
    server is lost `kill_after` seconds into a steady stream of commits."""
    h.sql("CREATE TABLE IF NOT EXISTS bench_rpo (at timestamptz NOT NULL DEFAULT clock_timestamp());")
    writer = (
        "import subprocess, time\n"
        f"end = time.time() + {kill_after + 5}\n"
        "while time.time() < end:\n"
        "    out = subprocess.run(['runuser','-u','postgres','--','psql','-X','-A','-t','-d','spse','-c',"
        '"INSERT INTO bench_rpo DEFAULT VALUES RETURNING extract(epoch FROM at)"],capture_output=True,text=True)\n'
        "    if out.returncode: break\n"
        "    open('/var/tmp/bench-rpo.log','a').write(out.stdout.split()[0]+'\\n')\n"
        "    time.sleep(0.1)\n"
    )
    h.sh("rm -f /var/tmp/bench-rpo.log && cat > /var/tmp/bench-rpo.py", stdin=writer)
    h.sh(
        "systemctl reset-failed bench-rpo-writer 2>/dev/null; "
        "systemd-run --unit=bench-rpo-writer python3 /var/tmp/bench-rpo.py"
    )
    time.sleep(kill_after)
    h.sh("systemctl kill -s KILL postgresql@15-main")  # the server is lost, mid-write
    time.sleep(6)
    committed = float(h.sh("tail -n 1 /var/tmp/bench-rpo.log"))
    # What the bucket holds: restore its newest backup and all archived WAL into a throwaway cluster.
    h.sh(
        "rm -rf /var/tmp/bench-restore && install -d -o postgres -m 700 /var/tmp/bench-restore && "
        "runuser -u postgres -- pgbackrest --stanza=spse --repo=1 --pg1-path=/var/tmp/bench-restore "
        "--archive-mode=off restore"
    )
    h.sh(
        "cd /var/tmp/bench-restore && printf \"port = 5498\\nlisten_addresses = ''\\n"
        "unix_socket_directories = '/var/tmp/bench-restore'\\nmax_connections = 200\\n"
        "hba_file = '/var/tmp/bench-restore/hba'\\nident_file = '/var/tmp/bench-restore/ident'\\n\" > postgresql.conf "
        "&& echo 'local all postgres peer' > hba && touch ident && chown postgres postgresql.conf hba ident && "
        "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/tmp/bench-restore -w -t 3600 "
        "-l /var/tmp/bench-restore/log start"
    )
    psql = "runuser -u postgres -- psql -X -A -t -h /var/tmp/bench-restore -p 5498"
    for _ in range(3600):  # until the restored cluster has replayed all the WAL it was given
        if h.sh(f"{psql} -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null", check=False).strip() == "f":
            break
        time.sleep(1)
    else:
        raise SystemExit("the restored cluster did not finish its recovery in an hour: see /var/tmp/bench-restore/log")
    restored = h.sh(f"{psql} -d spse -c 'SELECT extract(epoch FROM max(at)) FROM bench_rpo'").strip()
    h.sh(
        "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/tmp/bench-restore -m immediate stop; "
        "rm -rf /var/tmp/bench-restore; systemctl start postgresql@15-main; systemctl stop bench-rpo-writer || true"
    )
    return committed - float(restored)


def serves(address: str) -> bool:
    page = subprocess.run(
        ["curl", "-sf", "--max-time", "10", "--cacert", str(LAB_CA), "--resolve", f"spse:443:{address}",
         "https://spse/eproc4/"],
        capture_output=True, text=True,
    )  # fmt: skip
    return page.returncode == 0 and "SPSE" in page.stdout


def disaster(cfg: lab.LabConfig, host: lab.LabHost, source: str, at: str, bids: int) -> dict[str, Any]:
    """The SPSE server is lost: a bare one takes its name and address, and is made the SPSE
    server again from `source` (to the time `at`, or its newest copy). Seconds per part."""
    h = Host(host.address)
    t0 = time.monotonic()
    lab.rebuild(cfg, host)
    new_server = time.monotonic() - t0
    t0 = time.monotonic()
    bootstrap(host.name)
    t_boot = time.monotonic() - t0
    extra = ["-e", f"restore_from={source}"] + (["-e", f"restore_time={at}"] if at else [])
    res = subprocess.run(
        playbook_cmd("restore.yml", "--limit", host.name, *extra), cwd=lab.REPO, env=ansible_env(),
        capture_output=True, text=True,
    )  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"restore.yml from {source} failed:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}")
    while not serves(host.address):
        if time.monotonic() - t0 > 3600:
            raise SystemExit(f"SPSE did not answer within an hour of the restore from {source}")
        time.sleep(1)
    whole = time.monotonic() - t0
    # What it serves is what was backed up: every bid and its document (checked off the clock).
    restored_bids = int(h.sql("SELECT count(*) FROM penawaran;"))
    listing = h.sql("SELECT dokumen_path || ' ' || dokumen_sha256 FROM penawaran;")
    check = "".join(f"{sha}  {DOCS}/{path}\n" for path, sha in (r.split(" ") for r in listing.splitlines()))
    h.sh("sha256sum --check --quiet -", stdin=check)
    if restored_bids != bids:
        raise SystemExit(f"restored from {source}: {restored_bids} bids, {bids} were backed up")
    return {"source": source, "to": at or "newest copy", "new_server_s": new_server, "bootstrap_s": t_boot} | {
        "restore_playbook_s": whole - t_boot,
        "rto_s": whole,
        "bids": restored_bids,
        "target_s": RTO_TARGET_S,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db-gb", type=float, default=1.0)
    p.add_argument("--docs-gb", type=float, default=2.0)
    p.add_argument("--skip-rpo", action="store_true", help="no crashes (RPO)")
    p.add_argument("--skip-disaster", action="store_true", help="no whole RTO (the SPSE host stays)")
    args = p.parse_args()
    cfg = lab.load_config()
    host = next(h for h in cfg.hosts if h.name == "spse")
    h = Host(host.address)
    need = docs_disk_mb(args.docs_gb)
    have = int(h.sh(f"df --output=size -m {DOCS} | tail -1"))
    if have < need * 0.9:  # ext4's own metadata takes a few per cent
        raise SystemExit(
            f"the SPSE host's document disk holds {have} MiB; {args.docs_gb} GB of documents need {need}. "
            f"Make the lab's disks that size (for this run and its rebuilds): `lpse-lab destroy`, then "
            f"`{lab.DISK_SIZES_ENV}={DOCS_DISK}={need}` in the environment of `lpse-lab demo` and of this benchmark."
        )
    lab.unplug(host, DRIVE_NAME)
    lab.drive_image("lpse-backup-2").unlink(missing_ok=True)
    lab.plug(host, lab.make_drive("lpse-backup-2", 16384, allocated=True), DRIVE_NAME)

    db_bytes, docs_bytes = grow(h, args.db_gb, args.docs_gb)
    print(f"data: database {db_bytes / 2**30:.2f} GiB, documents {docs_bytes / 2**30:.2f} GiB")
    # The baselines just before and just after the full run; the ratio divides by the faster of
    # the two (the same drive and bucket vary by a third from one minute to the next here).
    recipient = h.sh("grep -o 'age1[0-9a-z]*' /etc/lpse-backup/config.toml | head -1").strip()
    targets = ("portable", "s3")
    # Not the bucket before: on the lab's RAM-backed radosgw that upload, on top of the grown
    # database's WAL, broke off 2.2-2.5 GB in, twice (backup/README.md).
    before_s = {"portable": baseline(h, recipient, "portable"), "s3": float("inf")}
    full = timed_run(h, "--full")
    after_s = {t: baseline(h, recipient, t) for t in targets}
    generate(h, 20, int(docs_bytes * 0.01))
    h.sql(
        "INSERT INTO audit_log (actor, action, detail) SELECT 'benchmark', 'bulk', md5(g::text) "
        f"FROM generate_series(1, {int(db_bytes * 0.01 / 200)}) g;"
    )
    incr = timed_run(h)
    bids_at_last_run = int(h.sql("SELECT count(*) FROM penawaran;"))
    source = {"database": db_bytes, "dump": db_bytes, "documents": docs_bytes}
    record: dict[str, Any] = {"database_bytes": db_bytes, "documents_bytes": docs_bytes, "pairs": [], "ours": []}
    print(f"{'pair':<22} {'full s':>7} {'copy s':>7} {'verify s':>8} {'MB/s':>6} {'incr s':>7}")
    for key, c in sorted(full.items()):
        if key[0] in source:
            i = incr.get(key)
            mbps = source[key[0]] / 1e6 / c.copy_s if c.copy_s else float("inf")
            print(
                f"{key[0] + ' -> ' + key[1]:<22} {c.seconds:7.1f} {c.copy_s:7.1f} {c.verify_s:8.1f} {mbps:6.1f} "
                f"{i.seconds if i else float('nan'):7.1f}"
            )
            record["pairs"].append(
                {"dataset": key[0], "target": key[1], "full_s": c.seconds, "copy_s": c.copy_s}
                | {"verify_s": c.verify_s, "copy_mb_s": mbps if c.copy_s else None}  # JSON has no Infinity
                | {"incremental_s": i.seconds if i else None}
            )

    record["baselines"], base = [], {}
    for target in targets:
        base_s = min(before_s[target], after_s[target])  # the bucket's: after only
        base[target] = base_mbps = (db_bytes + docs_bytes) / 1e6 / base_s
        where = {"portable": "the drive", "s3": "the bucket"}[target]
        print(
            f"baseline tar | zstd -3 | age to {where}: {before_s[target]:.1f} s before our full run "
            f"(inf: not taken), {after_s[target]:.1f} s after; the faster: {base_mbps:.1f} MB/s"
        )
        record["baselines"].append(
            {"target": target, "what": f"tar | zstd -3 | age to {where}", "seconds": base_s, "mb_s": base_mbps}
            | {"before_s": before_s[target] if before_s[target] < float("inf") else None, "after_s": after_s[target]}
        )
        # The drive's database copy is made from the local repository: its time counts too.
        pairs = [("database", target), ("documents", target)]
        pairs += [("database", "local")] if target == "portable" else []
        copies = [full[p] for p in pairs if p in full]
        if len(copies) != len(pairs):
            print(f"ours to {target}: a pair failed, no ratio")
            continue
        for what, secs in (("copy", sum(c.copy_s for c in copies)), ("copy + verify", sum(c.seconds for c in copies))):
            mbps = (db_bytes + docs_bytes) / 1e6 / secs
            print(
                f"ours, database + documents to {target} ({what}): {secs:.1f} s, {mbps:.1f} MB/s, "
                f"ratio to the baseline to the same target {mbps / base[target]:.2f}"
            )
            record["ours"].append(
                {"target": target, "what": what, "seconds": secs, "mb_s": mbps}
                | {"ratio_to_baseline": mbps / base[target]}
            )

    drill = h.sh(f"{LPSE_BACKUP} drill --target s3 --target portable", check=False)
    record["drills"] = []
    for m in DRILL.finditer(drill):
        print(f"RTO {m[1]} from {m[2]}: {float(m[4]):.1f} s" if m[4] else f"drill {m[1]} from {m[2]}: {m[3]}")
        record["drills"].append({"dataset": m[1], "target": m[2], "rto_s": float(m[4]) if m[4] else None})
    if not args.skip_rpo:
        # Several crashes, at moments spread over the 30 s archive_timeout: the loss depends on
        # when the last WAL segment was closed and pushed.
        lost = [rpo(h, after) for after in (70, 83, 97)]
        print(f"RPO (bucket, after a crash), per crash: {', '.join(f'{x:.1f}' for x in lost)} s")
        print(f"RPO worst of {len(lost)}: {max(lost):.1f} s (target <= 60 s)")
        record |= {"rpo_s": lost, "rpo_worst_s": max(lost), "rpo_target_s": 60}
    if not args.skip_disaster:
        # From the bucket to a moment between two marks; then from the drive's newest copy (the
        # last run's: neither mark, the bids as they were then).
        before, after = f"before-{uuid.uuid4().hex[:8]}", f"after-{uuid.uuid4().hex[:8]}"
        h.sql(f"INSERT INTO audit_log (actor, action, detail) VALUES ('benchmark', 'marker', '{before}');")
        time.sleep(1.5)
        at = h.sql("SELECT to_char(clock_timestamp(), 'YYYY-MM-DD\"T\"HH24:MI:SS.USOF:00');")
        time.sleep(1.5)
        h.sql(f"INSERT INTO audit_log (actor, action, detail) VALUES ('benchmark', 'marker', '{after}');")
        bids_now = int(h.sql("SELECT count(*) FROM penawaran;"))
        h.sql("SELECT pg_switch_wal();")
        time.sleep(10)  # the switched segment reaches the bucket
        record["disasters"] = []
        for origin, to, bids in (("s3", at, bids_now), ("portable", "", bids_at_last_run)):
            d = disaster(cfg, host, origin, to, bids)
            marks = h.sql(f"SELECT string_agg(detail, ' ') FROM audit_log WHERE detail IN ('{before}', '{after}');")
            if marks != (before if origin == "s3" else ""):
                raise SystemExit(f"restored from {origin} to {d['to']}: markers {marks!r}, not the point asked for")
            print(
                f"RTO whole from {origin} ({d['to']}): {d['rto_s']:.0f} s (bootstrap {d['bootstrap_s']:.0f} s, "
                f"restore.yml {d['restore_playbook_s']:.0f} s; the bare server took {d['new_server_s']:.0f} s, "
                f"not counted; target <= {RTO_TARGET_S} s)"
            )
            record["disasters"].append(d)
    figures.write("backup", record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
