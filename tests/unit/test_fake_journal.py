"""The fakes' journal: records read back in order; a crash mid-write loses only that record."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoga.fakes.journal import Journal, JournalError, restore_from


def test_records_come_back_in_order(tmp_path: Path) -> None:
    j = Journal(tmp_path / "sub" / "j.jsonl")
    assert j.load() == []
    j.write({"t": "order", "n": 1, "name": "삼성전자"})
    j.write({"t": "seq", "next": 2})
    j.close()
    assert Journal(j.path).load() == [
        {"t": "order", "n": 1, "name": "삼성전자"},
        {"t": "seq", "next": 2},
    ]


def test_a_torn_last_record_is_cut_and_appends_continue(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"t":"order","n":1}\n{"t":"order","n"')
    j = Journal(path)
    assert j.load() == [{"t": "order", "n": 1}]
    assert path.read_bytes() == b'{"t":"order","n":1}\n'
    j.write({"t": "order", "n": 2})
    j.close()
    assert [r["n"] for r in Journal(path).load()] == [1, 2]


def test_a_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"t":"order","n":1}')
    j = Journal(path)
    assert j.load() == [{"t": "order", "n": 1}]
    j.write({"t": "order", "n": 2})
    j.close()
    assert [r["n"] for r in Journal(path).load()] == [1, 2]


def test_damage_before_the_end_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"t":"order","n":1}\nnot json\n{"t":"order","n":3}\n')
    with pytest.raises(JournalError, match="damaged"):
        Journal(path).load()


def test_records_that_do_not_fit_the_book_name_the_file(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    j.write({"t": "order"})
    j.close()

    def restore(records: list[dict[str, object]]) -> int:
        return len([r["odno"] for r in records])

    with pytest.raises(JournalError, match=r"j\.jsonl: cannot restore"):
        restore_from(Journal(j.path), restore)
