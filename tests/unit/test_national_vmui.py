"""vmui's files in roles/national_vmui are upstream's, byte for byte: the git blob id of each file
is the one upstream's tag lists (roles/national_vmui/UPSTREAM.md), and nothing else is there
but the licence."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROLE = Path(__file__).resolve().parents[2] / "roles" / "national_vmui"


def blob_id(data: bytes) -> str:
    """What `git hash-object` prints for a file with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's own id


def test_the_ui_is_upstreams_build_of_the_stores_release() -> None:
    listed = dict(
        (name, blob)
        for blob, name in re.findall(r"^([0-9a-f]{40}) (\S+)$", (ROLE / "UPSTREAM.md").read_text(), re.MULTILINE)
    )
    files = ROLE / "files" / "vmui"
    found = {str(p.relative_to(files)): blob_id(p.read_bytes()) for p in files.rglob("*") if p.is_file()}
    assert found.pop("LICENSE") and "Apache License" in (files / "LICENSE").read_text()
    assert len(listed) == 14 and found == listed
    assert "v1.79.5" in (ROLE / "UPSTREAM.md").read_text()
