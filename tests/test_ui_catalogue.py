"""The dashboard's words: one catalogue per language (app/static/i18n/en.js, fr.js) with the
same keys and the same {placeholders}; every key the page and its modules look up is in them,
and they hold no key that nothing looks up; and no module or page writes a word of its own.

A key the browser tests do not reach (an error notice, a hand-set version's source) would
otherwise only fail in front of a user; a sentence written in a module would stay English on
the French page.
"""

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "app" / "static"
CATALOGUES = {path.stem: path for path in sorted((STATIC / "i18n").glob("*.js"))}
KEY = r"[a-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+"
ENTRY = re.compile(rf'^\s+"({KEY})":\s*"((?:[^"\\]|\\.)*)"', re.M)
PLACEHOLDER = re.compile(r"\{(\w+)\}")
LETTER = re.compile(r"[^\W\d_]")

# Messages that are the same words in English and French (codes, symbols, a language's own name
# is not among them: each catalogue names its own language).
SAME_IN_EVERY_LANGUAGE = {
    "signin.keyPlaceholder",
    "upload.namePlaceholder",
    "version.short",
    "version.active",
    "jobs.modelVersion",
    "jobs.actions",
    "jobs.version",
    "newJob.algorithm.sgd",
    "versions.title",
    "versions.version",
    "versions.theta",
    "versions.r2",
    "versions.actions",
    "models.intercept",
    "models.active",
    "charts.rmse",
    "charts.validation",
    "predict.versionLabel",
    "predict.total",
    "evaluation.version",
    "evaluation.rmse",
    "evaluation.mae",
    "evaluation.r2",
    "leaderboard.version",
    "leaderboard.actions",
    "training.allPoints",
}


def catalogue(language: str) -> dict[str, str]:
    text = CATALOGUES[language].read_text(encoding="utf-8")
    entries = ENTRY.findall(text)
    keys = re.findall(rf'^\s+"({KEY})":', text, re.M)
    assert len(entries) == len(keys), f"{language}: a message that is not one plain string"
    assert len(set(keys)) == len(keys), f"{language}: a key written twice"
    return dict(entries)


def page_keys() -> set[str]:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return set(re.findall(rf'data-i18n(?:-[a-z-]+)?="({KEY})"', html))


def modules() -> dict[str, str]:
    paths = [
        path
        for path in STATIC.rglob("*.js")
        if "vendor" not in path.parts and path.parent.name != "i18n"
    ]
    return {str(path.relative_to(STATIC)): path.read_text(encoding="utf-8") for path in paths}


