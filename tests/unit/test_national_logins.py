"""The logins at LKPP's national door: a site's is a long machine secret under a fast hash
(nginx checks it on every request the site sends), a reader's a password under bcrypt. The role
preflights stop anything else, with a message that says what to set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SITE_SECRET = "x" * 43  # what `openssl rand -base64 32` gives: 44 characters
READER_HASH = bcrypt.hashpw(b"a reader's password", bcrypt.gensalt(10)).decode()


def sha512_crypt(secret: str) -> str:
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=secret, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def preflight(tmp_path: Path, role: str, variables: dict) -> subprocess.CompletedProcess[str]:
    """The role's preflight alone, on this machine (it only checks variables)."""
    play = tmp_path / "preflight.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role: {{name: {role}, tasks_from: preflight}}\n"
    )
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "HOME": str(tmp_path)},
    )  # fmt: skip
    res.stdout = " ".join(res.stdout.split())
    return res


def gateway(site_hash: str) -> dict:
    return {
        "national_gateway_sites": [{"name": "kab-contoh", "password_sha512": site_hash}],
        "national_gateway_readers": [{"name": "analis", "password_bcrypt": READER_HASH}],
        "national_gateway_internal_key": "k" * 30,
    }


def test_a_site_login_under_sha512_crypt_and_a_reader_under_bcrypt_pass(tmp_path: Path) -> None:
    res = preflight(tmp_path, "national_gateway", gateway(sha512_crypt(SITE_SECRET)))
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.mark.parametrize(
    "site_hash",
    [READER_HASH, "{PLAIN}" + SITE_SECRET, "$5$abcdefgh$" + "a" * 43],
    ids=["bcrypt (0.3 s of CPU a request at cost 12)", "plain", "sha256-crypt"],
)
def test_any_other_site_hash_stops_the_run_and_says_how_to_make_one(tmp_path: Path, site_hash: str) -> None:
    res = preflight(tmp_path, "national_gateway", gateway(site_hash))
    assert res.returncode != 0
    assert "password_sha512 is its SHA-512-crypt hash" in res.stdout, res.stdout[-3000:]
    assert 'openssl passwd -6 "$secret"' in res.stdout


def test_a_reader_under_a_fast_hash_stops_the_run(tmp_path: Path) -> None:
    variables = gateway(sha512_crypt(SITE_SECRET))
    variables["national_gateway_readers"][0]["password_bcrypt"] = sha512_crypt("a reader's password")
    res = preflight(tmp_path, "national_gateway", variables)
    assert res.returncode != 0
    assert "A reader's password_bcrypt is a bcrypt hash of cost 10 or more" in res.stdout, res.stdout[-3000:]


@pytest.mark.parametrize(("secret", "ok"), [(SITE_SECRET, True), ("x" * 31, False)])
def test_a_site_sends_only_with_a_secret_long_enough_for_a_fast_hash(tmp_path: Path, secret: str, ok: bool) -> None:
    res = preflight(
        tmp_path,
        "lkpp_telemetry",
        {"lkpp_telemetry_url": "https://lkpp.example/api/v1/write", "lkpp_telemetry_password": secret,
         "prometheus_site": "kab-contoh"},
    )  # fmt: skip
    assert (res.returncode == 0) is ok, res.stdout[-3000:]
    if not ok:
        assert "the secret LKPP gave the site, 32 characters or more" in res.stdout
