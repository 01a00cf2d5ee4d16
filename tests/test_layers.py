"""The layering issue 10 asks for: role packages decide, the store holds SQL.

A role package reaches data only through the store's unit of work (``store.write(lambda tx: ...)``,
``tx.<aggregate>``) and its readers: it imports no SQLAlchemy, no table and no piece of the store's
write machinery (engine, group committer), and never calls the group committer itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "asgate"
ROLE_PACKAGES = ("registry", "msgin5g", "idm", "access", "client", "cli")
FORBIDDEN_MODULES = (
    "sqlalchemy",
    "asgate.store.schema",
    "asgate.store.schema_idm",
    "asgate.store.schema_registry",
    "asgate.store.engine",
    "asgate.store.group_commit",
)
# Files the other parts of issue 10 have not converted yet (none today); remove an entry once its
# file is converted, so that the test then guards it too.
KNOWN_EXCEPTIONS: frozenset[str] = frozenset()


def _role_files() -> list[Path]:
    return sorted(path for package in ROLE_PACKAGES for path in (SRC / package).rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _forbidden(module: str) -> bool:
    return any(module == banned or module.startswith(banned + ".") for banned in FORBIDDEN_MODULES)


def _violations(path: Path) -> list[str]:
    return _check(ast.parse(path.read_text(), filename=str(path)), str(path.relative_to(SRC)))


def _check(tree: ast.AST, name: str) -> list[str]:
    found = [f"{name}:{line} imports {module}" for line, module in _imports(tree) if _forbidden(module)]
    for node in ast.walk(tree):
        # The group committer is the store's business: role packages write with store.write.
        if isinstance(node, ast.Attribute) and node.attr in ("committer", "transact"):
            found.append(f"{name}:{node.lineno} uses the store's .{node.attr}")
    return found


def test_the_role_packages_exist() -> None:
    files = _role_files()
    assert {path.relative_to(SRC).parts[0] for path in files} == set(ROLE_PACKAGES)


@pytest.mark.parametrize("package", ROLE_PACKAGES)
def test_a_role_package_reaches_data_only_through_the_store(package: str) -> None:
    violations = [
        v
        for path in sorted((SRC / package).rglob("*.py"))
        if str(path.relative_to(SRC)) not in KNOWN_EXCEPTIONS
        for v in _violations(path)
    ]
    assert violations == []


def test_the_known_exceptions_are_still_exceptions() -> None:
    """An entry of KNOWN_EXCEPTIONS that no longer breaks the rule must go (the list only shrinks)."""
    stale = [name for name in sorted(KNOWN_EXCEPTIONS) if not _violations(SRC / name)]
    assert stale == []


def test_the_check_sees_what_it_forbids() -> None:
    sample = (
        "from sqlalchemy import Connection\nimport sqlalchemy.orm\n"
        "from asgate.store import schema_registry\nfrom asgate.store.tx import Tx\n"
        "store.committer.submit(f, x)\nstore.write(lambda tx: tx.apps.get('a'))\n"
    )
    assert _check(ast.parse(sample), "sample.py") == [
        "sample.py:1 imports sqlalchemy",
        "sample.py:1 imports sqlalchemy.Connection",
        "sample.py:2 imports sqlalchemy.orm",
        "sample.py:3 imports asgate.store.schema_registry",
        "sample.py:5 uses the store's .committer",
    ]


# ---------------------------------------------------------------- the store depends on nothing above it

# What the store may import of asgate, directly or through what it imports (issue 10 §1): itself, the
# records it persists (asgate.domain), the shared kernel, and the low modules that import no other
# part of asgate (atrest, wire; cors through the domain's Origin).
BELOW_THE_STORE = (
    "asgate.store",
    "asgate.domain",
    "asgate.kernel",
    "asgate.atrest",
    "asgate.wire",
    "asgate.cors",
)
# The domain records lie below the store: the same, without the store.
BELOW_THE_DOMAIN = tuple(name for name in BELOW_THE_STORE if name != "asgate.store")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _asgate_imports(source: str, module: str, *, package: bool = False) -> list[tuple[int, str]]:
    """Every asgate module ``module`` (of text ``source``) imports, absolute or relative, at any
    depth of the file (in a function, under TYPE_CHECKING)."""
    anchor = module.split(".") if package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "asgate" or name.startswith("asgate.")]


def _within(module: str, allowed: tuple[str, ...]) -> bool:
    # ``import asgate`` (the package's __init__, a version string) is below everything.
    return module == "asgate" or any(module == a or module.startswith(a + ".") for a in allowed)


def _source(module: str) -> Path | None:
    """The file of ``module``, or None for a name that is not a module (a class, a function)."""
    base = SRC.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reach(start: list[Path], allowed: tuple[str, ...], sample: tuple[str, str] | None = None) -> list[str]:
    """Imports outside ``allowed`` made by ``start`` (and ``sample``, a module's name and text) or
    by any asgate module they reach."""
    found: list[str] = []
    seen, todo = set(start), list(start)
    pending = [sample] if sample else []
    while todo or pending:
        if pending:
            name, source, is_package = *pending.pop(), False
        else:
            path = todo.pop()
            name, source, is_package = _module_name(path), path.read_text(), path.name == "__init__.py"
        for line, module in _asgate_imports(source, name, package=is_package):
            if not _within(module, allowed):
                found.append(f"{name}:{line} imports {module}")
            elif (target := _source(module)) is not None and target not in seen:
                seen.add(target)
                todo.append(target)
    return sorted(found)


def test_the_store_depends_on_nothing_above_it() -> None:
    """No module of asgate.store imports a role package (registry, idm, msgin5g, access, auth, the
    SDK, the CLI, the demo, the samples) or the composition root, nor reaches one through another
    module: the records it persists and returns are asgate.domain's."""
    assert _reach(sorted((SRC / "store").rglob("*.py")), BELOW_THE_STORE) == []


def test_the_domain_records_lie_below_the_store() -> None:
    files = sorted((SRC / "domain").rglob("*.py"))
    assert {path.stem for path in files} >= {"registry", "idm", "msgin5g"}
    assert _reach(files, BELOW_THE_DOMAIN) == []


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from asgate.registry.models import Grant\n", "asgate.registry.models"),
        ("if TYPE_CHECKING:\n    from asgate.idm.models import User\n", "asgate.idm.models"),
        ("def f():\n    import asgate.msgin5g.models\n", "asgate.msgin5g.models"),
        ("from ...access import policy\n", "asgate.access"),
        ("from .. import msgs, tx\n", None),
        ("from asgate import settings\n", "asgate.settings"),
        ("from asgate.web import json_response\n", "asgate.web"),
    ],
)
def test_the_dependency_check_sees_what_it_forbids(source: str, module: str | None) -> None:
    """The check follows relative imports and imports in functions or TYPE_CHECKING blocks."""
    found = _reach([], BELOW_THE_STORE, ("asgate.store.registry.sample", source))
    if module is None:
        assert found == []
    else:
        assert any(v.endswith(f"imports {module}") for v in found), found


def test_the_dependency_check_follows_what_an_allowed_module_imports() -> None:
    """A module outside the allowed set reached through an allowed one is caught too (here
    asgate.atrest, through the store's engine, when atrest is not allowed)."""
    found = _reach(
        [], ("asgate.store", "asgate.kernel"), ("asgate.store.sample", "import asgate.store.engine\n")
    )
    assert found == [
        "asgate.store.engine:12 imports asgate.atrest",
        "asgate.store.engine:12 imports asgate.atrest.sqlite_database",
    ]
