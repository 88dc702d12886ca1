"""The rooms of app/ and their rules, checked on the source: layers import only downwards,
the engine is plain numpy, and a long function says why it is long."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
MAX_FUNCTION_LINES = 60
# Each package may import from the ones listed (and from itself); nothing else of app.
ALLOWED_IMPORTS = {
    "engine": set(),
    "core": {"db"},
    "tables": {"core"},
    "db": {"core", "tables"},  # a stored block's ids are packed as app.tables.ids packs them
    "schemas": {"core", "db", "engine", "tables"},
    "services": {"core", "db", "engine", "schemas", "tables"},
    "worker": {"core", "db", "engine", "schemas", "services"},
    "api": {"core", "db", "engine", "schemas", "services", "tables"},
}
WEB_OR_DATABASE = ("fastapi", "starlette", "pydantic", "sqlalchemy", "alembic", "orjson")


def modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(APP)))
def test_layers_import_only_downwards(path: Path) -> None:
    package = path.relative_to(APP).parts[0]
    if package not in ALLOWED_IMPORTS:
        return  # main.py, cli.py: the top, which wires everything
    allowed = ALLOWED_IMPORTS[package] | {package}
    for name in imported(path):
        parts = name.split(".")
        if parts[0] == "app" and len(parts) > 1:
            assert parts[1] in allowed, f"{path.relative_to(APP)} imports {name}"
        if package == "engine":
            assert parts[0] not in WEB_OR_DATABASE, f"the engine imports {name}"


def test_no_module_lives_loose_at_the_top_but_the_entry_points() -> None:
    loose = {p.name for p in APP.glob("*.py")}
    assert loose == {"__init__.py", "main.py", "cli.py"}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(APP)))
def test_a_long_function_says_why(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            docstring = ast.get_docstring(node) or ""
            assert "Long because" in docstring, (
                f"{path.relative_to(APP)}:{node.lineno} {node.name} is {length} lines; split "
                "it, or say in its docstring why it is long ('Long because ...')"
            )
