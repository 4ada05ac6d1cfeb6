"""The dashboard's weight: JavaScript a browser downloads for the chart page, raw and gzip-
compressed as hoga serves it (``api/static_files.py``, gzip level 9).

The chart page loads every module reachable from ``js/main.js`` (static imports) plus the
chart library (a dynamic import from ``js/charts.js``). Target (issue 16): under 400 KB of
compressed JavaScript; plotly.js alone was 4.8 MB raw. The browser test
``test_chart_page_loads_under_400_kb_of_compressed_javascript`` measures the same on the wire.

Run: ``.venv/bin/python -m benchmarks.bench_dashboard``.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "src" / "hoga" / "web" / "static"
IMPORT = re.compile(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")
DYNAMIC = re.compile(r"""const LIB = "(\.{1,2}/[^"]+)";""")


def reachable(entry: Path) -> list[Path]:
    seen: list[Path] = []
    todo = [entry]
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.append(path)
        text = path.read_text(encoding="utf-8")
        for spec in IMPORT.findall(text) + DYNAMIC.findall(text):
            todo.append((path.parent / spec).resolve())
    return seen


def main(argv: list[str] | None = None) -> int:
    files = reachable(STATIC / "js" / "main.js")
    raw = gz = 0
    rows = []
    for path in files:
        data = path.read_bytes()
        packed = len(gzip.compress(data, compresslevel=9, mtime=0))
        raw += len(data)
        gz += packed
        rows.append((packed, len(data), path.relative_to(STATIC)))
    for packed, size, name in sorted(rows, reverse=True)[:8]:
        print(f"  {name}: {size:,} B raw, {packed:,} B gzip")
    print(f"modules: {len(files)}")
    print(f"chart page JavaScript: {raw:,} B raw, {gz:,} B gzip (target < 400,000 B gzip)")
    return 0 if gz < 400_000 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
