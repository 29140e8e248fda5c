"""Build the SPSE simulator into a single-file artifact, shipped like LKPP's release."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
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


EXPORTER = Path(__file__).resolve().parents[2] / "exporters"
BACKUP = Path(__file__).resolve().parents[2] / "backup"
STATUS = Path(__file__).resolve().parents[2] / "status"


def build_wheels(project: Path, out_dir: Path, extras: str = "") -> Path:
    """Wheels of one of the project's packages (lpse-exporter, lpse-backup, lpse-status) and its
    dependencies, for hosts without PyPI access.

    Rebuilt only when the package's sources change, so that the role sees the same files
    (and reports no change) on every other run.
    """
    skip = {"__pycache__", "build"}
    sources = [f for f in project.rglob("*") if f.suffix in (".py", ".toml") and not skip & set(f.parts)]
    stamp = out_dir / ".built"
    if up_to_date(stamp, sources):
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(tmp),
            f"{project}[{extras}]" if extras else str(project),
        ],
        check=True,
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    stamp.touch()
    return out_dir
