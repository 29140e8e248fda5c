from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest
from lpse_lab.artifact import build_simulator
from spse_simulator.app import Config, doc_size, parse_size, write_document


def test_config_reads_the_role_format(tmp_path: Path) -> None:
    conf = tmp_path / "application.conf"
    conf.write_text(
        "# managed\ndb.name=spse\ndb.user=spse\ndb.password=s3cret=x\nhttp.port=9100\n"
        "spse.documents=/var/lib/spse/documents\n"
    )
    cfg = Config.load(conf)
    assert cfg.db_password == "s3cret=x"
    assert cfg.http_port == 9100 and cfg.http_address == "127.0.0.1"


def test_config_names_a_missing_setting(tmp_path: Path) -> None:
    conf = tmp_path / "application.conf"
    conf.write_text("db.name=spse\n")
    with pytest.raises(SystemExit, match=r"missing setting db\.user"):
        Config.load(conf)


def test_sizes() -> None:
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("200M") == 200 * 1024**2
    assert parse_size("1024") == 1024


def test_documents_look_like_bids(tmp_path: Path) -> None:
    rng = random.Random(1)
    kinds = [doc_size(rng) for _ in range(200)]
    assert all(200_000 < size <= 20 * 1024**2 for _, size in kinds)
    assert {"pdf", "zip"} == {k for k, _ in kinds}
    path = tmp_path / "a" / "bid.pdf"
    sha = write_document(path, "pdf", 300_000, rng)
    assert path.stat().st_size == 300_000 and path.read_bytes().startswith(b"%PDF-1.4")
    assert len(sha) == 64 and not path.with_suffix(".part").exists()


def test_artifact_is_a_runnable_zipapp_with_checksum(tmp_path: Path) -> None:
    target, sha = build_simulator(tmp_path)
    assert (tmp_path / "spse-simulator.pyz.sha256").read_text().strip() == sha
    with zipfile.ZipFile(target) as z:
        assert "__main__.py" in z.namelist() and "spse_simulator/app.py" in z.namelist()
    assert build_simulator(tmp_path) == (target, sha)  # unchanged source: same artifact
