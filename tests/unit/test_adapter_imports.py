"""The adapter wall: broker adapters (``hoga.brokers``) and market-data feeds
(``hoga.marketdata.feeds``) import only ``hoga.domain`` and their own package
(docs/architecture.md, "Rooms and dependencies"). The feed contract they implement lives in
``hoga.domain.feed`` for that reason. Checked by parsing the source, so an import under
``TYPE_CHECKING`` or inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import hoga

SRC = Path(hoga.__file__).parent

#: Each adapter package and what it may import besides ``hoga.domain`` and itself.
WALLS = {
    SRC / "brokers": "hoga.brokers",
    SRC / "marketdata" / "feeds": "hoga.marketdata.feeds",
}

#: Deliberate exceptions: (file relative to its package, imported module) -> why. None today:
#: the feeds beside the adapters implement ``hoga.domain.feed`` like every feed, and the
#: simulator takes its instruments through ``domain.feed.InstrumentSet``.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _hoga_imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hoga")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hoga":
            found.add(str(node.module))
    return found


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_adapters_import_only_the_domain_and_themselves() -> None:
    offenders: list[str] = []
    for root, own in WALLS.items():
        files = sorted(root.rglob("*.py"))
        assert files, root
        for path in files:
            rel = str(path.relative_to(root))
            for module in _hoga_imports(ast.parse(path.read_text(encoding="utf-8"))):
                if _inside(module, "hoga.domain") or _inside(module, own):
                    continue
                if (rel, module) not in EXCEPTIONS:
                    offenders.append(f"{own}/{rel} imports {module}")
    assert offenders == []


def test_no_relative_imports_hide_from_the_check() -> None:
    relative = [
        str(p)
        for root in WALLS
        for p in root.rglob("*.py")
        if any(
            isinstance(n, ast.ImportFrom) and n.level > 0
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        )
    ]
    assert relative == []
