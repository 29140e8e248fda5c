"""Build the SPSE simulator into a single-file artifact, shipped like LKPP's release."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipapp
from collections.abc import Iterable
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "spse_simulator"


def up_to_date(output: Path, sources: Iterable[Path]) -> bool:
    """True when `output` exists and is newer than every source file."""
    return output.exists() and output.stat().st_mtime >= max(f.stat().st_mtime for f in sources)


def build_simulator(out_dir: Path) -> tuple[Path, str]:
    """Write spse-simulator.pyz and its .sha256 next to it; returns (path, sha256)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "spse-simulator.pyz"
    sha_file = out_dir / "spse-simulator.pyz.sha256"
    # Rebuild only on change: a new checksum means a new SPSE release on every lab host.
    if sha_file.exists() and up_to_date(target, SOURCE.glob("*.py")):
        return target, sha_file.read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "src"
        shutil.copytree(SOURCE, pkg / "spse_simulator", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(SOURCE / "__main__.py", pkg / "__main__.py")
        part = out_dir / "spse-simulator.pyz.part"
        zipapp.create_archive(pkg, part, interpreter="/usr/bin/python3")
        part.replace(target)
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
    sha_file.write_text(sha + "\n")
    return target, sha