def looked_up(sources: list[str]) -> tuple[set[str], set[str]]:
    """The keys in t(...) calls, and the prefixes of keys built as t(`prefix.${...}`)."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    for source in sources:
        for call in re.findall(r"\bt\(([^()]*)", source):
            keys.update(re.findall(rf'"({KEY})"', call))
            prefixes.update(re.findall(r"`([a-z][A-Za-z0-9.]*\.)\$\{", call))
    return keys, prefixes


def test_there_are_an_english_and_a_french_catalogue() -> None:
    assert set(CATALOGUES) == {"en", "fr"}
    for language, path in CATALOGUES.items():
        text = path.read_text(encoding="utf-8")
        assert re.search(rf'^export const locale = "{language}-[A-Z]{{2}}";$', text, re.M)


def test_the_catalogues_have_the_same_keys_and_placeholders() -> None:
    english, french = catalogue("en"), catalogue("fr")
    assert sorted(set(english) ^ set(french)) == []
    for key, text in english.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(french[key])), key
        assert text.count("`") == french[key].count("`"), key


def test_french_is_french() -> None:
    """Every message is translated (but a few codes and symbols), and written with French
    typography: a no-break space before : ; ? ! % and inside « »."""
    english, french = catalogue("en"), catalogue("fr")
    untranslated = sorted(
        key for key in english if english[key] == french[key] and LETTER.search(english[key])
    )
    assert untranslated == sorted(SAME_IN_EVERY_LANGUAGE & set(untranslated))
    assert sorted(SAME_IN_EVERY_LANGUAGE - set(english)) == []
    for key, text in french.items():
        prose = re.sub(r"`[^`]*`", "", text)  # code keeps its own spelling
        assert not re.search(r" [:;?!%»]|« ", prose), key
        assert not re.search(r"[^\s\u00a0][:;?!»%]|«[^\u00a0]", prose), key
    # A few words a French school writes its own way, accents included.
    words = " ".join(french.values())
    for word in ("Évaluation", "cohorte", "élève", "note", "modèle", "active"):
        assert word in words, word


def test_every_key_looked_up_is_in_the_catalogues() -> None:
    keys, prefixes = looked_up(list(modules().values()))
    assert keys, "no t() call found: the pattern no longer matches the modules"
    for language in CATALOGUES:
        known = set(catalogue(language))
        assert sorted((keys | page_keys()) - known) == [], language
        for prefix in prefixes:
            assert any(key.startswith(prefix) for key in known), (language, prefix)


def test_no_key_is_left_unused() -> None:
    keys, prefixes = looked_up(list(modules().values()))
    used = keys | page_keys() | {"language.name"}  # read by i18n.js for the switch
    unused = [
        key
        for key in set(catalogue("en")) - used
        if not any(key.startswith(prefix) for prefix in prefixes)
    ]
    assert unused == []


# Where a literal becomes words on the screen: these properties of an object (el()'s
# attributes, uPlot's series and axes), these calls' arguments, el()'s children (from its
# third argument), t()'s values, and an assignment to textContent.
VISIBLE_PROPERTIES = {"text", "aria-label", "title", "placeholder", "alt", "label", "textContent"}
VISIBLE_CALLS = {"notify", "append", "prepend", "replaceChildren", "alert", "confirm", "prompt"}
NOT_THE_DOM = {"form"}  # FormData's append(name, value) names a field


# A "/" after one of these starts a regular expression; after anything else it divides.
REGEX_MAY_FOLLOW = {"", "(", ",", "=", ":", "[", "!", "&", "|", "?", "{", "}", ";", "return"}


@dataclass
class Frame:
    """One open bracket: `(` of a call (its callee and argument index), `{`, `[` or `${`."""

    kind: str
    callee: str = ""
    receiver: str = ""
    argument: int = 0
    property: str = ""
    at_property_start: bool = True
    assigning_text: bool = False
    visible: bool = False
    parts: list[str] = field(default_factory=list)


class LiteralScanner:
    """A small JavaScript lexer, enough for these modules: strings, templates (with nested
    `${…}`), comments and regular-expression literals, and the brackets around them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.index = 0
        self.frames = [Frame("top")]
        self.previous = ""  # the last significant token
        self.before_previous = ""
        self.receiver = ""  # the name before the last "."
        self.found: list[tuple[int, str]] = []

    def line(self, index: int) -> int:
        return self.source.count("\n", 0, index) + 1

    def visible_here(self) -> bool:
        """Whether a literal at the current position would be shown to the user."""
        for frame in reversed(self.frames):
            if frame.kind == "[":
                continue  # el() flattens arrays of children
            if frame.kind == "${":
                return frame.visible
            if frame.assigning_text:
                return True
            if frame.kind == "(":
                if frame.receiver in NOT_THE_DOM:
                    return False
                if frame.callee == "el":
                    return frame.argument >= 2
                if frame.callee == "t":
                    return frame.argument >= 1
                return frame.callee in VISIBLE_CALLS
            if frame.kind == "{":
                if frame.property in VISIBLE_PROPERTIES:
                    return True
                parent = self.frames[self.frames.index(frame) - 1]
                return parent.kind == "(" and parent.callee == "t" and parent.argument >= 1
            return False
        return False

    def token(self, text: str) -> None:
        if text == ".":
            self.receiver = self.previous
        self.before_previous, self.previous = self.previous, text

    def literal(self, start: int, static_text: str) -> None:
        frame = self.frames[-1]
        following = self.source[self.index :].lstrip()[:1]
        is_property_name = frame.kind == "{" and frame.at_property_start and following == ":"
        if not is_property_name and LETTER.search(static_text) and self.visible_here():
            self.found.append((self.line(start), static_text))
        if is_property_name:
            frame.property = static_text
        elif frame.kind == "{":
            frame.at_property_start = False
        self.token("literal")

    def string(self, quote: str) -> None:
        start = self.index
        self.index += 1
        while self.source[self.index] != quote:
            self.index += 2 if self.source[self.index] == "\\" else 1
        self.index += 1
        self.literal(start, self.source[start + 1 : self.index - 1])

    def template(self) -> None:
        """A template literal: its static parts are judged together, where it stands."""
        start = self.index
        self.index += 1
        static: list[str] = []
        visible = self.visible_here()
        while self.source[self.index] != "`":
            if self.source.startswith("${", self.index):
                self.index += 2
                self.frames.append(Frame("${", visible=visible))
                self.scan(until_frame=len(self.frames) - 1)
                continue
            static.append(self.source[self.index])
            self.index += 2 if self.source[self.index] == "\\" else 1
        self.index += 1
        self.literal(start, "".join(static))

    def regex_may_start(self) -> bool:
        return self.previous in REGEX_MAY_FOLLOW

    def regex(self) -> None:
        self.index += 1
        in_class = False
        while True:
            char = self.source[self.index]
            if char == "\\":
                self.index += 2
                continue
            if char == "[":
                in_class = True
            elif char == "]":
                in_class = False
            elif char == "/" and not in_class:
                break
            self.index += 1
        self.index += 1
        while self.index < len(self.source) and self.source[self.index].isalpha():
            self.index += 1
        self.token("regex")

    def open(self, char: str) -> None:
        frame = Frame(char)
        if char == "(" and re.fullmatch(r"[A-Za-z_$][\w$]*", self.previous):
            frame.callee = self.previous
            if self.before_previous == ".":
                frame.receiver = self.receiver
        self.frames.append(frame)
        self.token(char)

    def punctuation(self, char: str) -> None:
        frame = self.frames[-1]
        if char == ",":
            frame.argument += 1
            frame.property = ""
            frame.at_property_start = True
        elif char == ";":
            frame.assigning_text = False
        elif char == "=" and self.previous == "textContent" and self.before_previous == ".":
            if self.source[self.index : self.index + 1] not in {"=", ">"}:
                frame.assigning_text = True
        elif char != ":" and frame.kind == "{":
            frame.at_property_start = False
        self.token(char)

    def scan(self, until_frame: int = 0) -> list[tuple[int, str]]:
        """Walk the source (or, inside `${`, up to its closing brace); return the visible
        literals with a letter, by line."""
        source = self.source
        while self.index < len(source):
            char = source[self.index]
            if source.startswith("//", self.index):
                end = source.find("\n", self.index)
                self.index = len(source) if end < 0 else end
            elif source.startswith("/*", self.index):
                self.index = source.index("*/", self.index) + 2
            elif char in "\"'":
                self.string(char)
            elif char == "`":
                self.template()
            elif char == "/" and self.regex_may_start():
                self.regex()
            elif char in "([{":
                self.open(char)
                self.index += 1
            elif char in ")]}":
                closing = self.frames.pop()
                self.index += 1
                self.token(char)
                if until_frame and closing.kind == "${" and len(self.frames) == until_frame:
                    return self.found
            elif char.isspace():
                self.index += 1
            else:
                match = re.compile(r"[A-Za-z_$][\w$]*|\d[\w.]*|\S").match(source, self.index)
                assert match
                word = match.group(0)
                self.index = match.end()
                if re.fullmatch(r"[A-Za-z_$][\w$]*", word):
                    frame = self.frames[-1]
                    starts_property = frame.kind == "{" and frame.at_property_start
                    if starts_property and source[self.index :].lstrip()[:1] == ":":
                        frame.property = word
                    self.token(word)
                else:
                    self.punctuation(word)
        return self.found


