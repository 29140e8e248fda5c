"""The pages' languages: Bahasa Indonesia is the source (each text in the code and templates is
the Indonesian one), English comes from a gettext catalogue (locale/en/LC_MESSAGES/lpse_status.po),
one for the status board and LKPP's national page. The catalogue is read once, at the first page,
by a small reader of the .po format (msgid/msgstr, no plurals): no compiled .mo file to build or
keep in step."""

from __future__ import annotations

import ast
import functools
import gettext
from importlib import resources

import jinja2

LANGUAGES = ("id", "en")


class Catalogue(gettext.NullTranslations):
    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self.messages = messages

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message


def read_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file: quoted strings, continued on the following lines."""
    messages: dict[str, str] = {}
    key: str | None = None
    current = {"msgid": "", "msgstr": ""}
    for line in [*text.splitlines(), ""]:
        line = line.strip()
        if line.startswith(("msgid ", "msgstr ")):
            key, _, rest = line.partition(" ")
            if key == "msgid" and current["msgid"]:
                messages[current["msgid"]] = current["msgstr"]
                current = {"msgid": "", "msgstr": ""}
            current[key] = ast.literal_eval(rest)
        elif line.startswith('"') and key:
            current[key] += ast.literal_eval(line)
        elif not line or line.startswith("#"):
            key = None if not line else key
    if current["msgid"]:
        messages[current["msgid"]] = current["msgstr"]
    return messages


@functools.cache
def catalogue(lang: str) -> gettext.NullTranslations:
    if lang == "id":
        return gettext.NullTranslations()
    po = resources.files("lpse_status") / "locale" / lang / "LC_MESSAGES" / "lpse_status.po"
    return Catalogue(read_po(po.read_text(encoding="utf-8")))


@functools.cache
def environment(lang: str, pages: str) -> jinja2.Environment:
    """The templates of `pages` (templates/<pages>/: status, national) with `_()` in `lang`. An
    undefined name is an error, not an empty string: a test sees it, not a reader."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lpse_status", f"templates/{pages}"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(catalogue(lang), newstyle=True)  # type: ignore[attr-defined]
    return env
