""".slugignore patterns: gitignore's matching rules without negation."""

from __future__ import annotations

import pytest

from dockyard.build.output import BuildOutput
from dockyard.build.slugignore import parse_slugignore


def _matches(pattern: str, path: str, *, is_dir: bool = False) -> bool:
    [parsed] = parse_slugignore(pattern)
    return bool(parsed.regex.match(path)) and (is_dir or not parsed.dirs_only)


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("*.log", "a.log", False, True),
        ("*.log", "deep/er/a.log", False, True),
        ("*.log", "a.log.txt", False, False),
        ("/docs", "docs", True, True),
        ("/docs", "lib/docs", True, False),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),
        ("docs/**/*.md", "docs/sub/deeper/a.md", False, True),
        ("docs/**/*.md", "docs/a.md", False, True),
        ("**/fixtures", "a/b/fixtures", True, True),
        ("vendor/**", "vendor/x/y", False, True),
        ("tmp/", "tmp", True, True),
        ("tmp/", "tmp", False, False),
        ("file?.txt", "file1.txt", False, True),
        ("file[0-9].txt", "file7.txt", False, True),
        ("file[!0-9].txt", "file7.txt", False, False),
        ("a\\*b", "a*b", False, True),
        ("a\\*b", "axb", False, False),
    ],
)
def test_patterns_match_like_gitignore(
    pattern: str, path: str, is_dir: bool, expected: bool
) -> None:
    assert _matches(pattern, path, is_dir=is_dir) is expected


def test_comments_blanks_and_negations_are_skipped_with_a_warning_for_negations() -> None:
    lines: list[str] = []
    patterns = parse_slugignore("# comment\n\n!important.log\n*.log\n", BuildOutput(lines.append))
    assert [p.source for p in patterns] == ["*.log"]
    assert lines == [
        "       .slugignore line 3: '!important.log' ignored — negation (!) is not supported"
    ]
