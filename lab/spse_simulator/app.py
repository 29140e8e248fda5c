"""SPSE simulator — FOR TESTING ONLY, not LKPP's SPSE.

A stand-in for LKPP's SPSE (which is not public) with the same outward shape that monitoring,
backup and restore rely on: pages under /eproc4, the "SPSE v4.x" footer, the SPSE error page
text, a PostgreSQL schema of tenders (lelang) and bids (penawaran), and uploaded bid documents
on disk. Delivered to the lab through the `spse` role exactly like a real artifact.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import logging
import os
import random
import signal
import string
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("spse_simulator")

VERSION = "4.5-simulator"
FOOTER = f"SPSE v{VERSION} — SIMULATOR untuk pengujian lpse-ops, bukan SPSE LKPP"
ERROR_TEXT = "Maaf, terjadi error pada aplikasi SPSE."

SCHEMA = """
CREATE TABLE IF NOT EXISTS lelang (
    id          bigserial PRIMARY KEY,
    kode        text UNIQUE NOT NULL,
    nama        text NOT NULL,
    satker      text NOT NULL,
    pagu        numeric(18, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    closes_at   timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS penawaran (
    id            bigserial PRIMARY KEY,
    lelang_id     bigint NOT NULL REFERENCES lelang(id),
    peserta       text NOT NULL,
    harga         numeric(18, 2) NOT NULL,
    dokumen_path  text NOT NULL,
    dokumen_bytes bigint NOT NULL,
    dokumen_sha256 text NOT NULL,
    submitted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    detail      text NOT NULL
);
CREATE INDEX IF NOT EXISTS penawaran_lelang_idx ON penawaran (lelang_id);
-- A tender's schedule: each stage (tahap) open from mulai until selesai. The bid upload's end is
-- the tender's closing; lpse-ops reads these (read-only) for its maintenance blackouts.
CREATE TABLE IF NOT EXISTS jadwal (
    id          bigserial PRIMARY KEY,
    lelang_id   bigint NOT NULL REFERENCES lelang(id),
    tahap       text NOT NULL,
    mulai       timestamptz NOT NULL,
    selesai     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS jadwal_selesai_idx ON jadwal (selesai);
"""

# The stages a generated tender gets, with their length in days, ending at the bid upload's close
# (and the two after it).
STAGES = (
    ("Pengumuman Pascakualifikasi", -14, -7),
    ("Download Dokumen Pemilihan", -14, 0),
    ("Upload Dokumen Penawaran", -7, 0),
    ("Pembukaan Dokumen Penawaran", 0, 1),
    ("Masa Sanggah", 3, 6),
)


@dataclass(frozen=True)
class Config:
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str
    http_address: str
    http_port: int
    documents: Path
    error_flag: Path

    @classmethod
    def load(cls, path: Path) -> Config:
        """Read the key=value application.conf that the spse role writes."""
        values: dict[str, str] = {}
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                values[k.strip()] = v.strip()
        try:
            return cls(
                db_host=values.get("db.host", "localhost"),
                db_port=int(values.get("db.port", "5432")),
                db_name=values["db.name"],
                db_user=values["db.user"],
                db_password=values["db.password"],
                http_address=values.get("http.address", "127.0.0.1"),
                http_port=int(values.get("http.port", "9000")),
                documents=Path(values["spse.documents"]),
                error_flag=Path(values.get("simulator.error_flag", "/var/lib/spse/simulator-error")),
            )
        except KeyError as e:
            raise SystemExit(f"{path}: missing setting {e.args[0]}") from None


def connect(cfg: Config) -> Any:
    import psycopg2  # Debian's python3-psycopg2 on the SPSE host

    return psycopg2.connect(
        host=cfg.db_host,
        port=cfg.db_port,
        dbname=cfg.db_name,
        user=cfg.db_user,
        password=cfg.db_password,
        connect_timeout=5,
    )


def migrate(cfg: Config) -> None:
    with connect(cfg) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)


def page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html><html lang="id"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} | SPSE</title></head><body>"
        f"<header><h1>Layanan Pengadaan Secara Elektronik</h1></header><main>{body}</main>"
        f"<footer>{html.escape(FOOTER)}</footer></body></html>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "SPSE-simulator"
    cfg: Config

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.info("%s %s", self.address_string(), format % args)

    def send(self, code: int, body: bytes, ctype: str = "text/html; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        # Fault injection for monitoring tests: SPSE's real failure mode is a 200 error page.
        if self.cfg.error_flag.exists():
            self.send(200, page("Error", f'<p class="error">{ERROR_TEXT}</p>'))
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if path in ("", "/eproc4"):
                self.home()
            elif path == "/eproc4/lelang":
                self.tenders()
            elif path.startswith("/eproc4/dokumen/"):
                self.document(path.rsplit("/", 1)[1])
            else:
                self.send(404, page("Tidak ditemukan", "<p>Halaman tidak ditemukan.</p>"))
        except Exception:  # the real SPSE shows its error page; so do we, and log why
            log.exception("request failed: %s", self.path)
            self.send(500, page("Error", f'<p class="error">{ERROR_TEXT}</p>'))

    def do_HEAD(self) -> None:
        self.do_GET()

    def home(self) -> None:
        with connect(self.cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(*) FILTER (WHERE closes_at > now()) FROM lelang")
            total, open_ = cur.fetchone()
        self.send(
            200,
            page(
                "Beranda",
                f"<h2>Beranda SPSE</h2><p>Jumlah lelang: {total}; "
                f'lelang aktif: {open_}</p><a href="/eproc4/lelang">Cari paket</a>',
            ),
        )

    def tenders(self) -> None:
        with connect(self.cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT kode, nama, satker, pagu, closes_at FROM lelang ORDER BY closes_at DESC LIMIT 50")
            rows = cur.fetchall()
        items = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(n)}</td><td>{html.escape(s)}</td>"
            f"<td>{p:,.2f}</td><td>{c:%Y-%m-%d %H:%M}</td></tr>"
            for k, n, s, p, c in rows
        )
        self.send(200, page("Daftar Lelang", f"<h2>Daftar Lelang</h2><table>{items}</table>"))

    def document(self, bid_id: str) -> None:
        if not bid_id.isdigit():
            self.send(404, page("Tidak ditemukan", "<p>Dokumen tidak ditemukan.</p>"))
            return
        with connect(self.cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT dokumen_path FROM penawaran WHERE id = %s", (int(bid_id),))
            row = cur.fetchone()
        if row is None:
            self.send(404, page("Tidak ditemukan", "<p>Dokumen tidak ditemukan.</p>"))
            return
        self.send(200, (self.cfg.documents / row[0]).read_bytes(), "application/octet-stream")


def serve(cfg: Config) -> None:
    for _ in range(30):  # PostgreSQL may still be starting at boot
        try:
            migrate(cfg)
            break
        except Exception as e:
            log.warning("database not ready (%s), retrying", e)
            time.sleep(2)
    else:
        raise SystemExit("database unreachable: check db.* in the SPSE configuration")
    Handler.cfg = cfg
    httpd = ThreadingHTTPServer((cfg.http_address, cfg.http_port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    log.info("SPSE simulator listening on %s:%d/eproc4", cfg.http_address, cfg.http_port)
    httpd.serve_forever()


# --- realistic data --------------------------------------------------------------------

SATKER = [
    "Dinas Pekerjaan Umum",
    "Dinas Pendidikan",
    "Dinas Kesehatan",
    "RSUD",
    "Bappeda",
    "Dinas Perhubungan",
    "Sekretariat Daerah",
    "Dinas Lingkungan Hidup",
]
PEKERJAAN = [
    "Pembangunan Jalan",
    "Rehabilitasi Gedung",
    "Pengadaan Alat Kesehatan",
    "Pengadaan Komputer",
    "Jasa Konsultansi Pengawasan",
    "Pembangunan Jembatan",
    "Pengadaan Obat",
    "Pemeliharaan Saluran Drainase",
]


def doc_size(rng: random.Random) -> tuple[str, int]:
    """Bid documents: mostly PDFs of 0.2–5 MB, some ZIP bundles of 1–20 MB."""
    if rng.random() < 0.7:
        return "pdf", int(rng.uniform(0.2, 5) * 1024 * 1024)
    return "zip", int(rng.uniform(1, 20) * 1024 * 1024)


def write_document(path: Path, kind: str, size: int, rng: random.Random) -> str:
    """Incompressible content (bids are encrypted by SPSE) behind a realistic file header."""
    header = b"%PDF-1.4\n" if kind == "pdf" else b"PK\x03\x04"
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as f:
        f.write(header)
        digest.update(header)
        left = size - len(header)
        while left > 0:
            chunk = rng.randbytes(min(left, 1 << 20))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    tmp.rename(path)
    return digest.hexdigest()


# The mean of doc_size: 0.7 x 2.6 MiB + 0.3 x 10.5 MiB.
MEAN_DOCUMENT_BYTES = int((0.7 * 2.6 + 0.3 * 10.5) * 1024 * 1024)


def generate(
    cfg: Config, tenders: int, bids: int, documents_bytes: int, seed: int, spread: bool = False
) -> dict[str, int]:
    """Add tenders with bids and uploaded documents until the document budget is spent; with
    `spread`, every bid gets a document, all scaled down to fit the budget (a small disk, many
    bids). A failed run removes the documents it wrote: its rows are rolled back with it."""
    rng = random.Random(seed)
    migrate(cfg)
    now = datetime.now(UTC)
    written = n_bids = n_tenders = 0
    total = tenders * bids
    scale = min(1.0, documents_bytes / max(1, total * MEAN_DOCUMENT_BYTES)) if spread else 1.0
    paths: list[Path] = []
    try:
        with connect(cfg) as conn, conn.cursor() as cur:
            for _ in range(tenders):
                kode = "".join(rng.choices(string.digits, k=8))
                cur.execute(
                    "INSERT INTO lelang (kode, nama, satker, pagu, closes_at) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (kode) DO NOTHING RETURNING id",
                    (
                        kode,
                        f"{rng.choice(PEKERJAAN)} Tahun {now.year}",
                        rng.choice(SATKER),
                        rng.randrange(50_000_000, 20_000_000_000),
                        now + timedelta(days=rng.randint(-60, 30)),
                    ),
                )
                row = cur.fetchone()
                if row is None:
                    continue
                n_tenders += 1
                cur.execute("SELECT closes_at FROM lelang WHERE id = %s", (row[0],))
                add_schedule(cur, row[0], cur.fetchone()[0])
                for b in range(bids):
                    if written >= documents_bytes:  # budget spent: every bid keeps a real document
                        break
                    kind, size = doc_size(rng)
                    # Spread: each scaled to the budget, keeping 1 KiB for every bid still to come.
                    left = (
                        documents_bytes - written - (total - n_bids - 1) * 1024 if spread else documents_bytes - written
                    )
                    size = max(min(int(size * scale), left), 1024)
                    rel = f"{now:%Y}/{kode}/penawaran-{b + 1}.{kind}"
                    paths.append(cfg.documents / rel)
                    sha = write_document(cfg.documents / rel, kind, size, rng)
                    written += size
                    n_bids += 1
                    cur.execute(
                        "INSERT INTO penawaran (lelang_id, peserta, harga, dokumen_path, dokumen_bytes, dokumen_sha256)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        (
                            row[0],
                            f"CV {rng.choice(string.ascii_uppercase)}{rng.randint(1, 999)}",
                            rng.randrange(40_000_000, 19_000_000_000),
                            rel,
                            size,
                            sha,
                        ),
                    )
                cur.execute(
                    "INSERT INTO audit_log (actor, action, detail) VALUES ('simulator', 'generate', %s)",
                    (f"tender {kode}",),
                )
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return {"tenders": n_tenders, "bids": n_bids, "documents_bytes": written}


def add_schedule(cur: Any, tender_id: int, closes: datetime) -> None:
    """A generated tender's stages; none ends within a day before or two days after now, so a test
    decides the closings near it (`tender`) and a generated history never blocks maintenance."""
    now = datetime.now(UTC)
    for stage, start_days, end_days in STAGES:
        if now - timedelta(days=1) < closes + timedelta(days=end_days) < now + timedelta(days=2):
            continue
        cur.execute(
            "INSERT INTO jadwal (lelang_id, tahap, mulai, selesai) VALUES (%s, %s, %s, %s)",
            (tender_id, stage, closes + timedelta(days=start_days), closes + timedelta(days=end_days)),
        )


def add_tender(cfg: Config, name: str, stage: str, opens: datetime, closes: datetime) -> str:
    """One tender with one stage, as a test needs it (a closing at a known time); its code."""
    migrate(cfg)
    kode = f"T{int(time.time() * 1000) % 10**10:010d}"
    with connect(cfg) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO lelang (kode, nama, satker, pagu, closes_at) VALUES (%s, %s, 'Lab', 100000000, %s) "
            "RETURNING id",
            (kode, name, closes),
        )
        cur.execute(
            "INSERT INTO jadwal (lelang_id, tahap, mulai, selesai) VALUES (%s, %s, %s, %s)",
            (cur.fetchone()[0], stage, opens, closes),
        )
    return kode


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().rstrip("b")
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spse-simulator", description="SPSE simulator (testing only)")
    p.add_argument("--config", type=Path, default=Path(os.environ.get("SPSE_CONFIG", "/etc/spse/application.conf")))
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("serve", help="serve /eproc4 (the default)")
    g = sub.add_parser("generate", help="add realistic tenders, bids and documents")
    g.add_argument("--tenders", type=int, default=20)
    g.add_argument("--bids-per-tender", type=int, default=5)
    g.add_argument("--documents-size", default="200M", help="document bytes to write, e.g. 2G")
    g.add_argument("--seed", type=int, default=int(time.time()))
    g.add_argument("--spread", action="store_true", help="a document for every bid, scaled down to fit the size")
    t = sub.add_parser("tender", help="add one tender with one stage at given times (prints its code)")
    t.add_argument("--name", required=True)
    t.add_argument("--stage", default="Upload Dokumen Penawaran")
    t.add_argument("--opens", required=True, help="ISO 8601 with zone")
    t.add_argument("--closes", required=True, help="ISO 8601 with zone")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    cfg = Config.load(args.config)
    if args.cmd == "tender":
        opens, closes = datetime.fromisoformat(args.opens), datetime.fromisoformat(args.closes)
        print(add_tender(cfg, args.name, args.stage, opens, closes))
        return 0
    if args.cmd == "generate":
        result = generate(
            cfg, args.tenders, args.bids_per_tender, parse_size(args.documents_size), args.seed, args.spread
        )
        print(
            f"added {result['tenders']} tenders, {result['bids']} bids, "
            f"{result['documents_bytes'] / 1024**2:.1f} MiB of documents"
        )
        return 0
    serve(cfg)
    return 0
