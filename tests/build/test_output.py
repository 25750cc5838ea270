"""BuildOutput: Heroku's line styles, live delivery, and the capped record."""

from __future__ import annotations

from dockyard.build.output import TRUNCATED, BuildOutput, human_size


def test_lines_are_styled_like_heroku_and_delivered_as_produced() -> None:
    seen: list[str] = []
    output = BuildOutput(seen.append)

    output.heading("Python app detected")
    assert seen == ["-----> Python app detected"]
    output.detail("Installing requirements\nwith pip")
    output.error("Push failed")
    output.line("raw buildpack line\r\n")

    assert seen == [
        "-----> Python app detected",
        "       Installing requirements",
        "       with pip",
        " !     Push failed",
        "raw buildpack line",
    ]
    assert output.text == "".join(line + "\n" for line in seen)


def test_the_record_keeps_the_newest_output_within_its_limit() -> None:
    output = BuildOutput(limit=100)
    for n in range(50):
        output.line(f"line {n:02d}")

    text = output.text
    assert output.truncated
    assert text.startswith(TRUNCATED + "\n")
    assert text.endswith("line 49\n")
    assert "line 00" not in text
    assert len(text.encode()) <= 100 + len(TRUNCATED) + 1


def test_a_single_huge_line_is_cut_to_fit() -> None:
    output = BuildOutput(limit=1000)
    output.line("x" * 10_000)
    assert len(output.text) <= 1000


def test_sizes_are_compact() -> None:
    assert human_size(512) == "512B"
    assert human_size(1229) == "1.2K"
    assert human_size(52_800_000) == "50.4M"
    assert human_size(3 << 30) == "3.0G"
