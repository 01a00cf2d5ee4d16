"""docs/security.md names, for every trust boundary and attack class, the test that proves its
control: every such reference must name a test that exists, and every module of tests/security must
be cited, so the threat model and the suite cannot drift apart."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.add(node.name)
    return names


def test_every_test_the_threat_model_cites_exists() -> None:
    refs = REF.findall(DOC.read_text(encoding="utf-8"))
    assert len(refs) >= 11, "the threat model cites a test for each control"
    missing = [f"{path}::{name}" for path, name in refs if name not in _tests_in(ROOT / path)]
    assert missing == []


def test_every_security_test_module_is_cited_by_the_threat_model() -> None:
    cited = {path for path, _ in REF.findall(DOC.read_text(encoding="utf-8"))}
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "security").glob("test_*.py")}
    assert modules - cited == set()
