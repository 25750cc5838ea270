"""~/.netrc: read, replace one host's entry, keep everything else, mode 0600."""

from __future__ import annotations

import netrc as stdlib_netrc
import stat
from pathlib import Path

from dockyard.cli.netrc import Credentials, Netrc

OTHERS = """# my machines
machine github.com
  login octo
  password gh-token

machine api.heroku.com login me@example.com password "with space"
macdef init
cd /pub
binary

default login anonymous password guest@
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_file_has_no_credentials(tmp_path: Path) -> None:
    assert Netrc(tmp_path / ".netrc").get("localhost") is None


def test_round_trip_creates_file_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    Netrc(path).put(["localhost"], Credentials("dev@example.com", "key-1"))
    assert Netrc(path).get("localhost") == Credentials("dev@example.com", "key-1")
    assert _mode(path) == 0o600


def test_other_entries_are_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    path.write_text(OTHERS)
    path.chmod(0o644)
    Netrc(path).put(["localhost"], Credentials("dev@example.com", "key-1"))
    text = path.read_text()
    before_default = OTHERS.split("default")[0]
    assert text.startswith(before_default)
    assert text.rstrip().endswith("default login anonymous password guest@")
    assert _mode(path) == 0o600
    parsed = stdlib_netrc.netrc(str(path))
    assert parsed.authenticators("localhost") == ("dev@example.com", "", "key-1")
    assert parsed.authenticators("github.com") == ("octo", "", "gh-token")
    assert parsed.authenticators("api.heroku.com") == ("me@example.com", "", "with space")
    assert parsed.macros["init"] == ["cd /pub\n", "binary\n"]


def test_replacing_an_entry_leaves_a_single_one(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    path.write_text(OTHERS)
    store = Netrc(path)
    store.put(["localhost"], Credentials("old@example.com", "old-key"))
    store.put(["localhost"], Credentials("new@example.com", "new-key"))
    assert path.read_text().count("machine localhost") == 1
    assert store.get("localhost") == Credentials("new@example.com", "new-key")
    assert store.get("github.com") == Credentials("octo", "gh-token")


def test_entry_written_on_one_line_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    path.write_text("machine localhost login a password b\nmachine other login c password d\n")
    Netrc(path).put(["localhost"], Credentials("x@example.com", "y"))
    assert path.read_text() == (
        "machine other login c password d\nmachine localhost\n  login x@example.com\n  password y\n"
    )


def test_remove_drops_only_that_host(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    path.write_text(OTHERS)
    store = Netrc(path)
    store.put(["localhost"], Credentials("dev@example.com", "key-1"))
    assert store.remove(["localhost"]) is True
    assert store.get("localhost") == Credentials("anonymous", "guest@")  # the default entry
    assert path.read_text() == OTHERS
    assert store.remove(["localhost"]) is False


def test_default_entry_answers_unknown_hosts(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    path.write_text(OTHERS)
    assert Netrc(path).get("example.org") == Credentials("anonymous", "guest@")


def test_values_with_spaces_and_quotes_survive(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    Netrc(path).put(["localhost"], Credentials("dev@example.com", 'a "b" c#d'))
    assert Netrc(path).get("localhost") == Credentials("dev@example.com", 'a "b" c#d')
    assert stdlib_netrc.netrc(str(path)).authenticators("localhost") == (
        "dev@example.com",
        "",
        'a "b" c#d',
    )


def test_symlinked_netrc_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "netrc"
    real.parent.mkdir()
    real.write_text("machine other login c password d\n")
    link = tmp_path / ".netrc"
    link.symlink_to(real)
    Netrc(link).put(["localhost"], Credentials("dev@example.com", "key"))
    assert link.is_symlink()
    assert Netrc(real).get("localhost") == Credentials("dev@example.com", "key")
    assert Netrc(real).get("other") == Credentials("c", "d")
