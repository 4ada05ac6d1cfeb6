"""The strategy catalog: built-in strategies plus plugins from the ``hoga.strategies`` entry points.

The operator installs more strategies as Python packages that declare, in their metadata::

    [project.entry-points."hoga.strategies"]
    my_kind = "my_package.module:MyStrategy"

A plugin that fails to import, is not a :class:`Strategy` subclass, or reuses a kind already in
the catalog is skipped with a warning - one broken package never takes the catalog down.
``resolve`` turns a user's request (kind, symbols, params) into validated parameters, or a
refusal with a code and the offending field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from pydantic import ValidationError

from hoga.domain.errors import InvalidInput
from hoga.strategies.base import ParamError, Strategy, StrategyParams
from hoga.strategies.catalog import BUILTINS

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hoga.strategies"
_KIND = re.compile(r"[a-z][a-z0-9_]{1,63}")

StrategyClass = type[Strategy[Any]]


class Catalog:
    """Strategy classes by kind, with their public descriptions."""

    def __init__(self, classes: Iterable[StrategyClass]) -> None:
        self._classes: dict[str, StrategyClass] = {}
        for cls in classes:
            self.add(cls)

    def add(self, cls: StrategyClass, source: str = "built-in") -> bool:
        problem = _problem(cls)
        if problem is None and cls.kind in self._classes:
            problem = f"kind {cls.kind!r} is already in the catalog"
        if problem is not None:
            log.warning(
                "strategy %s (%s) skipped: %s", getattr(cls, "__name__", cls), source, problem
            )
            return False
        self._classes[cls.kind] = cls
        return True

    def kinds(self) -> list[str]:
        return list(self._classes)

    def __contains__(self, kind: object) -> bool:
        return kind in self._classes

    def get(self, kind: str) -> StrategyClass:
        cls = self._classes.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise InvalidInput(
                f"알 수 없는 전략 종류입니다: {kind!r} (unknown strategy kind; "
                f"one of {', '.join(self._classes)})",
                "strategy.unknown_kind",
                field="kind",
            )
        return cls

    def describe(self) -> list[dict[str, Any]]:
        return [describe(cls) for cls in self._classes.values()]

    def params(self, kind: str, raw: Any, symbols: tuple[str, ...] = ()) -> StrategyParams:
        """Validate ``raw`` against the kind's params model (and its symbol cross-checks)."""
        cls = self.get(kind)
        params = validate_params(cls, raw)
        if symbols:
            try:
                cls.check_setup(symbols, params)
            except ParamError as e:
                raise InvalidInput(e.message, "strategy.bad_params", field=e.field) from None
        return params


def _problem(cls: Any) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        return "not a hoga.strategies.base.Strategy subclass"
    if not isinstance(cls.kind, str) or not _KIND.fullmatch(cls.kind):
        return "kind must be 2-64 characters of a-z, 0-9 and _ starting with a letter"
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, StrategyParams)):
        return "Params must subclass StrategyParams"
    try:
        cls.Params()
    except ValidationError:
        return "every parameter needs a default"
    if not (cls.name and cls.name_en):
        return "name and name_en are required"
    return None


def validate_params(cls: StrategyClass, raw: Any) -> StrategyParams:
    if not isinstance(raw, dict):
        raise InvalidInput(
            "params는 객체여야 합니다 (params must be an object)",
            "strategy.bad_params",
            field="params",
        )
    try:
        return cls.Params.model_validate(raw)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, ParamError):
            field, message = cause.field, cause.message
        else:
            loc = [str(p) for p in first.get("loc", ())]
            field = ".".join(loc) or "params"
            message = f"{field}: {first.get('msg', 'invalid')}"
        raise InvalidInput(message, "strategy.bad_params", field=field) from None


def describe(cls: StrategyClass) -> dict[str, Any]:
    return {
        "kind": cls.kind,
        "name": cls.name,
        "name_en": cls.name_en,
        "description": cls.description,
        "description_en": cls.description_en,
        "params_schema": cls.Params.model_json_schema(),
        "defaults": cls.Params().model_dump(mode="json"),
        "min_symbols": cls.min_symbols,
        "max_symbols": cls.max_symbols,
    }


def load_catalog(*, plugins: bool = True) -> Catalog:
    """The built-ins, then every loadable plugin of the entry-point group."""
    catalog = Catalog(BUILTINS)
    if not plugins:
        return catalog
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:
        log.exception("reading the %s entry points failed", ENTRY_POINT_GROUP)
        return catalog
    for ep in eps:
        try:
            cls = ep.load()
        except Exception as e:
            log.warning("strategy plugin %s = %s failed to load: %s", ep.name, ep.value, e)
            continue
        catalog.add(cls, source=f"plugin {ep.name} = {ep.value}")
    return catalog
