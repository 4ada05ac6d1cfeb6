"""Routers translate HTTP to service calls and back: none imports ``hoga.store`` or opens a
transaction (docs/architecture.md, "Rooms and dependencies"). Checked by parsing the source, so
an import under ``TYPE_CHECKING`` or inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import hoga.api

API = Path(hoga.api.__file__).parent


def _routers() -> list[Path]:
    return sorted(p for p in API.glob("*.py") if "APIRouter(" in p.read_text(encoding="utf-8"))


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_there_are_routers_to_check() -> None:
    names = {p.stem for p in _routers()}
    assert {"orders", "portfolio", "fills", "market", "me"} <= names


def test_no_router_imports_the_store() -> None:
    offenders = {
        p.name: sorted(m for m in _imports(ast.parse(p.read_text(encoding="utf-8"))) if _store(m))
        for p in _routers()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_router_opens_a_transaction() -> None:
    offenders = []
    for p in _routers():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("tx", "db"):
                offenders.append(f"{p.name}:{node.lineno} .{node.attr}")
    assert offenders == []


def _store(module: str) -> bool:
    return module == "hoga.store" or module.startswith("hoga.store.")
