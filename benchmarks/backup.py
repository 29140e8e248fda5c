"""Backup and restore on the lab with a grown SPSE: throughput per target, RPO, RTO, and the ratio
of our encrypted, verified backups to a plain `tar | zstd | age` of the same data.

Run on a provisioned lab (scripts/demo, or after scripts/test with LPSE_LAB_KEEP=1), as root:
    .venv/bin/python benchmarks/backup.py [--db-gb 1] [--docs-gb 2]

What it does, on the SPSE host:
1. Grows the simulator's data: bids and documents with the simulator itself (into a directory on
   the host's own disk, /srv/spse-bench/documents: the lab's document disk is 512 MiB) and the
   database with bulk rows in the simulator's audit_log, to at least --db-gb and --docs-gb.
2. Runs `lpse-backup run` with a copy of the deployed settings that points at that directory
   (full: first copy of the new data; incremental: after 1 % more), on a fresh 16 GiB drive.
3. Baselines, side by side on the same data: `tar -cf - <database files> <documents> | zstd -T0
   | age -r <recipient>` into one file on the same drive, and streamed into a bucket of the same
   S3 server (no verification, no PITR, no deduplication). Each target's ratio divides by the
   baseline to that target.
4. RPO: a writer commits a timestamped row every 100 ms; PostgreSQL is SIGKILLed (the server is
   lost); the newest copy in the bucket is restored to the end of its WAL; RPO = newest
   committed row minus newest restored row. Target: at most 60 s.
5. RTO: `lpse-backup drill` per target (database into a throwaway cluster, documents into a
   scratch directory), timed part by part.
The figures also go to benchmarks/results/backup.json.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import figures
from lpse_lab import lab
from lpse_lab.cli import DRIVE_NAME, LPSE_BACKUP

BENCH_DOCS = "/srv/spse-bench/documents"
BENCH_CONF = "/etc/lpse-backup/bench.toml"
# What lpse_backup.steps prints for a copy: "[documents -> s3] ok in 12.3 s, 45.6 MiB, verified (3.2 s)".
PAIR = re.compile(r"^\[(\w+) -> (\w+)\] ok in ([\d.]+) s, ([\d.]+) MiB, [^(\n]*(?:\(([\d.]+) s\))?", re.M)
DRILL = re.compile(r"^\[drill (\w+) <- (\w+)\] (ok in ([\d.]+) s|FAILED: .*)", re.M)


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


def grow(h: Host, db_gb: float, docs_gb: float) -> tuple[int, int]:
    """Bring the database and the bench document directory up to the sizes; returns bytes of each."""
    h.sh(f"mkdir -p {BENCH_DOCS} && chown spse:spse {BENCH_DOCS}")
    h.sh(
        f"sed 's|^spse.documents=.*|spse.documents={BENCH_DOCS}|' /etc/spse/application.conf "
        "> /etc/spse/bench.conf && chown root:spse /etc/spse/bench.conf && chmod 0640 /etc/spse/bench.conf"
    )
    have = int(h.sh(f"du -sb {BENCH_DOCS} | cut -f1"))
    if have < docs_gb * 2**30:
        need = int(docs_gb * 2**30) - have
        h.sh(
            "sudo -u spse SPSE_CONFIG=/etc/spse/bench.conf python3 /opt/spse/current/spse-simulator.pyz generate "
            f"--tenders 2000 --bids-per-tender 10 --documents-size {need} --seed {time.time_ns() % 2**31}"
        )
    while int(h.sql("SELECT pg_database_size('spse');")) < db_gb * 2**30:
        h.sql(
            "INSERT INTO audit_log (actor, action, detail) SELECT 'benchmark', 'bulk', "
            "md5(random()::text) || md5(random()::text) || repeat(md5(g::text), 3) FROM generate_series(1, 1000000) g;"
        )
    return int(h.sql("SELECT pg_database_size('spse');")), int(h.sh(f"du -sb {BENCH_DOCS} | cut -f1"))


def bench_config(h: Host) -> None:
    """The deployed settings, with the bench documents and a state/textfile place of their own."""
    conf = h.sh("cat /etc/lpse-backup/config.toml")
    conf = re.sub(r"^state_dir = .*$", 'state_dir = "/var/lib/lpse-backup-bench"', conf, flags=re.M)
    conf = re.sub(r"^textfile_dir = .*$", 'textfile_dir = "/var/lib/lpse-backup-bench"', conf, flags=re.M)
    conf = re.sub(r"(\[documents\]\npaths = ).*", rf'\1["{BENCH_DOCS}"]', conf)
    h.sh(f"umask 077 && mkdir -p /var/lib/lpse-backup-bench && cat > {BENCH_CONF}", stdin=conf)


@dataclass(frozen=True)
class Copy:
    mib: float  # what the target took in
    seconds: float  # copy and its check
    verify_s: float  # the check alone (pgbackrest verify, restic check): the baseline has none

    @property
    def copy_s(self) -> float:
        return self.seconds - self.verify_s


def timed_run(h: Host) -> dict[tuple[str, str], Copy]:
    """What each dataset/target pair of one `lpse-backup run` took."""
    out = h.sh(f"{LPSE_BACKUP} run --config {BENCH_CONF}")
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
    h.sh("apt-get install -y -q zstd >/dev/null")
    h.sh("cat > /var/tmp/bench-to-bucket.py", stdin=TO_BUCKET)
    h.sh("runuser -u postgres -- psql -X -q -c CHECKPOINT")
    sink = {
        "portable": f"> /media/{DRIVE_NAME}/baseline.tar.zst.age && sync",
        "s3": "| /opt/lpse-backup/venv/bin/python /var/tmp/bench-to-bucket.py put",
    }[target]
    t0 = time.monotonic()
    h.sh(
        f"tar -C / -cf - var/lib/postgresql/15/main {BENCH_DOCS.lstrip('/')} 2>/dev/null | zstd -q -T0 -3 "
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db-gb", type=float, default=1.0)
    p.add_argument("--docs-gb", type=float, default=2.0)
    args = p.parse_args()
    cfg = lab.load_config()
    host = next(h for h in cfg.hosts if h.name == "spse")
    h = Host(host.address)
    lab.unplug(host, DRIVE_NAME)
    lab.drive_image("lpse-backup-2").unlink(missing_ok=True)
    lab.plug(host, lab.make_drive("lpse-backup-2", 16384), DRIVE_NAME)

    db_bytes, docs_bytes = grow(h, args.db_gb, args.docs_gb)
    print(f"data: database {db_bytes / 2**30:.2f} GiB, documents {docs_bytes / 2**30:.2f} GiB")
    bench_config(h)
    full = timed_run(h)
    h.sh(
        "sudo -u spse SPSE_CONFIG=/etc/spse/bench.conf python3 /opt/spse/current/spse-simulator.pyz generate "
        f"--tenders 20 --bids-per-tender 10 --documents-size {int(docs_bytes * 0.01)} --seed {time.time_ns() % 2**31}"
    )
    h.sql(
        "INSERT INTO audit_log (actor, action, detail) SELECT 'benchmark', 'bulk', md5(g::text) "
        f"FROM generate_series(1, {int(db_bytes * 0.01 / 200)}) g;"
    )
    incr = timed_run(h)
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
                | {"verify_s": c.verify_s, "copy_mb_s": mbps, "incremental_s": i.seconds if i else None}
            )

    recipient = h.sh("grep -o 'age1[0-9a-z]*' /etc/lpse-backup/config.toml | head -1").strip()
    record["baselines"], base = [], {}
    for target in ("portable", "s3"):
        base_s = baseline(h, recipient, target)
        base[target] = base_mbps = (db_bytes + docs_bytes) / 1e6 / base_s
        where = {"portable": "the drive", "s3": "the bucket"}[target]
        print(f"baseline tar | zstd -3 | age to {where}: {base_s:.1f} s, {base_mbps:.1f} MB/s")
        record["baselines"].append(
            {"target": target, "what": f"tar | zstd -3 | age to {where}", "seconds": base_s, "mb_s": base_mbps}
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

    drill = h.sh(f"{LPSE_BACKUP} drill --config {BENCH_CONF} --target s3 --target portable", check=False)
    record["drills"] = []
    for m in DRILL.finditer(drill):
        print(f"RTO {m[1]} from {m[2]}: {float(m[4]):.1f} s" if m[4] else f"drill {m[1]} from {m[2]}: {m[3]}")
        record["drills"].append({"dataset": m[1], "target": m[2], "rto_s": float(m[4]) if m[4] else None})
    # Several crashes, at moments spread over the 30 s archive_timeout: the loss depends on when
    # the last WAL segment was closed and pushed.
    lost = [rpo(h, after) for after in (70, 83, 97)]
    print(f"RPO (bucket, after a crash), per crash: {', '.join(f'{x:.1f}' for x in lost)} s")
    print(f"RPO worst of {len(lost)}: {max(lost):.1f} s (target <= 60 s)")
    figures.write("backup", record | {"rpo_s": lost, "rpo_worst_s": max(lost), "rpo_target_s": 60})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
