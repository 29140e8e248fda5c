"""The documentation a clone carries points only at what the clone has."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP = {".venv", "node_modules", "build", ".git"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")


def documents() -> list[Path]:
    return [p for p in REPO.rglob("*.md") if not SKIP & set(p.relative_to(REPO).parts)]


def test_links_resolve_inside_the_repository() -> None:
    broken = []
    for doc in documents():
        text = doc.read_text()
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.is_relative_to(REPO) or not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
        # A path in code quotes that climbs out of the checkout names something a clone lacks.
        broken += [f"{doc.relative_to(REPO)}: `{c}`" for c in CODE.findall(text) if c.startswith("../")]
    assert not broken, broken


def test_readme_layout_names_every_role_and_playbook() -> None:
    readme = REPO.joinpath("README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    words = set(re.findall(r"[\w.+-]+", layout))
    roles = {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}
    playbooks = {p.name for p in (REPO / "playbooks").iterdir() if p.suffix in (".yml", ".py")}
    assert roles - words == set() and playbooks - words == set()
