"""The public page's texts: every one the template and lpse_status.public ask for has its English
in the catalogue (a missing one would show Bahasa Indonesia on the English page without a word)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lpse_status import public

STATUS = Path(public.__file__).parent


def asked() -> set[str]:
    template = (STATUS / "templates/status/public.html").read_text()
    texts = {ast.literal_eval(m) for m in re.findall(r"""_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", template)}
    code = ast.parse((STATUS / "public.py").read_text())
    texts |= {c.args[0].value for c in ast.walk(code) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
              and c.func.id == "_" and c.args and isinstance(c.args[0], ast.Constant)}  # fmt: skip
    return texts | set(public.STATE_TEXT.values())


def test_every_text_of_the_public_page_has_its_english() -> None:
    english = public.read_po((STATUS / "locale/en/LC_MESSAGES/lpse_status.po").read_text())
    texts = asked()
    assert len(texts) > 30
    assert sorted(t for t in texts if not english.get(t)) == []
    assert sorted(set(english) - texts) == [], "translations nothing asks for"
    # The format placeholders survive translation.
    for msgid, msgstr in english.items():
        assert sorted(re.findall(r"%\(\w+\)", msgid)) == sorted(re.findall(r"%\(\w+\)", msgstr)), msgid
