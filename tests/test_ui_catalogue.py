"""The dashboard's words: every key that the page and its modules look up is in the English
catalogue (app/static/i18n/en.js), and the catalogue holds no key that nothing looks up.

A key the browser tests do not reach (an error notice, a hand-set version's source) would
otherwise only fail in front of a user.
"""

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "app" / "static"
CATALOGUE = STATIC / "i18n" / "en.js"
KEY = r"[a-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+"


def catalogue_keys() -> set[str]:
    return set(re.findall(rf'^\s+"({KEY})":', CATALOGUE.read_text(encoding="utf-8"), re.M))


def page_keys() -> set[str]:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return set(re.findall(rf'data-i18n(?:-[a-z-]+)?="({KEY})"', html))


def module_sources() -> list[str]:
    modules = [path for path in STATIC.rglob("*.js") if "vendor" not in path.parts]
    return [path.read_text(encoding="utf-8") for path in modules if path != CATALOGUE]


def looked_up(sources: list[str]) -> tuple[set[str], set[str]]:
    """The keys in t(...) calls, and the prefixes of keys built as t(`prefix.${...}`)."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    for source in sources:
        for call in re.findall(r"\bt\(([^()]*)", source):
            keys.update(re.findall(rf'"({KEY})"', call))
            prefixes.update(re.findall(r"`([a-z][A-Za-z0-9.]*\.)\$\{", call))
    return keys, prefixes


def test_every_key_looked_up_is_in_the_catalogue() -> None:
    keys, prefixes = looked_up(module_sources())
    known = catalogue_keys()
    assert keys, "no t() call found: the pattern no longer matches the modules"
    assert sorted((keys | page_keys()) - known) == []
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in known), prefix


def test_no_key_is_left_unused() -> None:
    keys, prefixes = looked_up(module_sources())
    used = keys | page_keys()
    unused = [
        key
        for key in catalogue_keys() - used
        if not any(key.startswith(prefix) for prefix in prefixes)
    ]
    assert unused == []
