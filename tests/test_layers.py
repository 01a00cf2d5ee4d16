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


# The shared kernel (asgate.kernel) sits under everything: problem details, wire models, settings,
# logs, metrics, the URI policy, the web toolkit. The composition root (asgate.system) sits above
# every role: it builds the runtime and the roles a process runs, and serves them.
COMPOSITION = ("asgate.system.roles", "asgate.system.serving", "asgate.system.apidocs", "asgate.system.ops")
# Who may assemble processes: the composition root itself and the entry points that start one.
ASSEMBLERS = ("system", "cli", "demo", "samples")


def _asgate_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(line, module) for line, module in _imports(tree) if module.split(".")[0] == "asgate"]


def test_the_kernel_imports_nothing_above_it() -> None:
    violations = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted((SRC / "kernel").rglob("*.py"))
        for line, module in _asgate_imports(path)
        if not module.startswith("asgate.kernel")
    ]
    assert violations == []


def test_no_loose_modules_outside_the_kernel_and_the_composition_root() -> None:
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == []


def test_only_the_composition_root_assembles_processes() -> None:
    violations = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] not in ASSEMBLERS
        for line, module in _asgate_imports(path)
        if any(module == m or module.startswith(m + ".") for m in COMPOSITION)
    ]
    assert violations == []


def test_every_role_class_lives_in_its_package_role_module() -> None:
    found = {
        str(path.relative_to(SRC)): node.name
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Role") and node.name != "Role"
    }
    misplaced = {
        name: cls
        for name, cls in found.items()
        if not (name.endswith("/role.py") or name.startswith("system/"))
    }
    assert misplaced == {}
    assert {n for n in found if n.endswith("/role.py")} == {
        "access/role.py",
        "idm/role.py",
        "msgin5g/role.py",
        "registry/role.py",
    }
