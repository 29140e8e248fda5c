"""The pages' texts (the status board's and LKPP's national page): every one the templates and the
code ask for has its English in the catalogue (a missing one would show Bahasa Indonesia on the
English page without a word)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lpse_status import i18n, national_web, ops, public

STATUS = Path(public.__file__).parent


def asked() -> set[str]:
    texts: set[str] = set()
    for template in (STATUS / "templates").glob("*/*.html"):
        found = re.findall(r"""_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", template.read_text())
        texts |= {ast.literal_eval(m) for m in found}
    for module in ("public.py", "ops.py", "national_web.py"):
        code = ast.parse((STATUS / module).read_text())
        texts |= {str(c.args[0].value) for c in ast.walk(code) if isinstance(c, ast.Call)
                  and isinstance(c.func, ast.Name) and c.func.id == "_" and c.args
                  and isinstance(c.args[0], ast.Constant)}  # fmt: skip
    # Texts kept in tables and translated where they are shown.
    tables = [public.STATE_TEXT, ops.VISIT_FIELDS, national_web.STATE_NAMES, national_web.ERRORS]
    return texts | {text for table in tables for text in table.values()} | {g[0] for g in ops.GRAPHS}


def test_every_text_of_the_pages_has_its_english() -> None:
    english = i18n.read_po((STATUS / "locale/en/LC_MESSAGES/lpse_status.po").read_text())
    texts = asked()
    assert len(texts) > 140
    assert sorted(t for t in texts if not english.get(t)) == []
    assert sorted(set(english) - texts) == [], "translations nothing asks for"
    # The format placeholders survive translation.
    for msgid, msgstr in english.items():
        assert sorted(re.findall(r"%\(\w+\)", msgid)) == sorted(re.findall(r"%\(\w+\)", msgstr)), msgid
