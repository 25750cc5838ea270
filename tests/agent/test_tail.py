"""OutputTail: whole lines from a remembered offset, even after the file is deleted."""

from __future__ import annotations

from pathlib import Path

from dockyard.agent.tail import MAX_LINE, OutputTail


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_only_whole_lines_are_passed_on_and_the_offset_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_bytes(b"one\ntw")
    tail = OutputTail.open(path)
    assert tail is not None
    assert tail.read_lines() == [b"one"]
    assert tail.offset == 4
    append(path, b"o\nthree\n")
    assert tail.read_lines() == [b"two", b"three"]
    assert tail.offset == path.stat().st_size
    assert tail.read_lines() == []
    tail.close()


def test_a_new_tail_resumes_at_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_bytes(b"old\nnew\n")
    tail = OutputTail.open(path, offset=4)
    assert tail is not None
    assert tail.read_lines() == [b"new"]
    tail.close()


def test_an_offset_past_the_end_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_bytes(b"fresh\n")
    tail = OutputTail.open(path, offset=1000)
    assert tail is not None
    assert tail.read_lines() == [b"fresh"]
    tail.close()


def test_lines_written_before_the_file_was_deleted_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_bytes(b"")
    tail = OutputTail.open(path)
    assert tail is not None
    append(path, b"shutting down\nbye")
    path.unlink()
    assert tail.read_lines(final=True) == [b"shutting down", b"bye"]
    tail.close()


def test_an_endless_line_is_cut_rather_than_buffered_forever(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_bytes(b"x" * MAX_LINE)
    tail = OutputTail.open(path)
    assert tail is not None
    assert tail.read_lines() == [b"x" * MAX_LINE]
    assert tail.offset == MAX_LINE
    tail.close()


def test_a_missing_file_gives_no_tail(tmp_path: Path) -> None:
    assert OutputTail.open(tmp_path / "nope.log") is None