def visible_literals(source: str) -> list[tuple[int, str]]:
    return LiteralScanner(source).scan()


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('el("p", {}, "Hello")', ["Hello"]),
        ('el("button", { type: "button", class: "secondary", text: "Cancel" })', ["Cancel"]),
        ('el("td", { text: job.version ? `v${job.version}` : MISSING })', ["v"]),
        ('node.textContent = done ? "Finished" : "";', ["Finished"]),
        ('notify(t("cohorts.uploaded", { name: "untitled" }))', ["untitled"]),
        ('series.push({ label: "training", stroke: "#2458d3" })', ["training"]),
        ("section.replaceChildren(el('h2', { text: `Run ${name}` }), ' · ')", ["Run "]),
        ('el("a", { "aria-label": `${label}: ${x ? "yes" : "no"}` })', ["yes", "no"]),
        # Not words on the screen: keys, tags, classes, ids, selectors, attribute names, API fields.
        ('el("span", { class: "status active", text: t("models.active") })', []),
        ('$("loss-chart").querySelector(`[data-column="${column}"] .histogram`)', []),
        ('request("GET", `/models/${name}/versions`, { json: { cohort_id: id } })', []),
        ('if (name === "class") node.className = value; el("td", { text: cohort.name })', []),
        ('const SKIPPED = /[;,\\t](special_mark|"x")[;,\\t]/g; el("b", {}, count(n), " · ")', []),
        ('el("option", { value: "", text: MISSING }) // el("p", {}, "a comment")', []),
    ],
)
def test_the_literal_scanner(snippet: str, expected: list[str]) -> None:
    assert [text for _, text in visible_literals(snippet)] == expected


def test_no_module_writes_words_of_its_own() -> None:
    found = {
        (name, line, text)
        for name, source in modules().items()
        for line, text in visible_literals(source)
    }
    assert sorted(found) == []


class PageText(HTMLParser):
    """The page's words outside the catalogue: text and visible attributes written in it."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.ignored = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self.ignored += 1
        for name, value in attrs:
            if name in {"aria-label", "title", "placeholder", "alt"} and value:
                self.words.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self.ignored -= 1

    def handle_data(self, data: str) -> None:
        if not self.ignored and LETTER.search(data):
            self.words.append(data.strip())


def test_the_page_writes_no_words_of_its_own() -> None:
    parser = PageText()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    # The product's name and its logo, h_Θ, are the same in every language.
    assert parser.words == ["h", "Θ", "gradecast"]
