"""``hoga serve`` freezes what start-up built, and the collector still frees later cycles."""

from __future__ import annotations

import gc
import weakref

from hoga.ops.serving import settle_heap


class _Node:
    """A cyclic object (it refers to itself)."""

    def __init__(self) -> None:
        self.me = self


def test_settle_heap_freezes_start_up_and_later_cycles_are_still_collected() -> None:
    kept = _Node()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert all(o is not kept for o in gc.get_objects())  # frozen: out of the collector's reach
        later = _Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
