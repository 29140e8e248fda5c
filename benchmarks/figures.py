"""Where every benchmark writes its figures: benchmarks/results/<name>.json, with the commit (and
whether the working tree had changes) and the date, so a figure quoted in a README can be traced
to the run and the code that produced it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from lpse_lab import lab

RESULTS = lab.REPO / "benchmarks" / "results"


def default_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=lab.REPO, capture_output=True, text=True).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD")
    return f"{rev}+changes" if git("status", "--porcelain", "--untracked-files=no") else rev


# The code that runs is the code at the start: a benchmark takes up to an hour, commits may land meanwhile.
STARTED_AT = commit()


def write(name: str, figures: dict[str, Any], path: Path | None = None) -> Path:
    path = path or default_path(name)
    record = {"benchmark": name, "commit": STARTED_AT, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")} | figures
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    print(f"figures written to {path}")
    return path
