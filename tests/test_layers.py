"""The layering issue 10 asks for: role packages decide, the store holds SQL.

A role package reaches data only through the store's unit of work (``store.write(lambda tx: ...)``,
``tx.<aggregate>``) and its readers: it imports no SQLAlchemy, no table and no piece of the store's
write machinery (engine, group committer), never calls the group committer itself, and writes an
audit event with ``tx.audit`` in the unit of work of what it audits (the old ``store.audit.record``
is gone). Inside the store, only the group committer (and the schema migration) opens a write
transaction: every aggregate writes through ``tx``, so there is one write idiom.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TypeGuard

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
    found = [(line, f"imports {module}") for line, module in _imports(tree) if _forbidden(module)]
    for node in ast.walk(tree):
        # The group committer is the store's business: role packages write with store.write.
        if isinstance(node, ast.Attribute) and node.attr in ("committer", "transact"):
            found.append((node.lineno, f"uses the store's .{node.attr}"))
        # An audit event belongs in the unit of work of the change it audits (tx.audit.append).
        elif isinstance(node, ast.Attribute) and node.attr == "record" and _names(node.value, "audit"):
            found.append((node.lineno, "records an audit event outside a unit of work"))
        elif _opens_transaction(node):
            found.append((node.lineno, "opens a transaction"))
    return [f"{name}:{line} {what}" for line, what in sorted(found, key=lambda item: item[0])]


def _names(node: ast.AST, name: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == name) or (
        isinstance(node, ast.Name) and node.id == name
    )


def _opens_transaction(node: ast.AST) -> TypeGuard[ast.Call]:
    """``<engine>.begin()`` (``engine``, ``_engine``, ``self._engine``, ``writer``...)."""
    if not (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "begin"
    ):
        return False
    target = node.func.value
    label = (
        target.attr
        if isinstance(target, ast.Attribute)
        else target.id
        if isinstance(target, ast.Name)
        else ""
    )
    return label.lstrip("_") in ("engine", "writer")


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
        "await self.store.audit.record(event)\n"
        "await self.rt.store.write(lambda tx: tx.audit.append('a', 'b', 'c'))\n"
        "async with self._engine.begin() as conn: pass\nasync with self._engine.connect() as conn: pass\n"
        "with writer.begin() as conn: pass\nconn.begin_nested()\n"
    )
    assert _check(ast.parse(sample), "sample.py") == [
        "sample.py:1 imports sqlalchemy",
        "sample.py:1 imports sqlalchemy.Connection",
        "sample.py:2 imports sqlalchemy.orm",
        "sample.py:3 imports asgate.store.schema_registry",
        "sample.py:5 uses the store's .committer",
        "sample.py:7 records an audit event outside a unit of work",
        "sample.py:9 opens a transaction",
        "sample.py:11 opens a transaction",
    ]


# The shared kernel (asgate.kernel) sits under everything: problem details, wire models, settings,
# logs, metrics, the URI policy, the web toolkit. The composition root (asgate.system) sits above
# every role: it builds the runtime and the roles a process runs, and serves them.
COMPOSITION = ("asgate.system.roles", "asgate.system.serving", "asgate.system.apidocs", "asgate.system.ops")
# Who may assemble processes: the composition root itself and the entry points that start one.
ASSEMBLERS = ("system", "cli", "demo", "samples")


def _asgate_imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(line, module) for line, module in _imports(tree) if module.split(".")[0] == "asgate"]


def test_the_kernel_imports_nothing_above_it() -> None:
    violations = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted((SRC / "kernel").rglob("*.py"))
        for line, module in _asgate_imports_of(path)
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
        for line, module in _asgate_imports_of(path)
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


# The store's own write machinery: the group committer's transaction, and the schema migration.
TRANSACTION_OWNERS = ("store/group_commit.py", "store/migrate.py")


def test_inside_the_store_only_the_group_committer_opens_a_write_transaction() -> None:
    """Every aggregate writes through ``tx`` (readers use ``engine.connect()``): a writer that opens
    its own transaction with ``engine.begin()`` is a second write idiom."""
    opened = [
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path in sorted((SRC / "store").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if _opens_transaction(node)
    ]
    assert opened, "the check finds nothing: has the group committer moved?"
    assert {entry.rsplit(":", 1)[0] for entry in opened} <= set(TRANSACTION_OWNERS), opened


# ---------------------------------------------------------------- the store depends on nothing above it

# What the store may import of asgate, directly or through what it imports (issue 10 §1): itself, the
# records it persists (asgate.domain), the shared kernel, and the low modules that import no other
# part of asgate (atrest, wire; cors through the domain's Origin).
BELOW_THE_STORE = (
    "asgate.store",
    "asgate.domain",
    "asgate.kernel",
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
        ("from asgate import system\n", "asgate.system"),
        ("from asgate.system.runtime import Runtime\n", "asgate.system.runtime"),
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
    asgate.kernel.atrest, through the store's engine, when the kernel is not allowed)."""
    found = _reach([], ("asgate.store",), ("asgate.store.sample", "import asgate.store.engine\n"))
    assert found == [
        "asgate.store.engine:12 imports asgate.kernel.atrest",
        "asgate.store.engine:12 imports asgate.kernel.atrest.sqlite_database",
    ]
