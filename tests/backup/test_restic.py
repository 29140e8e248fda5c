"""restic repositories on a local path, with the real restic: a lock left by a killed run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from lpse_backup.documents import Restic
from lpse_backup.errors import BackupError


def held_lock(repo: Restic) -> subprocess.Popen[bytes]:
    """A restic that holds the repository's lock: a backup reading a stdin that never ends."""
    proc = subprocess.Popen(
        ["restic", "--no-cache", "backup", "--stdin", "--stdin-filename", "bid.pdf"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=repo._env(),
    )
    locks = Path(repo.repository) / "locks"
    deadline = time.monotonic() + 30
    # Written whole, not only created: killed between the two, restic 0.14 leaves an empty file
    # that no restic reads as a lock (nor removes) and nothing waits for.
    while not any(repo.run("--no-lock", "cat", "lock", f.name, check=False).returncode == 0 for f in locks.iterdir()):
        assert time.monotonic() < deadline, "restic never took its lock"
        time.sleep(0.1)
    return proc


@pytest.fixture()
def repo(tmp_path: Path) -> Restic:
    key = tmp_path / "key"
    key.write_text("the site's restic key\n")
    os.chmod(key, 0o600)
    r = Restic(str(tmp_path / "repo"), key, timeout_s=60)
    r.init()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "penawaran.pdf").write_bytes(os.urandom(4096))
    return r


def test_a_lock_left_by_a_killed_run_is_removed_and_the_command_runs(repo: Restic, tmp_path: Path) -> None:
    proc = held_lock(repo)
    proc.kill()  # SIGKILL: the lock stays behind, as after a power cut or an OOM kill
    proc.wait()
    assert any((Path(repo.repository) / "locks").iterdir())
    repo.backup([tmp_path / "docs"], tags=["documents"])
    repo.forget(7, 4, 12)  # prune needs the exclusive lock
    assert [s["tags"] for s in repo.snapshots()] == [["documents"]]
    assert not any((Path(repo.repository) / "locks").iterdir())


def test_a_lock_a_live_run_holds_stops_the_command_and_stays(repo: Restic, tmp_path: Path) -> None:
    proc = held_lock(repo)
    try:
        with pytest.raises(BackupError, match="already locked"):
            repo.forget(7, 4, 12)
        assert any((Path(repo.repository) / "locks").iterdir())
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
