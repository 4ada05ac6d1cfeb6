"""Bounds for every number the API accepts (issue 12: integers past 2^63 gave 500s).

Ids are BIGINT in PostgreSQL and 64-bit integers in SQLite: a larger value cannot name a row,
and sent to the database it overflows in the driver. The schema now says so - the OpenAPI
document carries the bound, so clients and fuzzers see it - and FastAPI answers 422
``validation_error`` before any handler runs. ``tests/integration/test_input_bounds.py`` walks
the OpenAPI document and fails on any integer parameter or body field without a maximum.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Path

#: The largest value a BIGINT column (or SQLite INTEGER) holds.
MAX_INT = 2**63 - 1
MAX_ID = MAX_INT

#: A row id in a path: 1 .. 2^63-1.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

#: The calendar dates a date window may name. Outside them lies no trading day, and at the ends
#: of ``date``'s range the arithmetic behind a window (90 days back, a day on) overflows: a
#: 500 that ``make fuzz`` found at ``/api/portfolio/daily?to=0001-01-01``.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)

#: Every request body, enforced while it is read (``api/guard.py``): 413
#: ``request.too_large`` - at once when Content-Length says more, else when the cap is passed.
MAX_JSON_BODY = 1024 * 1024
#: ``POST /api/backtests`` carries a CSV of bars in its JSON body: its own, larger cap.
MAX_CSV_UPLOAD = 16 * 1024 * 1024
#: Routes whose bodies may be larger than ``MAX_JSON_BODY``.
BODY_CAPS = {("POST", "/api/backtests"): MAX_CSV_UPLOAD}


def body_cap(method: str, path: str) -> int:
    return BODY_CAPS.get((method, path.rstrip("/") or "/"), MAX_JSON_BODY)
