"""Build the wheels of one of this repository's packages and its dependencies on the controller.

Prints the wheelhouse folder on the last line, and "built" or "cached" before it. The folder is
named by a hash of the project's sources and of the constraints, so an unchanged checkout reuses
it (the copy to the hosts reports no change) and a changed one gets a new folder. A half-built
folder is never left where a good one is: the build goes to a temporary folder renamed at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

SKIP = {"__pycache__", "build", "dist"}
KEEP = 3


def sources_hash(project: Path, constraints: Path | None, extras: str) -> str:
    h = hashlib.sha256(extras.encode())
    files = sorted(
        f for f in project.rglob("*") if f.is_file() and f.suffix in (".py", ".toml", ".cfg", ".j2", ".typed")
        and not SKIP & set(f.relative_to(project).parts) and ".egg-info" not in str(f)
    )  # fmt: skip
    for f in files:
        h.update(str(f.relative_to(project)).encode() + b"\0" + f.read_bytes() + b"\0")
    if constraints:
        h.update(b"constraints\0" + constraints.read_bytes())
    return h.hexdigest()[:16]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--project", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--extras", default="")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--constraints", type=Path)
    a = p.parse_args()
    project = a.project.resolve()
    if not (project / "pyproject.toml").exists():
        print(f"{project} is not a Python project (no pyproject.toml): check python_package_source", file=sys.stderr)
        return 2
    out = a.cache / f"{a.name}-{sources_hash(project, a.constraints, a.extras)}"
    a.cache.mkdir(parents=True, exist_ok=True)
    # Every host of a free-strategy play asks at once: one builds, the others wait and reuse it.
    with (a.cache / f".{a.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / ".complete").exists():
            print(f"cached\n{out}")
            return 0
        return build(a, project, out)


def build(a: argparse.Namespace, project: Path, out: Path) -> int:
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    target = f"{project}[{a.extras}]" if a.extras else str(project)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", str(tmp), target]
    cmd += ["-c", str(a.constraints)] if a.constraints else []
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"building the wheels of {a.name} failed (pip wheel needs PyPI or a local index; or give "
            f"python_package_wheelhouse a folder of wheels built elsewhere):\n{res.stderr[-2000:]}",
            file=sys.stderr,
        )
        return 1
    (tmp / ".complete").touch()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    # Older builds of this package: keep a few (a rollback), drop the rest.
    builds = [d for d in a.cache.glob(f"{a.name}-*") if (d / ".complete").exists()]
    for old in sorted(builds, key=lambda d: (d / ".complete").stat().st_mtime, reverse=True)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    print(f"built\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
