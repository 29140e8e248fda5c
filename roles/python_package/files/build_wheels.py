"""Build the wheels of one of this repository's packages and its dependencies on the controller.

Prints three lines: "built" or "cached", the wheelhouse's hash, and the path of one archive of
its wheels (what the hosts get: one file to compare and copy, not one per wheel). The folder is
named by a hash of the project's sources and of the constraints, so an unchanged checkout reuses
it (the copy to the hosts reports no change) and a changed one gets a new folder. A half-built
folder is never left where a good one is: the build goes to a temporary folder renamed at the end.
With --wheelhouse (wheels built elsewhere) nothing is built: that folder's wheels are archived,
named by a hash of their contents.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

SKIP = {"__pycache__", "build", "dist"}
KEEP = 3
ARCHIVE = "wheels.tar"


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
    p.add_argument("--wheelhouse", type=Path, help="wheels built elsewhere: archive these, build nothing")
    a = p.parse_args()
    if a.wheelhouse:
        wheels = sorted(a.wheelhouse.glob("*.whl"))
        if not wheels:
            print(f"{a.wheelhouse} holds no wheels (*.whl): check the role's *_wheelhouse variable", file=sys.stderr)
            return 2
        h = hashlib.sha256()
        for whl in wheels:
            h.update(whl.name.encode() + b"\0" + whl.read_bytes() + b"\0")
        digest, kind = h.hexdigest()[:16], "prebuilt-"
    else:
        project = a.project.resolve()
        if not (project / "pyproject.toml").exists():
            print(f"{project} is no Python project (no pyproject.toml): check python_package_source", file=sys.stderr)
            return 2
        digest, kind = sources_hash(project, a.constraints, a.extras), ""
    out = a.cache / f"{a.name}-{kind}{digest}"
    a.cache.mkdir(parents=True, exist_ok=True)
    # Every host of a free-strategy play asks at once: one builds, the others wait and reuse it.
    with (a.cache / f".{a.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / ".complete").exists() and (out / ARCHIVE).exists():
            status = "cached"
        elif (out / ".complete").exists() and any(out.glob("*.whl")):  # built before the archive existed
            archive(out, out / ARCHIVE)
            status = "cached"
        elif a.wheelhouse:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            archive(a.wheelhouse, out / ARCHIVE)
            (out / ".complete").touch()
            status = "cached"
        else:
            rc = build(a, project, out)
            if rc:
                return rc
            status = "built"
    print(f"{status}\n{digest}\n{out / ARCHIVE}")
    return 0


def archive(wheels: Path, dest: Path) -> None:
    """The wheels in one tar, the same bytes for the same wheels (sorted, no times or owners);
    written beside `dest` and renamed, so a cut-off run leaves no half archive."""

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
        return info

    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for whl in sorted(wheels.glob("*.whl")):
            tar.add(whl, arcname=whl.name, filter=plain)
    partial.rename(dest)


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
    archive(tmp, tmp / ARCHIVE)
    (tmp / ".complete").touch()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    # Older builds of this package: keep a few (a rollback), drop the rest.
    builds = [d for d in a.cache.glob(f"{a.name}-*") if (d / ".complete").exists() and "-prebuilt-" not in d.name]
    for old in sorted(builds, key=lambda d: (d / ".complete").stat().st_mtime, reverse=True)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
